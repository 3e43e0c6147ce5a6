from usseg.dataset_root import read_dataset_root
from usseg.diagnostics import DiagnosticsOutputs, run_diagnostics
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    run_diagnostics(
        snakemake.params.dataset,
        snakemake.params.diagnostics,
        read_dataset_root(snakemake.input.root),
        snakemake.input.manifest,
        snakemake.input.issues,
        snakemake.input.labels,
        snakemake.input.splits,
        DiagnosticsOutputs.from_rule(snakemake.output, snakemake.params.dataset["modalities"]),
        model_image_size=snakemake.params.model_image_size,
        data_is_demo=snakemake.params.data_is_demo,
    )
