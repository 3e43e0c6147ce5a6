from usseg.splits import write_splits
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_splits(
        snakemake.input.manifest,
        f"{snakemake.input.labels}/decode_report.csv",
        snakemake.params.val_fraction,
        snakemake.params.seed,
        snakemake.output.splits,
        strict=snakemake.params.strict,
        issues_csv=snakemake.input.issues,
        dataset=snakemake.params.dataset,
        test_sets=snakemake.params.test_sets,
        flat=snakemake.params.flat,
    )
