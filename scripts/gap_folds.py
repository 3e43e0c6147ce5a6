from usseg.gap.study import write_loso_folds
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_loso_folds(
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.params.target_modality,
        snakemake.output.folds,
    )
