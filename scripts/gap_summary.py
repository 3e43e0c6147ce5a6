from usseg.gap.study import write_gap_results
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    write_gap_results(
        snakemake.params.study,
        snakemake.params.test_sets,
        snakemake.params.target_test_set,
        snakemake.params.arm_dirs,
        snakemake.params.domain_files,
        {name: getattr(snakemake.output, name) for name in snakemake.output.keys()},
    )
