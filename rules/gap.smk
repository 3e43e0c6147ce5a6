# The gap study, "what would help" (docs/remedies.md): ARMS, each trained with
# gap_study.seeds seeds and compared at the subject level with seeds included.
# The arms: the baseline experiment's settings (`baseline`, whose seed 0 is the
# baseline experiment itself), each gap_study.remedies entry (`remedy_<key>`: the
# baseline's settings with the remedy's on top), one per held-out labeled real
# subject (`loso_<subject>`) and one per share of the simulator's training
# subjects below 1 (`curve_<share>`). One job per arm trains all its seeds and
# evaluates them in one process (usseg.gap.arms), so on SLURM each arm is its own
# job. Runs only when gap_study.enabled.

from usseg.contracts import TRAINING_FILES, test_set_name
from usseg.gap.study import (
    arm_experiment,
    arm_kind,
    curve_arm,
    fixed_arms,
    fraction_names,
    loso_arm,
    remedy_arm,
    reuse_plan,
    reused_files,
    seed_offsets,
)
from usseg.gap.files import seed_dir, seed_files

GAP = f"{RESULTS}/gap"
GAP_ENABLED = config["gap_study"]["enabled"]
GAP_REMEDIES = list(config["gap_study"]["remedies"]) if GAP_ENABLED else []
GAP_SEEDS = seed_offsets(config)
GAP_FRACTIONS = fraction_names(config)
# The arms known before the split (the LOSO arms follow from the checkpoint gap_loso_folds).
GAP_ARMS = fixed_arms(config) if GAP_ENABLED else []
TARGET_TEST_SET = test_set_name(config["dataset"]["target_modality"])
GAP_ARM_DIR = f"{GAP}/arms/{{arm}}"
GAP_MODEL_FILE = TRAINING_FILES["model"]


wildcard_constraints:
    fraction="[0-9.]+",
    subject="[^/]+",
    # The LOSO arms have their own rule (they are scored on the target test set only).
    arm="baseline|(remedy|curve)_[^/]+",
    remedy="[A-Za-z0-9][A-Za-z0-9_-]*",


checkpoint gap_loso_folds:
    input:
        manifest=rules.manifest.output.manifest,
        splits=rules.split.output.splits,
        code=code_of("../scripts/gap_folds.py"),
    output:
        folds=directory(f"{GAP}/loso/folds"),
        provenance=f"{PROV}/gap/loso_folds.json",
    log:
        f"{LOGS}/gap/loso_folds.log",
    priority: PRIORITY_UNLOCKS
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        target_modality=config["dataset"]["target_modality"],
    script:
        "../scripts/gap_folds.py"


rule gap_curve_split:
    input:
        manifest=rules.manifest.output.manifest,
        splits=rules.split.output.splits,
        code=code_of("../scripts/gap_curve_split.py"),
    output:
        splits=f"{GAP}/curve/{{fraction}}/splits.csv",
        provenance=f"{PROV}/gap/curve_split/{{fraction}}.json",
    log:
        f"{LOGS}/gap/curve_split_{{fraction}}.log",
    priority: PRIORITY_UNLOCKS
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        fractions=config["gap_study"]["learning_curve_fractions"],
        modalities=lambda wildcards: list(
            arm_experiment(config, curve_arm(wildcards.fraction)).train_modalities
        ),
        seed=config["split"]["seed"],
    script:
        "../scripts/gap_curve_split.py"


# gap_arm: the baseline, the remedies and the learning-curve shares, scored on
# every test set; gap_loso_arm: one per held-out subject, scored on it only.
for _rule, _wc, _arm, _test_sets in (
    ("gap_arm", "arm", "{arm}", TEST_SETS),
    ("gap_loso_arm", "subject", loso_arm("{subject}"), [TARGET_TEST_SET]),
):

    rule:
        name:
            _rule
        input:
            **prepared_data(
                arrays=prepared_arrays(gap_arm_settings), splits=gap_arm_splits
            ),
            # The trainings and evaluations an arm copies instead of repeating.
            reused=gap_arm_reused_files,
            code=experiment_code_of("../scripts/gap_arm.py", gap_arm_settings),
        output:
            seed_files(GAP_ARM_DIR.format(arm=_arm), GAP_SEEDS, _test_sets),
            provenance=f"{PROV}/gap/{_rule}/{{{_wc}}}.json",
        log:
            f"{LOGS}/gap/arm_{_arm}.log",
        benchmark:
            f"{BENCH}/gap/{_rule}/{{{_wc}}}.tsv"
        priority: gap_arm_priority
        conda:
            USSEG_ENV
        threads: experiment_cpu_share(gap_arm_settings)
        resources:
            gpu=gap_arm_gpu,
        params:
            **prepared_data_params(remedies=True),
            experiment=gap_arm_settings,
            seed_folders=gap_seed_folders,
            # Outside the outputs: Snakemake deletes a failed job's outputs, and a
            # pre-empted training resumes from here.
            checkpoint_dirs=lambda wildcards: [
                seed_dir(f"{RESULTS}/checkpoints/gap/{gap_arm_name(wildcards)}", k)
                for k in GAP_SEEDS
            ],
            test_sets=_test_sets,
            # The foreground mean is over the classes scored on every test set.
            all_test_sets=TEST_SETS,
            evaluation=config["evaluation"],
            trained_in=gap_arm_trained_in,
            evaluated_in=gap_arm_evaluated_in,
        script:
            "../scripts/gap_arm.py"


rule gap_domain:
    input:
        manifest=rules.manifest.output.manifest,
        root=rules.manifest.output.root,
        splits=rules.split.output.splits,
        arrays=prepared_arrays(gap_remedy_settings),
        code=experiment_code_of(
            "../scripts/gap_domain.py", gap_remedy_settings, trainer=False
        ),
    output:
        auc=f"{GAP}/domain/{{remedy}}.json",
        provenance=f"{PROV}/gap/domain/{{remedy}}.json",
    log:
        f"{LOGS}/gap/domain_{{remedy}}.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        **prepared_data_params(remedies=True),
        experiment=gap_remedy_settings,
        diagnostics=config["diagnostics"],
    script:
        "../scripts/gap_domain.py"


rule gap_summary:
    input:
        # Every file of every arm's job (each seed's training and evaluation tables).
        arms=[
            f
            for arm in GAP_ARMS
            for f in seed_files(GAP_ARM_DIR.format(arm=arm), GAP_SEEDS, TEST_SETS)
        ],
        loso=gap_loso_arm_files,
        domain=expand(rules.gap_domain.output.auc, remedy=GAP_REMEDIES),
        code=code_of("../scripts/gap_summary.py"),
    output:
        gap_closure=f"{GAP}/gap_closure.csv",
        seed_effects=f"{GAP}/seed_effects.csv",
        loso=f"{GAP}/loso.csv",
        learning_curve=f"{GAP}/learning_curve.csv",
        when_to_stop=f"{GAP}/when_to_stop.json",
        # The same numbers shaped for `dvc metrics` and `dvc plots` (docs/dvc.md).
        gap_closure_json=f"{GAP}/gap_closure.json",
        learning_curve_dice=f"{GAP}/learning_curve_dice.csv",
        provenance=f"{PROV}/gap/summary.json",
    log:
        f"{LOGS}/gap/summary.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        study=config["gap_study"],
        test_sets=TEST_SETS,
        target_test_set=TARGET_TEST_SET,
        arm_dirs=gap_arm_dirs,
        domain_files={r: f"{GAP}/domain/{r}.json" for r in GAP_REMEDIES},
    script:
        "../scripts/gap_summary.py"
