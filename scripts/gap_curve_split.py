from usseg.gap.study import write_curve_split
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_curve_split(
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.wildcards.fraction,
        snakemake.params.fractions,
        snakemake.params.modalities,
        snakemake.params.seed,
        snakemake.output.splits,
    )
