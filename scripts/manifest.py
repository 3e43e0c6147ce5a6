from usseg.manifest import write_manifest
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_manifest(
        snakemake.params.data_root,
        snakemake.params.dataset,
        snakemake.params.strict,
        snakemake.output.manifest,
        snakemake.output.issues,
        root_json=snakemake.output.root,
    )
