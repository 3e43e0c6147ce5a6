# Input functions of the report rules (rules/report.smk); kept apart from the
# rules, as snakemake --lint asks.

from functools import lru_cache, partial

from usseg.trainability import TrainingPlan, plan_of_run

REPORT_DIR = f"{RESULTS}/report"


def run_plan() -> TrainingPlan:
    """What this run can train (usseg.trainability), so that data with nothing to train still get a report.

    The generated demo has labeled simulator training images by construction,
    so its plan is known before the run. On other data it is read from the
    split: rule split is a checkpoint, and Snakemake adds the jobs that train
    once it has run (a dry run before that lists the data jobs only).
    """
    if config["data_root"] is None:
        return TrainingPlan()
    splits = checkpoints.split.get().output.splits
    return _plan_of(splits, os.stat(splits).st_mtime_ns)


@lru_cache(maxsize=2)
def _plan_of(splits, modified_ns):
    """The plan of one version of splits.csv: read once, not once per input function that asks."""
    return plan_of_run(config, rules.manifest.output.manifest, splits)


def trained_files(patterns, per_test_set=False, sanity=False):
    """An input function: `patterns` expanded over the experiments this run trains (and test sets)."""

    def files(wildcards):
        plan = run_plan()
        names = plan.sanity(SANITY_EXPERIMENTS) if sanity else plan.trained(EXPERIMENTS)
        if per_test_set:
            return expand(patterns, experiment=names, test_set=TEST_SETS)
        return expand(patterns, experiment=names)

    return files


def planned(files, part):
    """An input function: `files` when the plan lets `part` ("nnunet" or "gap") run, else none."""
    return lambda wildcards: files if getattr(run_plan(), part) is None else []


def report_inputs(with_training: bool) -> dict:
    """The named inputs of a report; without training (diagnostics_report) the trained parts are empty."""
    if with_training:
        per_exp, per_eval = trained_files, partial(trained_files, per_test_set=True)
        sanity = trained_files(rules.sanity_training.output.json, sanity=True)
        nnunet = planned(NNUNET_SUMMARIES, "nnunet")
        nnunet_info = planned(
            [rules.nnunet_train_predict.output.info] if NNUNET_SUMMARIES else [],
            "nnunet",
        )
        gap = {name: planned([path], "gap") for name, path in gap_inputs().items()}
    else:
        per_exp = per_eval = lambda patterns: []
        sanity, nnunet, nnunet_info = [], [], []
        gap = {name: [] for name in gap_inputs()}
    return {
        # The diagnostics' files by their output names (diagnostics_checklist, ...),
        # and results/gap/ when gap_study.enabled, the "What would help" section (gap_<name>).
        **named_inputs("diagnostics", rules.diagnostics.output),
        **gap,
        "issues": rules.manifest.output.issues,
        "labels": rules.decode_masks.output.labels,
        # Every output of every job the report shows (its provenance section
        # checks each one's hash), so no re-run or failure leaves it looking current.
        "manifest": rules.manifest.output.manifest,
        "splits": rules.split.output.splits,
        "trained": per_exp(rules.train.output),
        "evaluated": per_eval(rules.evaluate.output),
        # The files the report reads, per experiment (and test set) in config order.
        "history": per_exp(rules.train.output.history),
        "curves": per_exp(rules.train.output.curves),
        "timing": per_exp(rules.train.output.timing),
        "summaries": per_eval(rules.evaluate.output.summary),
        "overlays": per_eval(rules.evaluate.output.overlays),
        "confusion": per_eval(rules.evaluate.output.confusion_png),
        "confusion_csv": per_eval(rules.evaluate.output.confusion),
        # The pipeline checks ("Pipeline ruled out?" in the verdict); the
        # nnU-Net reference only when it runs (nnunet.enabled, nnunetv2 installed).
        "sanity": sanity,
        "round_trip": rules.label_round_trip.output.json,
        "nnunet": nnunet,
        "nnunet_info": nnunet_info,
        # The final checklist (the verdict's box): the diagnostics' with the pipeline check.
        "verdict": rules.verdict.output.checklist if with_training else [],
        "provenance": [
            *demo_provenance(),
            rules.manifest.output.provenance,
            rules.decode_masks.output.provenance,
            rules.split.output.provenance,
            rules.diagnostics.output.provenance,
        ],
    }
