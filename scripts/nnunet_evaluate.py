from usseg.nnunet_reference import evaluate_predictions
from usseg.step import prepared_data, snakemake_step

with snakemake_step(snakemake):
    evaluate_predictions(
        snakemake.input.predictions,
        snakemake.wildcards.test_set,
        prepared_data(snakemake),
        snakemake.params.out_dir,
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
        experiment_defaults=snakemake.params.experiment_defaults,
    )
