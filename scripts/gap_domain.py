from usseg.gap import write_domain_auc
from usseg.step import experiment, prepared_data, snakemake_step

with snakemake_step(snakemake):
    write_domain_auc(
        experiment(snakemake),
        prepared_data(snakemake),
        snakemake.params.diagnostics,
        snakemake.output.auc,
    )
