# The gap study, "what would help" (docs/remedies.md): each remedy experiment is
# trained and evaluated by the train and evaluate rules (one job each, so on
# SLURM each remedy is its own job); here the baseline is also trained once per
# held-out labeled real subject (LOSO) and once per share of the simulator's
# training subjects (learning curve), and the results are compared at the
# subject level. Runs only when gap_study.enabled.

from usseg.remedies.spec import gap_baseline
from usseg.contracts import test_set_name
from usseg.gap import (
    curve_experiment,
    fraction_names,
    loso_experiment,
    remedy_experiments,
)

GAP = f"{RESULTS}/gap"
GAP_ENABLED = config["gap_study"]["enabled"]
# Off: the baseline named may not be an experiment of this run; nothing is asked of it.
GAP_BASELINE = gap_baseline(config) if GAP_ENABLED else None
GAP_BASELINE_EXPERIMENT = (
    Experiment.from_config(config, GAP_BASELINE) if GAP_ENABLED else None
)
GAP_REMEDIES = remedy_experiments(config) if GAP_ENABLED else []
GAP_FRACTIONS = fraction_names(config)
TARGET_TEST_SET = test_set_name(config["dataset"]["target_modality"])


wildcard_constraints:
    fraction="[0-9.]+",
    subject="[^/]+",


checkpoint gap_loso_folds:
    input:
        manifest=rules.manifest.output.manifest,
        splits=rules.split.output.splits,
        code=code_of("../scripts/gap_folds.py"),
    output:
        folds=directory(f"{GAP}/loso/folds"),
    log:
        f"{LOGS}/gap/loso_folds.log",
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
    log:
        f"{LOGS}/gap/curve_split_{{fraction}}.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        fractions=config["gap_study"]["learning_curve_fractions"],
        modalities=lambda wildcards: list(
            curve_experiment(config, wildcards.fraction).train_modalities
        ),
        seed=config["split"]["seed"],
    script:
        "../scripts/gap_curve_split.py"


for _kind, _wc in (("loso", "subject"), ("curve", "fraction")):

    rule:
        name:
            f"gap_{_kind}_train"
        input:
            manifest=rules.manifest.output.manifest,
            root=rules.manifest.output.root,
            splits=gap_split(_kind),
            labels=rules.decode_masks.output.labels,
            arrays=prepared_arrays(gap_variant),
            code=experiment_code_of("../scripts/gap_train.py", gap_variant),
        output:
            model=f"{GAP}/{_kind}/{{{_wc}}}/model.safetensors",
            history=f"{GAP}/{_kind}/{{{_wc}}}/history.csv",
            timing=f"{GAP}/{_kind}/{{{_wc}}}/timing.csv",
            curves=f"{GAP}/{_kind}/{{{_wc}}}/curves.png",
        log:
            f"{LOGS}/gap/{_kind}_train_{{{_wc}}}.log",
        benchmark:
            f"{BENCH}/gap/{_kind}_train/{{{_wc}}}.tsv"
        conda:
            USSEG_ENV
        threads: experiment_cpu_share(gap_variant)
        resources:
            gpu=(
                gpu_token(
                    GAP_BASELINE_EXPERIMENT.device,
                    network=GAP_BASELINE_EXPERIMENT.is_network,
                )
                if GAP_ENABLED
                else 0
            ),
        params:
            experiment=gap_variant,
            dataset=config["dataset"],
            out_dir=f"{GAP}/{_kind}/{{{_wc}}}",
            checkpoint_dir=f"{RESULTS}/checkpoints/gap_{_kind}_{{{_wc}}}",
            fov_threshold=config["diagnostics"]["fov_threshold"],
        script:
            "../scripts/gap_train.py"

    rule:
        name:
            f"gap_{_kind}_evaluate"
        input:
            manifest=rules.manifest.output.manifest,
            root=rules.manifest.output.root,
            splits=gap_split(_kind),
            labels=rules.decode_masks.output.labels,
            arrays=prepared_arrays(gap_variant),
            model=f"{GAP}/{_kind}/{{{_wc}}}/model.safetensors",
            code=experiment_code_of(
                "../scripts/gap_evaluate.py", gap_variant, trainer=False
            ),
        output:
            per_image=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/per_image.csv",
            per_subject=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/per_subject.csv",
            summary=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/summary.json",
            overlays=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/overlays.png",
            confusion=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/confusion.csv",
            confusion_png=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}/confusion.png",
        log:
            f"{LOGS}/gap/{_kind}_evaluate_{{{_wc}}}_{{test_set}}.log",
        benchmark:
            f"{BENCH}/gap/{_kind}_evaluate/{{{_wc}}}_{{test_set}}.tsv"
        conda:
            USSEG_ENV
        threads: cpu_share()
        params:
            experiment=gap_variant,
            dataset=config["dataset"],
            evaluation=config["evaluation"],
            test_sets=TEST_SETS,
            out_dir=f"{GAP}/{_kind}/{{{_wc}}}/eval/{{test_set}}",
            fov_threshold=config["diagnostics"]["fov_threshold"],
        script:
            "../scripts/gap_evaluate.py"


rule gap_domain:
    input:
        manifest=rules.manifest.output.manifest,
        root=rules.manifest.output.root,
        splits=rules.split.output.splits,
        arrays=prepared_arrays(),
        code=experiment_code_of("../scripts/gap_domain.py", trainer=False),
    output:
        auc=f"{GAP}/domain/{{experiment}}.json",
    log:
        f"{LOGS}/gap/domain_{{experiment}}.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        experiment=experiment,
        dataset=config["dataset"],
        diagnostics=config["diagnostics"],
        fov_threshold=config["diagnostics"]["fov_threshold"],
    script:
        "../scripts/gap_domain.py"


GAP_EVALUATED = [GAP_BASELINE, *GAP_REMEDIES] if GAP_ENABLED else []


GAP_CURVE_DIRS = [[f, t, gap_curve_dir(f, t)] for f in GAP_FRACTIONS for t in TEST_SETS]


rule gap_summary:
    input:
        evaluated=expand(
            rules.evaluate.output.summary, experiment=GAP_EVALUATED, test_set=TEST_SETS
        ),
        timings=expand(rules.train.output.timing, experiment=GAP_EVALUATED),
        domain=expand(rules.gap_domain.output.auc, experiment=GAP_REMEDIES),
        loso=gap_loso_summaries,
        curve=[f"{d}/summary.json" for _, _, d in GAP_CURVE_DIRS],
        code=code_of("../scripts/gap_summary.py"),
    output:
        loso=f"{GAP}/loso.csv",
        learning_curve=f"{GAP}/learning_curve.csv",
        gap_closure=f"{GAP}/gap_closure.csv",
        when_to_stop=f"{GAP}/when_to_stop.json",
        # The same numbers shaped for `dvc metrics` and `dvc plots` (docs/dvc.md).
        gap_closure_json=f"{GAP}/gap_closure.json",
        learning_curve_dice=f"{GAP}/learning_curve_dice.csv",
    log:
        f"{LOGS}/gap/summary.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        config=config,
        eval_dirs=[
            [e, t, f"{RESULTS}/experiments/{e}/eval/{t}"]
            for e in GAP_EVALUATED
            for t in TEST_SETS
        ],
        timings={e: f"{RESULTS}/experiments/{e}/timing.csv" for e in GAP_EVALUATED},
        domain_files={e: f"{GAP}/domain/{e}.json" for e in GAP_REMEDIES},
        loso_dirs=gap_loso_dirs,
        curve_dirs=GAP_CURVE_DIRS,
    script:
        "../scripts/gap_summary.py"
