from usseg.contracts import TrainingOutputs
from usseg.data import PreparedData
from usseg.experiment import Experiment
from usseg.step import snakemake_step
from usseg.train import train_experiment

with snakemake_step(snakemake):
    train_experiment(
        Experiment(snakemake.params.experiment),
        PreparedData.from_rule(snakemake.input, snakemake.params),
        TrainingOutputs.from_rule(snakemake.output),
        snakemake.params.checkpoint_dir,
    )
