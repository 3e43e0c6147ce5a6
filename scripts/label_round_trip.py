from usseg.sanity import label_round_trip, write_result
from usseg.step import prepared_data, snakemake_step

with snakemake_step(snakemake):
    result = label_round_trip(prepared_data(snakemake), snakemake.params.sanity)
    write_result(snakemake.output.json, result)
