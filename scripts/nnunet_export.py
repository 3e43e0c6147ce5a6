from pathlib import Path

from usseg.nnunet_export import dataset_folder_name, export_nnunet
from usseg.step import prepared_data, snakemake_step

with snakemake_step(snakemake):
    nnunet = snakemake.params.nnunet
    export_nnunet(
        prepared_data(snakemake),
        nnunet,
        snakemake.params.test_sets,
        Path(snakemake.output.raw) / dataset_folder_name(nnunet["dataset_id"], nnunet["dataset_name"]),
    )
