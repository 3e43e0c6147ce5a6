from usseg.config import write_resolved_config
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_resolved_config(snakemake.params.config, snakemake.output.config)
