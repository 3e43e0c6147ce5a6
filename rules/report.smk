# One self-contained, traceable report. A local rule: it never goes to a cluster.
# Each file the report shows is a named input here; scripts/report.py hands them
# to the library as usseg.report.ReportInputs (one field per name).
#   snakemake --cores 8 report               # the whole report: data checks, training, evaluation
#   snakemake --cores 8 diagnostics_report   # a first look in about a minute: the data checks only


rule report:
    input:
        **report_inputs(with_training=True),
        code=code_of("../scripts/report.py"),
    output:
        html=f"{REPORT_DIR}/report.html",
        # What the report showed (every input, hashed): the workflow checks at
        # start-up and after a failure that the page still matches the files.
        provenance=f"{PROV}/report.json",
    log:
        f"{LOGS}/report.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        config=config,
        # The run's folder: the report lists its provenance/ records and shows paths relative to it.
        results_dir=folder_of("html", up=2),
        with_training=True,
    script:
        "../scripts/report.py"


# A first look: the verdict and every data check, no training (about a minute on the demo).
rule diagnostics_report:
    input:
        **report_inputs(with_training=False),
        code=code_of("../scripts/report.py"),
    output:
        html=f"{REPORT_DIR}/diagnostics.html",
        provenance=f"{PROV}/diagnostics_report.json",
    log:
        f"{LOGS}/diagnostics_report.log",
    conda:
        USSEG_ENV
    params:
        config=config,
        results_dir=folder_of("html", up=2),
        with_training=False,
    script:
        "../scripts/report.py"
