from usseg.evaluate import evaluate_experiment
from usseg.step import experiment, prepared_data, snakemake_step

with snakemake_step(snakemake):
    evaluate_experiment(
        experiment(snakemake),
        prepared_data(snakemake),
        snakemake.input.model,
        snakemake.wildcards.test_set,
        snakemake.params.out_dir,
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
    )
