# Input functions of the gap study's rules (rules/gap.smk); kept apart from the
# rules, as snakemake --lint asks. An arm's folder is GAP_ARM_DIR; the files in
# it come from usseg.gap.files (seed_dir, seed_files), the one owner of that layout.


def gap_arm_name(wildcards):
    """The arm of a gap_arm job ({arm}) or of a gap_loso_arm job (loso_{subject})."""
    if "subject" in wildcards.keys():
        return loso_arm(wildcards.subject)
    return wildcards.arm


def gap_arm_settings(wildcards):
    """The arm's resolved settings at the experiment's own seed (usseg.gap.study.arm_experiment), a plain
    mapping: as a param, a changed setting re-runs the arm; also its image size and code inputs.
    """
    return arm_experiment(config, gap_arm_name(wildcards)).settings


def gap_arm_gpu(wildcards):
    """The `gpu` token of the arm's job (usseg.resources.gpu_token), from its own settings."""
    exp = arm_experiment(config, gap_arm_name(wildcards))
    return gpu_token(exp.device, network=exp.is_network)


def gap_remedy_settings(wildcards):
    """A remedy arm's settings, for the gap_domain job of its {remedy}."""
    return arm_experiment(config, remedy_arm(wildcards.remedy)).settings


def gap_arm_splits(wildcards):
    """The arm's split table: its LOSO fold's, its learning-curve share's, or the run's."""
    if "subject" in wildcards.keys():
        folds = checkpoints.gap_loso_folds.get().output.folds
        return f"{folds}/{wildcards.subject}/splits.csv"
    kind, key = arm_kind(wildcards.arm)
    if kind == "curve":
        return rules.gap_curve_split.output.splits.format(fraction=key)
    return rules.split.output.splits


def gap_seed_folders(wildcards, output):
    """The arm's seed folders, in seed order: the folders of its model outputs."""
    return [os.path.dirname(f) for f in output if os.path.basename(f) == GAP_MODEL_FILE]


def gap_arm_reuse(wildcards):
    """(trained_in, evaluated_in) of the arm: seed offset -> the folder whose training (evaluation tables) it
    copies instead of repeating (usseg.gap.study.reuse_plan)."""
    return reuse_plan(config, gap_arm_name(wildcards), EXP, GAP_ARM_DIR)


def gap_arm_trained_in(wildcards):
    return gap_arm_reuse(wildcards)[0]


def gap_arm_evaluated_in(wildcards):
    return gap_arm_reuse(wildcards)[1]


def gap_arm_reused_files(wildcards):
    """The files the arm copies, as its inputs."""
    return reused_files(*gap_arm_reuse(wildcards), TEST_SETS)


def gap_loso_subjects():
    folds = checkpoints.gap_loso_folds.get().output.folds
    return sorted(glob_wildcards(f"{folds}/{{subject}}/splits.csv").subject)


def gap_loso_arms():
    """One arm per held-out labeled real subject (none when gap_study.loso is off)."""
    return (
        [loso_arm(s) for s in gap_loso_subjects()]
        if config["gap_study"]["loso"]
        else []
    )


def gap_arm_dirs(wildcards):
    """Arm -> its folder: the arms known before the split, then one per LOSO fold."""
    return {arm: GAP_ARM_DIR.format(arm=arm) for arm in [*GAP_ARMS, *gap_loso_arms()]}


def gap_loso_arm_files(wildcards):
    """Every file of every LOSO arm's job (each seed's training and target test set tables)."""
    return [
        f
        for arm in gap_loso_arms()
        for f in seed_files(GAP_ARM_DIR.format(arm=arm), GAP_SEEDS, [TARGET_TEST_SET])
    ]


def gap_inputs():
    """The gap study's results when gap_study.enabled, as the report's named inputs gap_<name>; else none."""
    return named_inputs("gap", rules.gap_summary.output) if GAP_ENABLED else {}
