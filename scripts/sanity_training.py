from usseg.sanity import run_training_checks, write_result
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    result = run_training_checks(
        snakemake.params.experiment,
        snakemake.params.dataset,
        snakemake.params.sanity,
        snakemake.params.data_root,
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        work_dir=snakemake.params.work_dir,
    )
    write_result(snakemake.output.json, result)
