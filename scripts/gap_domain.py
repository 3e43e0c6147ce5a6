from usseg.data import PreparedData
from usseg.experiment import Experiment
from usseg.gap.study import write_domain_auc
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_domain_auc(
        Experiment(snakemake.params.experiment),
        PreparedData.from_rule(snakemake.input, snakemake.params),
        snakemake.params.diagnostics,
        snakemake.output.auc,
    )
