from usseg.contracts import EvaluationOutputs
from usseg.data import PreparedData
from usseg.evaluate import evaluate_experiment
from usseg.experiment import Experiment
from usseg.headline import write_headline
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    evaluate_experiment(
        Experiment(snakemake.params.experiment),
        PreparedData.from_rule(snakemake.input, snakemake.params),
        snakemake.input.model,
        snakemake.wildcards.test_set,
        EvaluationOutputs.from_rule(snakemake.output),
        evaluation=snakemake.params.evaluation,
        test_sets=snakemake.params.test_sets,
    )
    write_headline(snakemake.output.summary, snakemake.output.headline)
