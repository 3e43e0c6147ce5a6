from usseg.dataset_root import read_dataset_root
from usseg.prepared_arrays import prepare_arrays
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    prepare_arrays(
        snakemake.input.manifest,
        read_dataset_root(snakemake.input.root),
        snakemake.input.labels,
        (int(snakemake.wildcards.height), int(snakemake.wildcards.width)),
        snakemake.params.palette_size,
        snakemake.output.arrays,
    )
