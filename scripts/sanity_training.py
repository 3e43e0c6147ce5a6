from usseg.dataset_root import read_dataset_root
from usseg.sanity import run_training_checks, write_result
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    result = run_training_checks(
        snakemake.params.experiment,
        snakemake.params.dataset,
        snakemake.params.sanity,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        work_dir=snakemake.params.work_dir,
    )
    write_result(snakemake.output.json, result)
