"""Composition, subjects, class balance, baselines and the checklist: numbers, thresholds and wording."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from test_diagnostics_fixtures import DATASET_CFG, DEMO_LIKE, DIAG_CFG, build
from usseg.diagnostics.baselines import (
    KAGGLE_ABDOMINAL_US,
    REFERENCE_DATASETS,
    check_baselines,
    data_fingerprint,
)
from usseg.diagnostics.checklist import (
    CHECK_ORDER,
    build_checklist,
    next_step_records,
    next_steps,
    render_markdown,
)
from usseg.diagnostics.class_balance_check import check_class_balance
from usseg.diagnostics.composition import check_composition
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.label_stats import collect_label_stats
from usseg.diagnostics.status import (
    FAIL,
    PASS,
    WARN,
    CheckResult,
    status_above,
    status_below,
    worst,
)
from usseg.diagnostics.subjects import check_subjects, kish_effective_size
from usseg.errors import DataError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    fx = build(tmp_path_factory.mktemp("checks"), DEMO_LIKE)
    fx.out_dir.mkdir(parents=True)
    inputs = load_inputs(
        DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    return fx, inputs


def with_cfg(inputs, **diag):
    return type(inputs)(**{**inputs.__dict__, "diag_cfg": {**inputs.diag_cfg, **diag}})


def test_thresholds_and_worst():
    th = {"warn_below": 10, "fail_below": 5}
    assert [status_below(v, th) for v in (4, 5, 9, 10)] == [FAIL, WARN, WARN, PASS]
    th = {"warn_above": 0.75, "fail_above": 0.9}
    assert [status_above(v, th) for v in (0.5, 0.75, 0.8, 0.95)] == [PASS, PASS, WARN, FAIL]
    assert worst([PASS, WARN, PASS]) == WARN and worst([WARN, FAIL]) == FAIL and worst([]) == PASS


def test_kish_effective_size_of_the_reference_subjects():
    assert kish_effective_size([26, 16, 10, 8]) == pytest.approx(3600 / 1096)
    assert kish_effective_size([5, 5, 5]) == pytest.approx(3)
    assert kish_effective_size([]) == 0


def test_composition_counts_and_share(demo):
    fx, inputs = demo
    result = check_composition(inputs, fx.outputs)
    table = pd.read_csv(fx.out_dir / "composition.csv")
    rus_test = table[(table["modality"] == "RUS") & (table["orig_split"] == "test")].iloc[0]
    assert (rus_test["labeled"], rus_test["unlabeled"]) == (15, 8)
    assert table["total"].sum() == len(inputs.images)
    # Judged on the training labels: every real label sits in the test set, none in train/val.
    training = inputs.images[inputs.images["has_mask"] & inputs.images["split"].isin(["train", "val"])]
    assert len(training) and result.value == 0.0 and result.status == FAIL
    assert result.reason.startswith(
        f"0 of {len(training)} training labels (train and val splits) come from the target modality RUS (real); "
        "overall 15 of 81 labeled images (18.5%) are RUS (real), all of them outside the training splits"
    )
    # Real labels moved into training: the share and the status follow them.
    moved = dataclasses.replace(inputs, images=inputs.images.copy())
    real = moved.images.index[(moved.images["modality"] == "RUS") & moved.images["has_mask"]][:8]
    moved.images.loc[real, "split"] = "train"
    share = 8 / (len(training) + 8)
    result = check_composition(moved, fx.outputs)
    assert result.value == pytest.approx(share, abs=1e-4) and result.status == WARN  # 0.1 <= share < 0.3
    strict = with_cfg(moved, min_target_label_share={"warn_below": 0.5, "fail_below": 0.2})
    assert check_composition(strict, fx.outputs).status == FAIL


def test_subjects_status_follows_the_thresholds(demo):
    fx, inputs = demo
    assert check_subjects(inputs, fx.outputs).status == FAIL
    lenient = with_cfg(inputs, min_labeled_target_subjects={"warn_below": 5, "fail_below": 3})
    result = check_subjects(lenient, fx.outputs)
    assert result.status == WARN and result.value == 4
    assert result.details["labeled_frames_per_target_subject"] == {"h": 6, "a": 4, "g": 3, "b": 2}


def test_class_balance_finds_rare_and_missing_classes(demo):
    fx, inputs = demo
    result = check_class_balance(inputs, collect_label_stats(inputs), fx.outputs)
    assert result.status == WARN
    assert set(result.details["missing_by_modality"]["RUS"]) >= {"bone", "pancreas", "adrenal"}
    table = pd.read_csv(fx.out_dir / "class_balance.csv")
    overall = table[table["modality"] == "all"].set_index("class")
    fg = overall.loc[overall.index != "background", "foreground_share"]
    assert fg.sum() == pytest.approx(1.0)
    # rare is exactly the documented rule
    expected = overall.index[
        (overall.index != "background")
        & (overall["n_images_with_class"] > 0)
        & ((overall["foreground_share"] < 0.01) | (overall["n_images_with_class"] < 20))
    ]
    assert sorted(result.details["rare"]) == sorted(expected)
    weights = json.loads((fx.out_dir / "class_weights.json").read_text())
    assert weights["adrenal"] > weights["liver"]


def test_class_balance_passes_when_nothing_is_rare_or_missing(demo):
    fx, inputs = demo
    lenient = with_cfg(inputs, rare_class_pixel_share=0.0, min_images_per_class=0)
    aus_only = type(inputs)(
        **{**lenient.__dict__, "images": inputs.images[inputs.images["modality"] == "AUS"]}
    )
    result = check_class_balance(aus_only, collect_label_stats(aus_only), fx.outputs)
    assert result.status == PASS, result.reason


def test_baselines_table_and_empty_warning(demo):
    fx, inputs = demo
    # A name is no proof: "measured on the fixture" is not comparable, whatever the name.
    result = check_baselines(inputs, fx.outputs)
    assert result.status == WARN and result.value == 0
    fingerprint = data_fingerprint(inputs.images)
    assert fingerprint in result.reason  # what a lab records beside its own results
    proven = [{**DIAG_CFG["published_baselines"][0], "fingerprint": fingerprint}]
    result = check_baselines(with_cfg(inputs, published_baselines=proven), fx.outputs)
    assert result.status == PASS and result.value == 1
    table = pd.read_csv(fx.out_dir / "baselines.csv", keep_default_na=False)
    assert table[list(DIAG_CFG["published_baselines"][0])].to_dict("records") == DIAG_CFG[
        "published_baselines"
    ]
    assert table["comparable"].tolist() == [True]
    # Another data's fingerprint: not comparable.
    other = [{**proven[0], "fingerprint": "0" * 64}]
    assert check_baselines(with_cfg(inputs, published_baselines=other), fx.outputs).status == WARN


def test_baselines_pass_only_when_measured_on_this_data(demo):
    fx, inputs = demo
    elsewhere = {
        "source": "MedSegBench",
        "test_set": "MedSegBench test split",
        "class": "all classes",
        "metric": "f1",
        "value": 0.64,
        "measured_on": "MedSegBench AbdomenUS",
        "note": "background included",
    }
    other = check_baselines(with_cfg(inputs, published_baselines=[elsewhere]), fx.outputs)
    assert other.status == WARN and other.value == 0
    assert "none of 1 published result(s) was measured on this data" in other.reason
    assert "not comparable" in other.reason
    table = pd.read_csv(fx.out_dir / "baselines.csv", keep_default_na=False)
    assert table["comparable"].tolist() == [False] and table["note"].tolist() == ["background included"]
    # On the generated demo nothing is comparable, not even a result "measured on" its dataset_id.
    demo_run = check_baselines(inputs, fx.outputs, data_is_demo=True)
    assert demo_run.status == WARN and demo_run.value == 0
    assert "generated demo" in demo_run.reason
    proven = {**DIAG_CFG["published_baselines"][0], "fingerprint": data_fingerprint(inputs.images)}
    mixed = check_baselines(with_cfg(inputs, published_baselines=[elsewhere, proven]), fx.outputs)
    assert mixed.status == PASS and mixed.value == 1 and "1 of 2" in mixed.reason
    empty = check_baselines(with_cfg(inputs, published_baselines=[]), fx.outputs)
    assert empty.status == WARN
    assert (
        "no published baselines configured" in empty.reason
        and "diagnostics.published_baselines" in empty.reason
    )
    unknown = check_baselines(
        with_cfg(
            inputs,
            published_baselines=[
                {
                    "source": "x",
                    "test_set": "test_rus",
                    "class": "thyroid",
                    "metric": "dice",
                    "value": 0.5,
                    "measured_on": "the fixture",
                }
            ],
        ),
        fx.outputs,
    )
    assert unknown.status == WARN and "thyroid" in unknown.reason


def _results(statuses):
    return [
        CheckResult(cid, cid.title(), s, 1, "t", "because") for cid, s in zip(CHECK_ORDER, statuses)
    ]


def test_checklist_order_overall_and_markdown():
    res = _results([PASS, FAIL, PASS, WARN, PASS, PASS, PASS, PASS])[
        ::-1
    ]  # order of arrival does not matter
    checklist = build_checklist(res)
    assert [c["id"] for c in checklist["checks"]] == CHECK_ORDER
    assert checklist["overall"] == FAIL
    md = render_markdown(checklist, {r.id: r for r in res}, "RUS")
    assert "**Overall: FAIL**" in md and "| Subjects | **FAIL** |" in md
    steps = next_steps({r.id: r for r in res}, "RUS")
    assert len(steps) == 2 and "distinct subjects" in steps[0] and "Domain adaptation" in steps[1]
    assert "Every check passed" in render_markdown(build_checklist(_results([PASS] * 8)), {}, "RUS")
    with pytest.raises(ValueError, match="leakage"):
        build_checklist([r for r in res if r.id != "leakage"])


def test_each_next_step_names_its_check_and_side():
    """The verdict keeps the data-side steps after the gap study's measured ranking; the model side is
    what the gap study's remedies measure."""
    res = {r.id: r for r in _results([FAIL] * 8)}
    records = next_step_records(res, "RUS")
    assert [r["text"] for r in records] == next_steps(res, "RUS")
    assert {r["check"] for r in records} <= set(CHECK_ORDER)
    side = {r["check"]: r["side"] for r in records}
    assert side == {"subjects": "data", "composition": "model", "domain_shift": "model",
                    "class_balance": "model", "label_verification": "data", "leakage": "data",
                    "published_baselines": "data", "image_quality": "data"}


def test_missing_or_malformed_inputs_name_the_file(tmp_path, demo):
    fx, _ = demo
    with pytest.raises(DataError, match="nope.csv does not exist: run the manifest step first"):
        load_inputs(
            DATASET_CFG,
            DIAG_CFG,
            fx.root,
            tmp_path / "nope.csv",
            fx.issues_csv,
            fx.labels_dir,
            fx.splits_csv,
        )
    bad = tmp_path / "splits.csv"
    pd.DataFrame({"image_id": ["x"], "split": ["train"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="subject_id"):
        load_inputs(
            DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, bad
        )


def test_inputs_join_split_and_decode_report(demo):
    _, inputs = demo
    img = inputs.images.set_index("image_id")
    assert (
        img.loc["RUS_train_c1", "split"] == "unlabeled" and not img.loc["RUS_train_c1", "has_mask"]
    )
    assert img.loc["AUS_train_ct1-1", "split"] == "train" and img.loc["AUS_train_ct1-1", "has_mask"]
    assert np.isclose(
        img.loc["AUS_train_ct1-1", "off_palette_fraction"], 3 / 64
    )  # the padding strip


def test_subjects_reason_gives_one_effective_number(demo):
    fx, inputs = demo
    result = check_subjects(inputs, fx.outputs)
    kish = kish_effective_size([6, 4, 3, 2])
    assert f"effective number of subjects {kish:.1f}" in result.reason
    # One number for the effective size: the subject count is never called an effective size too.
    assert result.reason.count("effective") == 1
    assert "effective sample size" not in result.reason


def test_next_step_for_baselines_on_the_demo_points_at_the_real_data(demo):
    fx, inputs = demo
    on_demo = check_baselines(inputs, fx.outputs, data_is_demo=True)
    steps = next_steps({"published_baselines": on_demo}, "RUS")
    assert len(steps) == 1 and "generated demo" in steps[0] and "data_root" in steps[0]
    elsewhere = check_baselines(inputs, fx.outputs)
    steps = next_steps({"published_baselines": elsewhere}, "RUS")
    assert len(steps) == 1 and "fingerprint" in steps[0]


def _reference_like(inputs):
    """The demo fixture's inputs with a manifest and issues table shaped like the Kaggle reference's facts."""
    rows = []

    def add(mod, split, subject, n, ext, labeled=0):
        for k in range(n):
            stem = f"{subject}-{k}" if mod == "AUS" else f"{subject}{k}"
            rows.append({"image_id": f"{mod}_{split}_{stem}", "subject_id": subject, "modality": mod,
                         "orig_split": split, "image_path": f"{mod}/images/{split}/{stem}{ext}",
                         "has_mask": k < labeled, "mask_path": "", "sha256": stem, "mask_sha256": ""})

    for i, n in enumerate([70] * 8 + [73]):  # 633
        add("AUS", "train", f"ct{i + 1}", n, ".png", labeled=n)
    for i, n in enumerate([73, 73, 73, 74]):  # 293
        add("AUS", "test", f"ct{i + 10}", n, ".png", labeled=n)
    for i, n in enumerate([58] * 6 + [56]):  # 404
        add("RUS", "train", "cdefijk"[i], n, ".jpg")
    for subject, labeled, n in (("h", 26, 64), ("a", 16, 52), ("g", 10, 52), ("b", 8, 45)):  # 213, 60 labeled
        add("RUS", "test", subject, n, ".jpg", labeled=labeled)
    issues = pd.DataFrame([{"path": "RUS/annotations/test/x1.png", "reason": "orphan_annotation", "detail": "-"}])
    return type(inputs)(**{**inputs.__dict__, "images": pd.DataFrame(rows), "issues": issues})


def test_the_reference_dataset_is_recognised_by_its_facts_and_nothing_else_is(demo):
    fx, inputs = demo
    article = [{"source": "article", "test_set": "test_aus", "class": "liver", "metric": "dice", "value": 0.68,
                "measured_on": KAGGLE_ABDOMINAL_US}]
    reference = with_cfg(_reference_like(inputs), published_baselines=article)
    assert check_baselines(reference, fx.outputs).status == PASS
    assert check_baselines(reference, fx.outputs, data_is_demo=True).status == WARN  # never the demo
    # One labeled real frame fewer for subject b: not provably the reference any more.
    short = reference.images.copy()
    short.loc[(short["subject_id"] == "b") & short["has_mask"], "has_mask"] = [True] * 7 + [False]
    changed = type(reference)(**{**reference.__dict__, "images": short})
    result = check_baselines(changed, fx.outputs)
    assert result.status == WARN and result.value == 0
    assert "RUS labeled frames per subject" in result.reason and "b 7" in result.reason
    # The fixture itself (another dataset) under the article's name: not comparable.
    planted = check_baselines(with_cfg(inputs, published_baselines=article), fx.outputs)
    assert planted.status == WARN and f"this data is not {KAGGLE_ABDOMINAL_US}" in planted.reason
    assert set(REFERENCE_DATASETS) == {KAGGLE_ABDOMINAL_US}


def test_class_balance_value_names_classes_rare_only_in_the_target_domain(demo):
    # Rare only where the model must work: the WARN's value says so (never "0 rare" beside a WARN).
    fx, inputs = demo
    strict = with_cfg(inputs, rare_class_pixel_share=0.0, min_images_per_class=100)
    result = check_class_balance(strict, collect_label_stats(strict), fx.outputs)
    in_target = result.details["rare_in_target"]
    assert in_target and set(in_target) != set(result.details["rare"])
    assert result.status == WARN and f"{len(in_target)} rare in {inputs.target_modality}" in result.value
