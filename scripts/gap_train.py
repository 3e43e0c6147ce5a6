import torch

from usseg.step import experiment, prepared_data, snakemake_step
from usseg.train import train_experiment

# The threads this job was given (rule threads), not one or every core.
torch.set_num_threads(snakemake.threads)

with snakemake_step(snakemake):
    train_experiment(
        experiment(snakemake),
        prepared_data(snakemake),
        snakemake.params.out_dir,
        snakemake.params.checkpoint_dir,
    )
