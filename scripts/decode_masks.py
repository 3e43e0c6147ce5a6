from usseg.masks import decode_masks
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    decode_masks(
        snakemake.input.manifest,
        snakemake.params.data_root,
        snakemake.params.dataset,
        snakemake.output.labels,
        strict=snakemake.params.strict,
    )
