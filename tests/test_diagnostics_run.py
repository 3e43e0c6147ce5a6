"""End to end: run_diagnostics on a demo-like dataset reproduces the known diagnosis, and on a clean one raises no
false alarm about data quality."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_diagnostics_fixtures import CLEAN, DEMO_LIKE, DIAG_CFG, NAMES, build
from usseg.class_balance import pixel_counts, suggest_class_weights
from usseg.diagnostics import CHECK_ORDER, run_diagnostics
from usseg.diagnostics.status import worst
from usseg.figure_text import MAX_WIDTH_PX, MIN_FONT_PX, png_min_font_px


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    fx = build(tmp_path_factory.mktemp("demo"), DEMO_LIKE)
    checklist = run_diagnostics(*fx.args())
    return fx, checklist, {c["id"]: c for c in checklist["checks"]}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    fx = build(tmp_path_factory.mktemp("clean"), CLEAN, same_style=True)
    checklist = run_diagnostics(*fx.args())
    return fx, checklist, {c["id"]: c for c in checklist["checks"]}


def test_writes_every_declared_file_and_figures_are_real_images(demo):
    fx, _, _ = demo
    names = [Path(p).name for p in fx.outputs.files()]
    assert "label_gallery_AUS.png" in names and "label_gallery_RUS.png" in names
    written = {p.name for p in fx.out_dir.iterdir()}
    assert set(names) <= written
    for name in names:
        if name.endswith(".png"):
            with Image.open(fx.out_dir / name) as im:
                assert im.width >= 700 and im.height >= 250, name
                # not blank: a figure has dark (text) and light pixels
                grey = np.asarray(im.convert("L"))
                assert grey.min() < 80 and grey.max() > 200, name
            # made for the report's column: never wider, its smallest text recorded and large enough there
            data = (fx.out_dir / name).read_bytes()
            assert im.width <= MAX_WIDTH_PX, name
            assert png_min_font_px(data) is not None and png_min_font_px(data) >= MIN_FONT_PX, name


def test_checklist_follows_the_contract(demo):
    fx, checklist, _ = demo
    on_disk = json.loads((fx.out_dir / "checklist.json").read_text())
    assert on_disk == checklist
    assert [c["id"] for c in checklist["checks"]] == CHECK_ORDER
    for c in checklist["checks"]:
        assert set(c) == {"id", "title", "status", "value", "threshold", "reason"}
        assert c["status"] in {"PASS", "WARN", "FAIL"}
        assert c["value"] is None or isinstance(c["value"], (int, float, str))
        assert isinstance(c["threshold"], (int, float, str)) and c["reason"]
    assert checklist["overall"] == worst(c["status"] for c in checklist["checks"])


def test_reproduces_the_known_diagnosis(demo):
    _, checklist, by_id = demo
    assert checklist["overall"] == "FAIL"
    # No real label is in the training splits: a FAIL by the composition's own threshold.
    assert by_id["composition"]["status"] == "FAIL" and by_id["composition"]["value"] == 0.0
    assert "overall 15 of 81 labeled images (18.5%) are RUS (real)" in by_id["composition"]["reason"]
    assert by_id["subjects"]["status"] == "FAIL" and by_id["subjects"]["value"] == 4
    assert "only 4 labeled RUS (real) subjects" in by_id["subjects"]["reason"]
    # Detectable, not yet shown to harm: the diagnostics WARN; the final verdict decides on harm.
    assert by_id["domain_shift"]["status"] == "WARN" and by_id["domain_shift"]["value"] > 0.9
    assert "a detectable shift, clear" in by_id["domain_shift"]["reason"]
    # ... and the organs are smaller on the real images (radii x 0.75 in the fixture, as in the demo)
    assert "Label shift: liver 1.7x smaller in RUS" in by_id["domain_shift"]["reason"]
    assert "kidney" in by_id["domain_shift"]["reason"]
    # "measured on the fixture" is a name, not a proof that this is that data: not comparable.
    assert by_id["published_baselines"]["status"] == "WARN"
    assert "cannot tell that the fixture is this data" in by_id["published_baselines"]["reason"]
    assert by_id["image_quality"]["status"] == "PASS"
    assert by_id["class_balance"]["status"] == "WARN"
    assert "never labeled in RUS (real): bone, pancreas" in by_id["class_balance"]["reason"]
    # nothing is wrong with these labels or splits
    assert by_id["label_verification"]["status"] == "PASS"
    assert by_id["leakage"]["status"] == "PASS"


def test_frames_per_subject_and_effective_size(demo):
    fx, _, by_id = demo
    fps = pd.read_csv(fx.out_dir / "frames_per_subject.csv", keep_default_na=False)
    rus = fps[(fps["modality"] == "RUS") & (fps["n_labeled_frames"] > 0)]
    assert dict(zip(rus["subject_id"], rus["n_labeled_frames"])) == {"h": 6, "a": 4, "g": 3, "b": 2}
    kish = (6 + 4 + 3 + 2) ** 2 / (36 + 16 + 9 + 4)
    assert f"effective number of subjects {kish:.1f}" in by_id["subjects"]["reason"]
    subj = pd.read_csv(fx.out_dir / "subjects.csv")
    rus_all = subj[(subj["modality"] == "RUS") & (subj["split"] == "all")].iloc[0]
    assert rus_all["n_subjects"] == 9 and rus_all["n_labeled_subjects"] == 4


def test_class_weights_come_from_the_labeled_training_pixels(demo):
    fx, _, _ = demo
    splits = pd.read_csv(fx.splits_csv)
    train = splits.loc[splits["split"] == "train", "image_id"]
    expected = suggest_class_weights(
        pixel_counts((np.load(fx.labels_dir / f"{i}.npy") for i in train), len(NAMES))
    )
    weights = json.loads((fx.out_dir / "class_weights.json").read_text())
    assert list(weights) == NAMES
    assert np.allclose([weights[n] for n in NAMES], expected, atol=1e-4)


def test_markdown_states_verdict_and_next_steps(demo):
    fx, _, _ = demo
    md = (fx.out_dir / "checklist.md").read_text()
    assert "**Overall: FAIL**" in md
    assert md.count("\n| ") >= 1 + len(CHECK_ORDER)
    steps = md.split("## What to try next")[1].lower()
    for hint in ("more distinct subjects", "semi-supervised", "domain adaptation", "class_weights"):
        assert hint in steps
    assert "organs differ between the domains in size" in steps and "liver, gallbladder, kidney" in steps


def test_clean_same_distribution_dataset_raises_no_false_alarm(clean):
    fx, _, by_id = clean
    assert by_id["label_verification"]["status"] == "PASS"
    assert by_id["leakage"]["status"] == "PASS"
    assert by_id["domain_shift"]["status"] == "PASS"
    assert by_id["domain_shift"]["value"] < DIAG_CFG["domain_auc"]["warn_above"]
    assert by_id["image_quality"]["status"] == "PASS"
    assert json.loads((fx.out_dir / "label_shift.json").read_text())["shifted_classes"] == []
    assert by_id["subjects"]["status"] == "PASS" and by_id["composition"]["status"] == "PASS"
    assert pd.read_csv(fx.out_dir / "label_flags.csv").empty
    assert pd.read_csv(fx.out_dir / "near_duplicates.csv").empty


def test_a_dataset_without_masks_is_diagnosed_not_crashed(tmp_path):
    layout = [(m, s, subj, n, 0) for m, s, subj, n, _ in DEMO_LIKE]
    fx = build(tmp_path, layout)
    by_id = {c["id"]: c for c in run_diagnostics(*fx.args())["checks"]}
    assert by_id["composition"]["status"] == "FAIL" and by_id["composition"]["reason"].startswith(
        "no image has a label"
    )
    assert by_id["subjects"]["status"] == "FAIL" and by_id["subjects"]["value"] == 0
    assert by_id["label_verification"]["status"] == "WARN"
    assert "never labeled at all" in by_id["class_balance"]["reason"]
    assert by_id["domain_shift"]["status"] == "WARN"  # unlabeled images still show the (detectable) gap
    assert {p.name for p in fx.out_dir.iterdir()} >= {Path(p).name for p in fx.outputs.files()}
