# Data diagnostics and the dataset-readiness verdict (results/diagnostics/).

DIAG = f"{RESULTS}/diagnostics"


rule diagnostics:
    input:
        manifest=rules.manifest.output.manifest,
        root=rules.manifest.output.root,
        issues=rules.manifest.output.issues,
        labels=rules.decode_masks.output.labels,
        splits=rules.split.output.splits,
        code=code_of("../scripts/diagnostics.py"),
    output:
        checklist=report(
            f"{DIAG}/checklist.json",
            caption="../docs/captions/checklist.rst",
            category="1. Verdict",
        ),
        checklist_md=f"{DIAG}/checklist.md",
        composition=report(
            f"{DIAG}/composition.png",
            caption="../docs/captions/composition.rst",
            category="2. Dataset",
        ),
        composition_csv=f"{DIAG}/composition.csv",
        subjects=report(
            f"{DIAG}/subjects.png",
            caption="../docs/captions/subjects.rst",
            category="2. Dataset",
        ),
        subjects_csv=f"{DIAG}/subjects.csv",
        frames_per_subject=f"{DIAG}/frames_per_subject.csv",
        class_balance=report(
            f"{DIAG}/class_balance.png",
            caption="../docs/captions/class_balance.rst",
            category="2. Dataset",
        ),
        class_balance_csv=f"{DIAG}/class_balance.csv",
        class_weights=f"{DIAG}/class_weights.json",
        domain_shift=report(
            f"{DIAG}/domain_shift.png",
            caption="../docs/captions/domain_shift.rst",
            category="3. Domain shift",
        ),
        domain_shift_json=f"{DIAG}/domain_shift.json",
        histograms=f"{DIAG}/intensity_histograms.csv",
        label_shift=report(
            f"{DIAG}/label_shift.png",
            caption="../docs/captions/label_shift.rst",
            category="3. Domain shift",
        ),
        label_shift_csv=f"{DIAG}/label_shift.csv",
        label_shift_json=f"{DIAG}/label_shift.json",
        galleries=report(
            expand(f"{DIAG}/label_gallery_{{modality}}.png", modality=MODALITIES),
            caption="../docs/captions/label_gallery.rst",
            category="4. Label verification",
        ),
        label_flags=f"{DIAG}/label_flags.csv",
        leakage=f"{DIAG}/leakage.json",
        near_duplicates=f"{DIAG}/near_duplicates.csv",
        baselines=f"{DIAG}/baselines.csv",
        image_quality=report(
            f"{DIAG}/image_quality.png",
            caption="../docs/captions/image_quality.rst",
            category="2. Dataset",
        ),
        image_quality_csv=f"{DIAG}/image_quality.csv",
        provenance=f"{PROV}/diagnostics.json",
    log:
        f"{LOGS}/diagnostics.log",
    benchmark:
        f"{BENCH}/diagnostics.tsv"
    conda:
        USSEG_ENV
    threads: cpu_share()
    params:
        dataset=config["dataset"],
        diagnostics=config["diagnostics"],
        model_image_size=config["experiment_defaults"]["image_size"],
        data_is_demo=config["data_root"] is None,
    script:
        "../scripts/diagnostics.py"
