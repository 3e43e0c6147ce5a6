import json
from pathlib import Path

from usseg.config import class_names
from usseg.nnunet_export import dataset_folder_name
from usseg.nnunet_reference import score_predictions
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    nnunet = snakemake.params.nnunet
    summary = score_predictions(
        snakemake.input.predictions,
        Path(snakemake.input.raw) / dataset_folder_name(nnunet["dataset_id"], nnunet["dataset_name"]),
        snakemake.wildcards.test_set,
        class_names(snakemake.params.dataset),
    )
    Path(snakemake.output.summary).parent.mkdir(parents=True, exist_ok=True)
    Path(snakemake.output.summary).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
