from usseg.report import ReportInputs, build_report
from usseg.step import named_paths, snakemake_step

with snakemake_step(snakemake):
    build_report(
        snakemake.params.config,
        ReportInputs.from_rule(
            named_paths(snakemake.input),
            snakemake.params.config,
            snakemake.params.results_dir,
            with_training=snakemake.params.with_training,
        ),
        snakemake.output.html,
    )
