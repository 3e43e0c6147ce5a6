from usseg.checks.sanity import label_round_trip, write_result
from usseg.data import PreparedData
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    result = label_round_trip(PreparedData.from_rule(snakemake.input, snakemake.params), snakemake.params.sanity)
    write_result(snakemake.output.json, result)
