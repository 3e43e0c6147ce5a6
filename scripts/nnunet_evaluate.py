from usseg.nnunet_reference import evaluate_predictions
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    evaluate_predictions(
        snakemake.input.predictions,
        snakemake.wildcards.test_set,
        snakemake.params.dataset,
        snakemake.params.data_root,
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
        snakemake.params.out_dir,
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
        image_size=snakemake.params.image_size,
    )
