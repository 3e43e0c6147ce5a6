# One self-contained, traceable report. A local rule: it never goes to a cluster.


rule report:
    input:
        diagnostics=rules.diagnostics.output,
        issues=rules.manifest.output.issues,
        labels=rules.decode_masks.output.labels,
        # Every output of every job the report shows (its provenance section
        # checks each one's hash), so no re-run or failure leaves it looking current.
        manifest=rules.manifest.output.manifest,
        splits=rules.split.output.splits,
        trained=expand(rules.train.output, experiment=EXPERIMENTS),
        evaluated=expand(
            rules.evaluate.output, experiment=EXPERIMENTS, test_set=TEST_SETS
        ),
        confusion=expand(
            rules.evaluate.output.confusion_png,
            experiment=EXPERIMENTS,
            test_set=TEST_SETS,
        ),
        # The pipeline checks ("Pipeline ruled out?" in the verdict); the
        # nnU-Net reference only when it runs (nnunet.enabled, nnunetv2 installed).
        sanity=rules.sanity_checks.input,
        nnunet=NNUNET_SUMMARIES,
        provenance=[
            *demo_provenance(),
            rules.manifest.output.provenance,
            rules.decode_masks.output.provenance,
            rules.split.output.provenance,
            rules.diagnostics.output.provenance,
        ],
        # results/gap/ when gap_study.enabled (the "What would help" section).
        gap=gap_outputs(),
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
