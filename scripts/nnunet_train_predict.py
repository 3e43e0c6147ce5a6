import json
from pathlib import Path

from usseg.checks.nnunet_export import dataset_folder_name
from usseg.checks.nnunet_reference import run_reference
from usseg.step import snakemake_step

# nnU-Net's planning and preprocessing start "spawn" worker processes, which
# import this file again: only the main process may run the step.
if __name__ == "__main__":
    with snakemake_step(snakemake):
        nnunet = snakemake.params.nnunet
        info = run_reference(
            snakemake.input.raw,
            dataset_folder_name(nnunet["dataset_id"], nnunet["dataset_name"]),
            nnunet["dataset_id"],
            nnunet,
            snakemake.params.test_sets,
            snakemake.params.work_dir,
            snakemake.output.predictions,
            device=nnunet["device"],
        )
        Path(snakemake.output.info).write_text(json.dumps(info, indent=2) + "\n")
