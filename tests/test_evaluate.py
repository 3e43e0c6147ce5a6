import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from test_train import run_training, tiny, tiny_config  # noqa: F401  (tiny is a fixture)
from usseg import evaluate as evaluate_mod
from usseg.config import resolve_experiment
from usseg.errors import UssegError
from usseg.evaluate import evaluate_experiment, largest_component_per_class

torch.set_num_threads(1)

SUMMARY_KEYS = ["experiment", "test_set", "n_images", "n_subjects", "dice", "dice_mean_foreground", "ci95",
                "per_subject", "unstable"]


def _evaluate(cfg, name, paths, model_path, test_set, out):
    return evaluate_experiment(resolve_experiment(cfg, name), cfg["dataset"], paths["data_root"],
                               paths["manifest_csv"], paths["splits_csv"], paths["labels_dir"], model_path,
                               test_set, out)


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


def test_evaluation_scores_at_full_resolution_with_the_nan_rules(tiny, tmp_path, monkeypatch):  # noqa: F811
    cfg = tiny_config()
    exp = resolve_experiment(cfg, "multiorgan_unet")
    names = ["background", "liver", "bone", "gallbladder", "kidney", "pancreas", "vessels", "spleen", "adrenal"]
    monkeypatch.setattr(evaluate_mod, "load_predictor",
                        lambda path, device=None: _ConstantPredictor(names, exp["image_size"]))
    summary = _evaluate(cfg, "multiorgan_unet", tiny, "unused", "test_aus", tmp_path / "eval")
    per_image = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    # Expected Dice by hand, at the label's own 40x48 size: the prediction is the top-left 20x24 quarter.
    liver, kidney, bone = [], [], []
    for image_id in per_image["image_id"]:
        ref = np.load(tiny["labels_dir"] / f"{image_id}.npy")
        pred = np.zeros_like(ref)
        pred[:20, :24] = 1
        inter = ((pred == 1) & (ref == 1)).sum()
        liver.append(2 * inter / ((pred == 1).sum() + (ref == 1).sum()))
        kidney.append(0.0)  # present, never predicted
        bone.append(0.0)
    np.testing.assert_allclose(per_image["dice_liver"], liver)
    assert (per_image["dice_kidney"] == 0).all() and (per_image["dice_bone"] == 0).all()
    assert per_image["dice_pancreas"].isna().all()  # absent from reference and prediction
    np.testing.assert_allclose(per_image["dice_mean_foreground"], (np.array(liver) + 0 + 0) / 3)
    assert list(summary) == SUMMARY_KEYS
    assert summary["dice"]["liver"] == pytest.approx(np.mean(liver))
    assert summary["dice"]["kidney"] == 0.0 and summary["dice"]["pancreas"] is None
    assert summary["dice_mean_foreground"] == pytest.approx(np.mean(liver) / 3)
    assert summary["ci95"]["pancreas"] == [None, None]
    lo, hi = summary["ci95"]["liver"]
    assert lo <= summary["dice"]["liver"] <= hi
    assert summary["n_images"] == 8 and summary["n_subjects"] == 2 and summary["unstable"] is True
    assert set(summary["per_subject"]) == {"ct5", "ct6"}
    on_disk = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert on_disk == summary


def test_train_then_evaluate_end_to_end(tiny, tmp_path):  # noqa: F811
    cfg = tiny_config(epochs=2)
    run_training(cfg, "liver_unet", tiny, tmp_path / "exp", tmp_path / "ckpt")
    model = tmp_path / "exp" / "model.safetensors"
    results = {}
    for test_set in ("test_aus", "test_rus"):
        out = tmp_path / "exp" / "eval" / test_set
        results[test_set] = _evaluate(cfg, "liver_unet", tiny, model, test_set, out)
        per_image = pd.read_csv(out / "per_image.csv")
        assert list(per_image.columns) == ["image_id", "subject_id", "dice_liver", "dice_mean_foreground"]
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
