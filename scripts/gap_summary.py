from usseg.gap import write_gap_results
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_gap_results(
        snakemake.params.config,
        snakemake.params.eval_dirs,
        snakemake.params.timings,
        snakemake.params.domain_files,
        snakemake.params.loso_dirs,
        snakemake.params.curve_dirs,
        snakemake.output.loso,
        snakemake.output.learning_curve,
        snakemake.output.gap_closure,
        snakemake.output.when_to_stop,
        snakemake.output.gap_closure_json,
        snakemake.output.learning_curve_dice,
    )
