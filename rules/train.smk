# One model per experiment, evaluated on each test set. Memory, runtime and
# cluster settings come from the profiles. A training uses its experiment's
# `threads` setting; its share of --cores (at most one job per CPU) and whether
# it holds the `gpu` token are computed here (usseg.resources).

EXP = f"{RESULTS}/experiments/{{experiment}}"


rule train:
    input:
        **prepared_data(arrays=prepared_arrays()),
        code=experiment_code_of("../scripts/train.py"),
    output:
        model=f"{EXP}/model.safetensors",
        history=report(
            f"{EXP}/history.csv",
            caption="../docs/captions/history.rst",
            category="5. Experiments",
            subcategory="{experiment}",
        ),
        # Seconds per epoch: apart from history.csv, so results compare by hash.
        timing=f"{EXP}/timing.csv",
        curves=report(
            f"{EXP}/curves.png",
            caption="../docs/captions/curves.rst",
            category="5. Experiments",
            subcategory="{experiment}",
        ),
        provenance=f"{PROV}/train/{{experiment}}.json",
    log:
        f"{LOGS}/train/{{experiment}}.log",
    benchmark:
        f"{BENCH}/train/{{experiment}}.tsv"
    priority: PRIORITY_UNLOCKS
    conda:
        USSEG_ENV
    threads: experiment_cpu_share()
    resources:
        gpu=experiment_gpu,
    params:
        **training_params(),
        # Outside the rule's outputs on purpose: Snakemake deletes the outputs
        # of a failed job, and this must survive to resume a pre-empted one.
        checkpoint_dir=f"{RESULTS}/checkpoints/{{experiment}}",
    script:
        "../scripts/train.py"


rule evaluate:
    input:
        **prepared_data(arrays=prepared_arrays()),
        model=rules.train.output.model,
        code=experiment_code_of("../scripts/evaluate.py", trainer=False),
    output:
        **evaluation_outputs(f"{EXP}/eval/{{test_set}}", category="5. Experiments"),
        # The headline alone (usseg.headline), for a short `dvc metrics show` (docs/dvc.md).
        headline=f"{EXP}/eval/{{test_set}}/headline.json",
        provenance=f"{PROV}/evaluate/{{experiment}}/{{test_set}}.json",
    log:
        f"{LOGS}/evaluate/{{experiment}}/{{test_set}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{experiment}}/{{test_set}}.tsv"
    priority: PRIORITY_UNLOCKS
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        **training_params(),
        evaluation=config["evaluation"],
        # The foreground mean is over the classes scored on every test set.
        test_sets=TEST_SETS,
    script:
        "../scripts/evaluate.py"
