# One self-contained, traceable report. A local rule: it never goes to a cluster.


rule report:
    input:
        diagnostics=rules.diagnostics.output,
        issues=rules.manifest.output.issues,
        labels=rules.decode_masks.output.labels,
        histories=expand(rules.train.output.history, experiment=EXPERIMENTS),
        curves=expand(rules.train.output.curves, experiment=EXPERIMENTS),
        summaries=eval_summaries(),
        overlays=expand(
            rules.evaluate.output.overlays, experiment=EXPERIMENTS, test_set=TEST_SETS
        ),
        provenance=[
            *demo_provenance(),
            rules.manifest.output.provenance,
            rules.decode_masks.output.provenance,
            rules.split.output.provenance,
            rules.diagnostics.output.provenance,
            *expand(rules.train.output.provenance, experiment=EXPERIMENTS),
            *expand(
                rules.evaluate.output.provenance,
                experiment=EXPERIMENTS,
                test_set=TEST_SETS,
            ),
        ],
        code=code_of("../scripts/report.py"),
    output:
        html=f"{RESULTS}/report/report.html",
    log:
        f"{LOGS}/report.log",
    conda:
        USSEG_ENV
    params:
        config=config,
        results_dir=folder_of("html", up=2),
    script:
        "../scripts/report.py"
