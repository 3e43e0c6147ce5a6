from usseg.dataset_root import read_dataset_root
from usseg.masks import decode_masks
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    decode_masks(
        snakemake.input.manifest,
        read_dataset_root(snakemake.input.root),
        snakemake.params.dataset,
        snakemake.output.labels,
        strict=snakemake.params.strict,
    )
