from usseg.gap import write_domain_auc
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_domain_auc(
        snakemake.params.experiment,
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.params.dataset,
        snakemake.params.data_root,
        snakemake.params.diagnostics,
        snakemake.output.auc,
    )
