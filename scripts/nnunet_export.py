from pathlib import Path

from usseg.checks.nnunet_export import dataset_folder_name, export_nnunet
from usseg.data import PreparedData
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    nnunet = snakemake.params.nnunet
    export_nnunet(
        PreparedData.from_rule(snakemake.input, snakemake.params),
        nnunet,
        snakemake.params.test_sets,
        Path(snakemake.output.raw) / dataset_folder_name(nnunet["dataset_id"], nnunet["dataset_name"]),
    )
