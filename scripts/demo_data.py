from usseg.demo import generate_demo_dataset
from usseg.step import snakemake_step

with snakemake_step(snakemake):
    generate_demo_dataset(
        snakemake.params.out_dir,
        size=snakemake.params.size,
        seed=snakemake.params.seed,
        classes=snakemake.params.classes,
    )
