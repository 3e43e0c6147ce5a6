import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import compute_hausdorff_distance, compute_surface_dice

from datasets import prepared
from test_train import run_training, tiny, tiny_config  # noqa: F401  (tiny is a fixture)
from usseg import evaluate as evaluate_mod
from usseg.contracts import EVALUATION_FILES, TRAINING_FILES, EvaluationOutputs, TrainingOutputs
from usseg.errors import UssegError
from usseg.evaluate import evaluate_experiment, largest_component_per_class
from usseg.experiment import Experiment

torch.set_num_threads(1)

SUMMARY_KEYS = ["experiment", "model", "test_set", "aggregation", "aggregation_definition", "n_images", "n_subjects",
                "dice", "dice_mean_foreground", "mean_foreground", "ci95", "per_subject", "unstable", "per_class",
                "area_rule", "pooled_image", "hd95_worst_definition", "metric_resolution", "nsd_tolerance_px",
                "min_reference_area_px", "excluded", "excluded_subjects"]
INTERVAL_KEYS = ["n_subjects", "ci95", "ci_method", "estimable", "interval_note", "range", "far_subjects"]
PER_CLASS_KEYS = ["n_images", "dice", *INTERVAL_KEYS, "nsd", "nsd_ci95", "hd95", "hd95_n_images", "hd95_worst",
                  "hd95_worst_ci95", "hd95_worst_n_images", "false_positive_images", "absent_images", "missed_images",
                  "too_small_images", "predicted_images", "pooled_image_dice", "area_rule"]


def _evaluate(cfg, name, paths, model_path, test_set, out, evaluation=None):
    return evaluate_experiment(Experiment.from_config(cfg, name), prepared(cfg, paths), model_path, test_set,
                               EvaluationOutputs.in_folder(out), evaluation=evaluation)


def test_largest_component_keeps_one_blob_per_class():
    lab = np.zeros((8, 8), np.uint8)
    lab[0:3, 0:3] = 1      # 9 px
    lab[6:8, 6:8] = 1      # 4 px, dropped
    lab[5, 0] = 2          # single blob of class 2, kept
    lab[4, 4] = 1          # diagonal neighbour of nothing, dropped
    out = largest_component_per_class(lab, [1, 2])
    assert (out == 1).sum() == 9 and out[0:3, 0:3].all()
    assert out[5, 0] == 2 and out[6:8, 6:8].sum() == 0


class _ConstantPredictor:
    """Predicts background everywhere except the top-left quarter (class 1)."""

    def __init__(self, class_names, size):
        self.class_names = class_names
        self.image_size = tuple(size)
        self.metadata = {}

    def predict(self, images):
        out = np.zeros((len(images), *self.image_size), np.uint8)
        out[:, : self.image_size[0] // 2, : self.image_size[1] // 2] = 1
        return out


def _constant_setup(cfg, monkeypatch):
    exp = Experiment.from_config(cfg, "multiorgan_unet")
    names = ["background", "liver", "bone", "gallbladder", "kidney", "pancreas", "vessels", "spleen", "adrenal"]
    monkeypatch.setattr(evaluate_mod, "load_predictor",
                        lambda path, device=None: _ConstantPredictor(names, exp.image_size))
    return names


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_evaluation_is_subject_level_at_full_resolution(tiny, tmp_path, monkeypatch):  # noqa: F811
    cfg = tiny_config()
    _constant_setup(cfg, monkeypatch)
    summary = _evaluate(cfg, "multiorgan_unet", tiny, "unused", "test_aus", tmp_path / "eval",
                        evaluation={"nsd_tolerance_px": 2, "min_reference_area_px": 1})
    per_image = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    # Expected values by hand, at the label's own 40x48 size: the prediction is the top-left 20x24 quarter.
    liver, nsd, hd95, liver_present = [], [], [], []
    for image_id in per_image["image_id"]:
        ref = np.load(tiny["labels_dir"] / f"{image_id}.npy")
        pred = np.zeros_like(ref)
        pred[:20, :24] = 1
        inter = ((pred == 1) & (ref == 1)).sum()
        liver.append(2 * inter / ((pred == 1).sum() + (ref == 1).sum()))
        liver_present.append(bool((ref == 1).any()))
        p, r = torch.from_numpy((pred == 1)[None, None]), torch.from_numpy((ref == 1)[None, None])
        nsd.append(float(compute_surface_dice(p, r, [2.0], include_background=True)[0, 0]))
        hd95.append(float(compute_hausdorff_distance(p, r, include_background=True, percentile=95)[0, 0]))
    np.testing.assert_allclose(per_image["dice_liver"], liver)
    np.testing.assert_allclose(per_image["nsd_liver"], nsd)
    np.testing.assert_allclose(per_image["hd95_liver"], hd95)
    assert all(liver_present)
    assert (per_image["dice_kidney"] == 0).all() and (per_image["dice_bone"] == 0).all()
    assert per_image["dice_pancreas"].isna().all()  # absent from reference and prediction
    assert per_image["hd95_kidney"].isna().all()  # kidney is never predicted: no distance, a miss
    np.testing.assert_allclose(per_image["dice_mean_scored"], (np.array(liver) + 0 + 0) / 3)

    assert list(summary) == SUMMARY_KEYS and summary["aggregation"] == "subject"
    # Subject first: each subject's mean over its images, then the mean over subjects.
    by_subject = per_image.groupby("subject_id")["dice_liver"].mean()
    assert summary["dice"]["liver"] == pytest.approx(by_subject.mean())
    assert set(summary["per_subject"]) == {"ct5", "ct6"}
    assert summary["per_subject"]["ct5"]["liver"] == pytest.approx(by_subject["ct5"])
    assert summary["pooled_image"]["dice"]["liver"] == pytest.approx(np.mean(liver))
    liver_cls = summary["per_class"]["liver"]
    assert list(liver_cls) == PER_CLASS_KEYS
    assert liver_cls["nsd"] == pytest.approx(per_image.groupby("subject_id")["nsd_liver"].mean().mean())
    assert liver_cls["hd95"] == pytest.approx(per_image.groupby("subject_id")["hd95_liver"].mean().mean())
    # Two subjects: no interval, said in words; the range names both.
    assert liver_cls["n_subjects"] == 2 and liver_cls["estimable"] is False and liver_cls["ci95"] is None
    assert liver_cls["interval_note"] == "n = 2 subjects: no interval" and summary["ci95"]["liver"] is None
    assert liver_cls["range"]["min_subject"] == by_subject.idxmin() and liver_cls["far_subjects"] == []
    assert (liver_cls["range"]["min"], liver_cls["range"]["max"]) == pytest.approx((by_subject.min(), by_subject.max()))
    kidney = summary["per_class"]["kidney"]
    assert kidney["dice"] == 0.0 and kidney["missed_images"] == kidney["n_images"] > 0
    assert kidney["false_positive_images"] == 0 and kidney["predicted_images"] == 0
    # Kidney is never predicted: HD95 has no distance, HD95 with misses puts each miss at the image diagonal.
    assert kidney["hd95"] is None and kidney["hd95_worst"] == pytest.approx(math.hypot(40, 48))
    assert (per_image.loc[per_image["ref_px_kidney"] > 0, "hd95_worst_kidney"] == math.hypot(40, 48)).all()
    np.testing.assert_allclose(per_image["hd95_worst_liver"], hd95)  # liver is on both sides everywhere
    pancreas = summary["per_class"]["pancreas"]
    assert pancreas["dice"] is None and pancreas["n_images"] == 0 and pancreas["absent_images"] == 8
    assert summary["dice"]["pancreas"] is None and summary["ci95"]["pancreas"] is None
    # The composite: the class-macro mean over the classes in the reference of at least 3 subjects of every test
    # set (every subject of one with fewer: test_aus has 2), named, with each subject's term in per_subject.csv.
    split = pd.read_csv(tiny["splits_csv"])
    names = list(summary["per_class"])

    def subjects_with(ts):
        rows = split.query("split == @ts")
        out = {c: set() for c in names}
        for image_id, subject in zip(rows["image_id"], rows["subject_id"]):
            lab = np.load(tiny["labels_dir"] / f"{image_id}.npy")
            for k, c in enumerate(names, start=1):
                if (lab == k).any():
                    out[c].add(subject)
        return out, rows["subject_id"].nunique()

    (aus, n_aus), (rus, n_rus) = subjects_with("test_aus"), subjects_with("test_rus")
    shared = [c for c in names if len(aus[c]) >= min(3, n_aus) and len(rus[c]) >= min(3, n_rus)]
    assert summary["mean_foreground"]["classes"] == shared and shared
    assert summary["mean_foreground"]["name"] == "class-macro mean Dice"
    assert summary["dice_mean_foreground"] == pytest.approx(np.mean([summary["dice"][c] for c in shared]))
    assert list(summary["mean_foreground"])[-len(INTERVAL_KEYS):] == INTERVAL_KEYS
    assert summary["n_images"] == 8 and summary["n_subjects"] == 2 and summary["unstable"] is True
    assert summary["excluded"] == [] and summary["nsd_tolerance_px"] == 2.0
    on_disk = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert on_disk == summary
    per_subject = pd.read_csv(tmp_path / "eval" / "per_subject.csv")
    assert per_subject["subject_id"].tolist() == ["ct5", "ct6"] and "nsd_liver" in per_subject
    assert {"hd95_worst_liver", "dice_area_rule_liver"} <= set(per_subject.columns)
    assert per_subject["dice_composite_term"].mean() == pytest.approx(summary["dice_mean_foreground"])
    confusion = pd.read_csv(tmp_path / "eval" / "confusion.csv")
    assert confusion["reference"].tolist() == names_with_background(summary)
    assert int(confusion.drop(columns="reference").to_numpy().sum()) == 8 * 40 * 48
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 5_000


def names_with_background(summary):
    return ["background", *summary["per_class"]]


def test_false_positives_small_references_and_exclusions_are_counted(tiny, tmp_path, monkeypatch):  # noqa: F811
    cfg = tiny_config()
    _constant_setup(cfg, monkeypatch)
    splits = pd.read_csv(tiny["splits_csv"], dtype=str, keep_default_na=False)
    splits["excluded_from"] = ""
    first_rus = splits.index[splits["split"] == "test_rus"][0]
    splits.loc[first_rus, ["excluded_from", "note"]] = ["test_rus", "near-duplicate of a training image"]
    splits.to_csv(tiny["splits_csv"], index=False)
    # Every reference smaller than the whole image is "too small" for the area rule: the secondary view leaves it
    # out; the headline scores every frame where liver is in the reference or predicted, small or not.
    summary = _evaluate(cfg, "multiorgan_unet", tiny, "unused", "test_rus", tmp_path / "eval",
                        evaluation={"nsd_tolerance_px": 2, "min_reference_area_px": 40 * 48})
    liver = summary["per_class"]["liver"]
    assert liver["area_rule"]["dice"] is None and liver["area_rule"]["n_images"] == 0
    assert liver["too_small_images"] > 0 and summary["area_rule"]["dice"]["liver"] is None
    assert liver["dice"] is not None and liver["n_images"] == summary["n_images"]  # predicted on every image
    assert summary["mean_foreground"]["classes"] and summary["dice_mean_foreground"] is not None
    assert summary["excluded"] == [{"image_id": splits.loc[first_rus, "image_id"],
                                    "subject_id": splits.loc[first_rus, "subject_id"],
                                    "reason": "near-duplicate of a training image"}]
    # With the default minimum, liver (predicted on every image) is a false positive where it is absent.
    summary = _evaluate(cfg, "multiorgan_unet", tiny, "unused", "test_rus", tmp_path / "eval2")
    liver = summary["per_class"]["liver"]
    assert liver["false_positive_images"] == liver["absent_images"]
    assert liver["predicted_images"] == summary["n_images"]
    assert summary["min_reference_area_px"] == evaluate_mod.DEFAULT_EVALUATION["min_reference_area_px"]


def test_outlines_are_region_boundaries():
    lab = np.zeros((6, 6), np.uint8)
    lab[1:5, 1:5] = 2
    edge = evaluate_mod.outlines(lab)
    assert edge[1, 1] == 2 and edge[2, 2] == 0 and edge[0, 0] == 0
    assert (edge > 0).sum() == 12


def test_train_then_evaluate_end_to_end(tiny, tmp_path):  # noqa: F811
    cfg = tiny_config(epochs=2)
    run_training(cfg, "liver_unet", tiny, tmp_path / "exp", tmp_path / "ckpt")
    model = tmp_path / "exp" / "model.safetensors"
    results = {}
    for test_set in ("test_aus", "test_rus"):
        out = tmp_path / "exp" / "eval" / test_set
        results[test_set] = _evaluate(cfg, "liver_unet", tiny, model, test_set, out)
        per_image = pd.read_csv(out / "per_image.csv")
        assert list(per_image.columns) == ["image_id", "subject_id", "dice_liver", "nsd_liver", "hd95_liver",
                                           "hd95_worst_liver",
                                           "ref_px_liver", "pred_px_liver", "dice_mean_scored"]
        assert len(per_image) == 8 and per_image["dice_liver"].between(0, 1).all()
        per_subject = pd.read_csv(out / "per_subject.csv")
        assert per_subject["n_images"].tolist() == [4, 4]
        assert (out / "overlays.png").stat().st_size > 10_000
    assert results["test_rus"]["test_set"] == "test_rus"
    assert set(results["test_rus"]["per_subject"]) == {"a", "b"}
    assert all(math.isfinite(r["dice"]["liver"]) for r in results.values())

    # The forest goes through the same evaluation.
    run_training(cfg, "liver_rf", tiny, tmp_path / "rf", tmp_path / "ckpt_rf")
    rf = _evaluate(cfg, "liver_rf", tiny, tmp_path / "rf" / "model.safetensors", "test_aus", tmp_path / "rf" / "eval")
    assert rf["dice"]["liver"] > 0.5

    # A model evaluated against another experiment's classes is refused.
    with pytest.raises(UssegError, match="re-run training"):
        _evaluate(cfg, "multiorgan_unet", tiny, model, "test_aus", tmp_path / "wrong")
    with pytest.raises(UssegError, match="test set 'val'"):
        _evaluate(cfg, "liver_unet", tiny, model, "val", tmp_path / "wrong")


def test_training_and_evaluation_write_the_paths_they_are_given(tiny, tmp_path):  # noqa: F811
    # A rule names each output (its folder and file name): the trainers and the evaluation write exactly there,
    # without inventing a name in a folder (usseg.contracts.TrainingOutputs / EvaluationOutputs).
    from usseg.train import train_experiment

    cfg = tiny_config(epochs=1)
    for name in ("liver_unet", "liver_rf"):
        trained = TrainingOutputs(**{out: tmp_path / name / out / f"{out}.x" for out in TRAINING_FILES})
        exp = Experiment.from_config(cfg, name)
        train_experiment(exp, prepared(cfg, tiny), trained, tmp_path / "ckpt" / name)
        written = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
        assert written == sorted(Path(out, f"{out}.x") for out in TRAINING_FILES), name
        evaluated = EvaluationOutputs(**{out: tmp_path / "eval" / name / out / "f" for out in EVALUATION_FILES})
        evaluate_experiment(exp, prepared(cfg, tiny), trained.model, "test_aus", evaluated)
        assert sorted(p for p in (tmp_path / "eval" / name).rglob("*") if p.is_file()) == sorted(
            vars(evaluated).values()), name
        assert pd.read_csv(evaluated.per_image)["image_id"].size == 8


def _demo_like_arrays():
    """Per-image arrays of the demo's case: three subjects with large, well-segmented livers, and ct12 whose every
    frame holds 0-37 px of liver (below the 64-px rule) while the model predicts 1,192-2,963 px there."""
    subjects, rows = [], {"dice": [], "nsd": [], "hd95": [], "ref_px": [], "pred_px": []}
    rng = np.random.default_rng(0)
    for subject, n in (("ct10", 10), ("ct11", 10), ("ct12", 9), ("ct13", 11)):
        for k in range(n):
            if subject == "ct12":  # its first frame has no liver at all: a false positive, scored 0
                ref, pred = int(rng.integers(1, 38)) if k else 0, int(rng.integers(1192, 2964))
                inter = ref // 2
            else:
                ref = int(rng.integers(3000, 6000))
                pred, inter = ref, int(ref * rng.uniform(0.93, 0.97))
            dice = np.nan if ref == pred == 0 else 2 * inter / (ref + pred)
            subjects.append(subject)
            for key, v in (("dice", dice), ("nsd", dice), ("hd95", 5.0 if ref and pred else np.nan),
                           ("ref_px", ref), ("pred_px", pred)):
                rows[key].append([v])
    arr = {k: np.array(v, dtype=np.float64) for k, v in rows.items()}
    arr["hd95_worst"] = np.where(np.isfinite(arr["hd95"]), arr["hd95"], 600.0)
    return arr, subjects


def test_a_subject_below_the_area_rule_but_predicted_large_is_in_the_headline():
    arr, subjects = _demo_like_arrays()
    scores = evaluate_mod.score_subjects(arr, subjects, ["liver"], 64)
    liver = evaluate_mod.class_summaries(arr, scores, ["liver"], 64)["liver"]
    by_subject = pd.Series(arr["dice"][:, 0], index=subjects).groupby(level=0).mean()
    # The headline: every frame where liver is in the reference or predicted, by subject: 4 subjects, ct12 at ~0.
    assert liver["n_subjects"] == 4 and liver["dice"] == pytest.approx(by_subject.mean())
    assert by_subject["ct12"] < 0.05 and 0.70 < liver["dice"] < 0.73
    assert liver["range"]["min_subject"] == "ct12" and [f["subject"] for f in liver["far_subjects"]] == ["ct12"]
    assert liver["ci95"][0] < 0.3  # the failing subject widens the interval: it is not hidden
    # The 64-px rule stays as a labelled secondary view: 3 subjects, ct12's frames counted as too small.
    area = liver["area_rule"]
    assert area["n_subjects"] == 3 and area["dice"] > 0.9 and liver["too_small_images"] >= 8
    assert area["dice"] == pytest.approx(by_subject.drop("ct12").mean())
    # A false positive (or a miss) counts at the worst value beside the plain HD95, which leaves it out.
    assert liver["false_positive_images"] == 1 and liver["hd95"] == pytest.approx(5.0)
    assert liver["hd95_worst"] == pytest.approx(np.mean([5.0, 5.0, (8 * 5.0 + 600.0) / 9, 5.0]))
    from usseg.intervals import describe

    text = describe({**liver, "estimate": liver["dice"], "note": liver["interval_note"]})
    assert "4 subjects" in text and "ct12" in text and "far from the others" in text
