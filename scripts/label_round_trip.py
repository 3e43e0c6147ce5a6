from usseg.dataset_root import read_dataset_root
from usseg.sanity import label_round_trip, write_result
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    result = label_round_trip(
        snakemake.params.dataset,
        snakemake.params.sanity,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.splits,
        snakemake.input.labels,
    )
    write_result(snakemake.output.json, result)
