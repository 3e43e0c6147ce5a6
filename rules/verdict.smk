# The run's final verdict (docs/report.md): the diagnostics' checklist completed by
# what the trained models show (the domain shift's measured harm, the `pipeline`
# check). The diagnostics stay fast and independent of training; this small
# local rule combines them with the evaluations and the pipeline checks.
#   snakemake --cores 8 verdict

VERDICT = f"{RESULTS}/verdict"


rule verdict:
    input:
        checklist=rules.diagnostics.output.checklist,
        domain_shift=rules.diagnostics.output.domain_shift_json,
        # What this run trains (rules/report_common.smk: the plan read from the split).
        summaries=trained_files(rules.evaluate.output.summary, per_test_set=True),
        histories=trained_files(rules.train.output.history),
        sanity=trained_files(rules.sanity_training.output.json, sanity=True),
        round_trip=rules.label_round_trip.output.json,
        nnunet=planned(NNUNET_SUMMARIES, "nnunet"),
        nnunet_info=planned(
            [rules.nnunet_train_predict.output.info] if NNUNET_SUMMARIES else [],
            "nnunet",
        ),
        code=code_of("../scripts/verdict.py"),
    output:
        checklist=f"{VERDICT}/checklist.json",
        checklist_md=f"{VERDICT}/checklist.md",
        provenance=f"{PROV}/verdict.json",
    log:
        f"{LOGS}/verdict.log",
    conda:
        USSEG_ENV
    # The settings usseg.verdict reads: the experiments (their classes and training
    # modalities), the test sets, the target modality, nnunet's switch and margin,
    # and the verdict's thresholds.
    params:
        config={
            "dataset": config["dataset"],
            "experiment_defaults": config["experiment_defaults"],
            "experiments": config["experiments"],
            "test_sets": config["test_sets"],
            "nnunet": config["nnunet"],
            "verdict": config["verdict"],
        },
    script:
        "../scripts/verdict.py"
