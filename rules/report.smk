# One self-contained, traceable report. A local rule: it never goes to a cluster.
# Each file the report shows is a named input here; scripts/report.py hands them
# to the library as usseg.report.ReportInputs (one field per name).


rule report:
    input:
        # The diagnostics' files by their output names (diagnostics_checklist, ...),
        # and results/gap/ when gap_study.enabled, the "What would help" section (gap_<name>).
        **named_inputs("diagnostics", rules.diagnostics.output),
        **gap_inputs(),
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
        # The files the report reads, per experiment (and test set) in config order.
        history=expand(rules.train.output.history, experiment=EXPERIMENTS),
        curves=expand(rules.train.output.curves, experiment=EXPERIMENTS),
        timing=expand(rules.train.output.timing, experiment=EXPERIMENTS),
        summaries=expand(
            rules.evaluate.output.summary, experiment=EXPERIMENTS, test_set=TEST_SETS
        ),
        overlays=expand(
            rules.evaluate.output.overlays, experiment=EXPERIMENTS, test_set=TEST_SETS
        ),
        confusion=expand(
            rules.evaluate.output.confusion_png,
            experiment=EXPERIMENTS,
            test_set=TEST_SETS,
        ),
        # The pipeline checks ("Pipeline ruled out?" in the verdict); the
        # nnU-Net reference only when it runs (nnunet.enabled, nnunetv2 installed).
        sanity=expand(rules.sanity_training.output.json, experiment=SANITY_EXPERIMENTS),
        round_trip=rules.label_round_trip.output.json,
        nnunet=NNUNET_SUMMARIES,
        nnunet_info=[rules.nnunet_train_predict.output.info] if NNUNET_SUMMARIES else [],
        provenance=[
            *demo_provenance(),
            rules.manifest.output.provenance,
            rules.decode_masks.output.provenance,
            rules.split.output.provenance,
            rules.diagnostics.output.provenance,
        ],
        code=code_of("../scripts/report.py"),
    output:
        html=f"{RESULTS}/report/report.html",
    log:
        f"{LOGS}/report.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        config=config,
        # The run's folder: the report lists its provenance/ records and shows paths relative to it.
        results_dir=folder_of("html", up=2),
    script:
        "../scripts/report.py"
