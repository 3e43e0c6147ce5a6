from usseg.checks.nnunet_reference import evaluate_predictions
from usseg.contracts import EvaluationOutputs
from usseg.data import PreparedData
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    evaluate_predictions(
        snakemake.input.predictions,
        snakemake.wildcards.test_set,
        PreparedData.from_rule(snakemake.input, snakemake.params),
        EvaluationOutputs.from_rule(snakemake.output),
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
        experiment_defaults=snakemake.params.experiment_defaults,
    )
