from usseg.data import PreparedData
from usseg.experiment import Experiment
from usseg.gap.arms import run_arm
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    run_arm(
        Experiment(snakemake.params.experiment),
        PreparedData.from_rule(snakemake.input, snakemake.params),
        snakemake.params.seed_folders,
        snakemake.params.checkpoint_dirs,
        snakemake.params.test_sets,
        snakemake.params.evaluation,
        snakemake.params.all_test_sets,
        trained_in=snakemake.params.trained_in,
        evaluated_in=snakemake.params.evaluated_in,
    )
