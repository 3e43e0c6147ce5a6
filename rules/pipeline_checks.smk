# Pipeline checks (docs/pipeline-checks.md): is it the pipeline or the data?
# Sanity checks of every network experiment's training, the label round trip,
# and the export of the prepared data to nnU-Net v2's raw format.
#   snakemake --cores 8 sanity_checks
#   snakemake --cores 8 nnunet_export
#   snakemake --cores 8 nnunet_reference

from usseg.checks.nnunet_reference import reference_runs

SANITY = f"{RESULTS}/sanity"
# The training checks run a network's training loop; the forest has none.
SANITY_EXPERIMENTS = [
    name for name in EXPERIMENTS if Experiment.from_config(config, name).is_network
]


rule sanity_checks:
    input:
        expand(f"{SANITY}/{{experiment}}.json", experiment=SANITY_EXPERIMENTS),
        f"{SANITY}/label_round_trip.json",


rule sanity_training:
    input:
        **prepared_data(arrays=prepared_arrays()),
        code=experiment_code_of("../scripts/sanity_training.py"),
    output:
        json=f"{SANITY}/{{experiment}}.json",
        provenance=f"{PROV}/sanity/{{experiment}}.json",
    log:
        f"{LOGS}/sanity/{{experiment}}.log",
    benchmark:
        f"{BENCH}/sanity/{{experiment}}.tsv"
    conda:
        USSEG_ENV
    # Trains like the train rule, so it is given the same threads and gpu token.
    threads: experiment_cpu_share()
    resources:
        gpu=experiment_gpu,
    params:
        **training_params(),
        sanity=config["sanity"],
        # The two training runs go to a temporary folder below this one.
        work_dir=folder_of("json"),
    script:
        "../scripts/sanity_training.py"


rule label_round_trip:
    input:
        **prepared_data(),
        code=code_of("../scripts/label_round_trip.py"),
    output:
        json=f"{SANITY}/label_round_trip.json",
        provenance=f"{PROV}/sanity/label_round_trip.json",
    log:
        f"{LOGS}/sanity/label_round_trip.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        **prepared_data_params(),
        sanity=config["sanity"],
    script:
        "../scripts/label_round_trip.py"


rule nnunet_export:
    input:
        **prepared_data(),
        code=code_of("../scripts/nnunet_export.py"),
    output:
        raw=directory(f"{RESULTS}/nnunet/nnUNet_raw"),
        provenance=f"{PROV}/nnunet_export.json",
    log:
        f"{LOGS}/nnunet_export.log",
    benchmark:
        f"{BENCH}/nnunet_export.tsv"
    priority: PRIORITY_UNLOCKS
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        **prepared_data_params(),
        nnunet=config["nnunet"],
        test_sets=TEST_SETS,
    script:
        "../scripts/nnunet_export.py"


NNUNET_EVAL = f"{RESULTS}/nnunet/eval"
# The report runs the reference when nnunet.enabled and nnunetv2 is installed.
NNUNET_SUMMARIES = (
    expand(f"{NNUNET_EVAL}/{{test_set}}/summary.json", test_set=TEST_SETS)
    if reference_runs(config["nnunet"])
    else []
)


rule nnunet_reference:
    input:
        expand(f"{NNUNET_EVAL}/{{test_set}}/summary.json", test_set=TEST_SETS),


rule nnunet_train_predict:
    input:
        raw=rules.nnunet_export.output.raw,
        code=code_of("../scripts/nnunet_train_predict.py"),
    output:
        predictions=directory(f"{RESULTS}/nnunet/predictions"),
        info=f"{RESULTS}/nnunet/reference.json",
        provenance=f"{PROV}/nnunet_train_predict.json",
    log:
        f"{LOGS}/nnunet_train_predict.log",
    benchmark:
        f"{BENCH}/nnunet_train_predict.tsv"
    priority: PRIORITY_LONGEST
    conda:
        USSEG_ENV
    threads: cpu_share(config["nnunet"]["threads"])
    resources:
        gpu=gpu_token(config["nnunet"]["device"]),
    params:
        nnunet=config["nnunet"],
        test_sets=TEST_SETS,
        # nnU-Net's preprocessed data and checkpoints (nnUNet_preprocessed, nnUNet_results).
        work_dir=f"{RESULTS}/nnunet/work",
    script:
        "../scripts/nnunet_train_predict.py"


rule nnunet_evaluate:
    input:
        **prepared_data(),
        predictions=rules.nnunet_train_predict.output.predictions,
        code=code_of("../scripts/nnunet_evaluate.py"),
    output:
        **evaluation_outputs(f"{NNUNET_EVAL}/{{test_set}}"),
        provenance=f"{PROV}/nnunet_evaluate/{{test_set}}.json",
    log:
        f"{LOGS}/nnunet_evaluate/{{test_set}}.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    # usseg's own evaluation (usseg.evaluate) of nnU-Net's predictions.
    params:
        **prepared_data_params(),
        evaluation=config["evaluation"],
        test_sets=TEST_SETS,
        experiment_defaults=config["experiment_defaults"],
    script:
        "../scripts/nnunet_evaluate.py"
