from usseg.step import snakemake_step
from usseg.train import train_experiment

with snakemake_step(snakemake):
    train_experiment(
        snakemake.params.experiment,
        snakemake.params.dataset,
        snakemake.params.data_root,
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        snakemake.params.out_dir,
        snakemake.params.checkpoint_dir,
    )
