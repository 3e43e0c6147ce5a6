from usseg.report import build_report
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    build_report(
        snakemake.params.config,
        snakemake.params.results_dir,
        snakemake.output.html,
    )
