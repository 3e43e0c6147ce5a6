from usseg.step import named_paths, snakemake_step
from usseg.verdict import write_verdict

with snakemake_step(snakemake):
    write_verdict(
        snakemake.params.config,
        named_paths(snakemake.input),
        snakemake.output.checklist,
        snakemake.output.checklist_md,
    )
