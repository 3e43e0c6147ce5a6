from usseg.dataset_root import read_dataset_root
from usseg.evaluate import evaluate_experiment
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    evaluate_experiment(
        snakemake.params.experiment,
        snakemake.params.dataset,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        snakemake.input.model,
        snakemake.wildcards.test_set,
        snakemake.params.out_dir,
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
        fov_threshold=snakemake.params.fov_threshold,
    )
