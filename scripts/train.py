import torch

from usseg.dataset_root import read_dataset_root
from usseg.step import snakemake_step
from usseg.train import train_experiment

# The threads this job was given (rule train: threads), not one or every core.
torch.set_num_threads(snakemake.threads)

with snakemake_step(snakemake):
    train_experiment(
        snakemake.params.experiment,
        snakemake.params.dataset,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        snakemake.params.out_dir,
        snakemake.params.checkpoint_dir,
        fov_threshold=snakemake.params.fov_threshold,
    )
