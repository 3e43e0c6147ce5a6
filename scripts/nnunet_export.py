from pathlib import Path

from usseg.dataset_root import read_dataset_root
from usseg.nnunet_export import dataset_folder_name, export_nnunet
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    nnunet = snakemake.params.nnunet
    export_nnunet(
        snakemake.params.dataset,
        nnunet,
        snakemake.params.test_sets,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        Path(snakemake.output.raw) / dataset_folder_name(nnunet["dataset_id"], nnunet["dataset_name"]),
    )
