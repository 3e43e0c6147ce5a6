# The configuration as the workflow resolved it: config.yaml, any
# --configfile overlays and --config values, with the schema's defaults filled.
#   snakemake --configfile configs/article.yaml results/config.yaml


rule resolved_config:
    input:
        code=code_of("../scripts/resolved_config.py"),
    output:
        config=f"{RESULTS}/config.yaml",
    log:
        f"{LOGS}/resolved_config.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        config=config,
    script:
        "../scripts/resolved_config.py"
