from usseg.checks.sanity import run_training_checks, write_result
from usseg.data import PreparedData
from usseg.experiment import Experiment
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    result = run_training_checks(
        Experiment(snakemake.params.experiment),
        PreparedData.from_rule(snakemake.input, snakemake.params),
        snakemake.params.sanity,
        work_dir=snakemake.params.work_dir,
    )
    write_result(snakemake.output.json, result)
