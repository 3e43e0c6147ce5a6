# Input functions of the gap study's rules (rules/gap.smk); kept apart from the
# rules, as snakemake --lint asks.


def gap_variant(wildcards):
    """The baseline's settings (a plain mapping, as params) for a LOSO fold or a learning-curve share."""
    if "subject" in wildcards.keys():
        return loso_experiment(config).settings
    return curve_experiment(config, wildcards.fraction).settings


def gap_split(kind):
    if kind == "loso":
        return (
            lambda wildcards: f"{checkpoints.gap_loso_folds.get().output.folds}/{wildcards.subject}/splits.csv"
        )
    return lambda wildcards: rules.gap_curve_split.output.splits.format(
        fraction=wildcards.fraction
    )


def gap_loso_subjects():
    folds = checkpoints.gap_loso_folds.get().output.folds
    return sorted(glob_wildcards(f"{folds}/{{subject}}/splits.csv").subject)


def gap_loso_dirs(wildcards):
    """Held-out subject -> its fold's evaluation folder on the target test set (none when LOSO is off)."""
    if not config["gap_study"]["loso"]:
        return {}
    return {s: f"{GAP}/loso/{s}/eval/{TARGET_TEST_SET}" for s in gap_loso_subjects()}


def gap_loso_summaries(wildcards):
    return [f"{d}/summary.json" for d in gap_loso_dirs(wildcards).values()]


def gap_curve_dir(fraction, test_set):
    """A learning-curve share's evaluation; the whole share is the baseline itself (same split,
    settings and seed), so it is not trained twice."""
    if float(fraction) == 1.0:
        return f"{RESULTS}/experiments/{GAP_BASELINE}/eval/{test_set}"
    return f"{GAP}/curve/{fraction}/eval/{test_set}"


def gap_inputs():
    """The gap study's results when gap_study.enabled, as the report's named inputs gap_<name>; else none."""
    return named_inputs("gap", rules.gap_summary.output) if GAP_ENABLED else {}
