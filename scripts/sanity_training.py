from usseg.sanity import run_training_checks, write_result
from usseg.step import experiment, prepared_data, snakemake_step

with snakemake_step(snakemake):
    result = run_training_checks(
        experiment(snakemake),
        prepared_data(snakemake),
        snakemake.params.sanity,
        work_dir=snakemake.params.work_dir,
    )
    write_result(snakemake.output.json, result)
