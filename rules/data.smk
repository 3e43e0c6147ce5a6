# Data preparation: the demo dataset, the manifest, the label cache, the split.


rule demo_data:
    input:
        code=code_of("../scripts/demo_data.py"),
    output:
        root=directory(f"{DEMO_DIR}/abdominal_US"),
        provenance=f"{PROV}/demo_data.json",
    log:
        f"{LOGS}/demo_data.log",
    benchmark:
        f"{BENCH}/demo_data.tsv"
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        out_dir=folder_of("root"),
        size=config["demo"]["size"],
        seed=config["demo"]["seed"],
        classes=config["dataset"]["classes"],
    script:
        "../scripts/demo_data.py"


rule manifest:
    input:
        data=dataset_input,
        fingerprint=dataset_fingerprint(),
        code=code_of("../scripts/manifest.py"),
    output:
        manifest=f"{RESULTS}/manifest.csv",
        issues=f"{RESULTS}/manifest_issues.csv",
        # The dataset root found below data_root: later stages read it, not search again.
        root=f"{RESULTS}/dataset_root.json",
        provenance=f"{PROV}/manifest.json",
    log:
        f"{LOGS}/manifest.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        data_root=data_root(),
        dataset=config["dataset"],
        strict=config["strict"],
    script:
        "../scripts/manifest.py"


rule decode_masks:
    input:
        manifest=rules.manifest.output.manifest,
        root=rules.manifest.output.root,
        code=code_of("../scripts/decode_masks.py"),
    output:
        labels=directory(f"{RESULTS}/labels"),
        provenance=f"{PROV}/decode_masks.json",
    log:
        f"{LOGS}/decode_masks.log",
    benchmark:
        f"{BENCH}/decode_masks.tsv"
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        dataset=config["dataset"],
        strict=config["strict"],
    script:
        "../scripts/decode_masks.py"


# Every manifest image (and its palette labels) at one image size, made once
# and read by every training, evaluation and check at that size
# (usseg.prepared_arrays); the sizes are those of the experiments.
rule prepare_arrays:
    input:
        manifest=rules.manifest.output.manifest,
        root=rules.manifest.output.root,
        labels=rules.decode_masks.output.labels,
        code=code_of("../scripts/prepare_arrays.py"),
    output:
        arrays=f"{RESULTS}/prepared/{{height}}x{{width}}.safetensors",
        provenance=f"{PROV}/prepare_arrays/{{height}}x{{width}}.json",
    log:
        f"{LOGS}/prepare_arrays/{{height}}x{{width}}.log",
    benchmark:
        f"{BENCH}/prepare_arrays/{{height}}x{{width}}.tsv"
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        palette_size=len(config["dataset"]["classes"]),
    script:
        "../scripts/prepare_arrays.py"


checkpoint split:
    input:
        manifest=rules.manifest.output.manifest,
        issues=rules.manifest.output.issues,
        labels=rules.decode_masks.output.labels,
        code=code_of("../scripts/split.py"),
    output:
        splits=f"{RESULTS}/splits.csv",
        provenance=f"{PROV}/split.json",
    log:
        f"{LOGS}/split.log",
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        val_fraction=config["split"]["val_fraction"],
        seed=config["split"]["seed"],
        strict=config["strict"],
        dataset=config["dataset"],
        test_sets=TEST_SETS,
        # A flat layout's test draw (test_fraction, trained modalities); {} for split folders.
        flat=flat_split_settings(config),
    script:
        "../scripts/split.py"
