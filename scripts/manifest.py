from pathlib import Path

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
        # Kept beside the log: Snakemake deletes a failed job's outputs, the issues table among them.
        kept_issues_csv=Path(snakemake.log[0]).with_name("manifest_issues.csv"),
    )
