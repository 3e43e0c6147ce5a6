"""An experiment's remedy reaches training and prediction (usseg.training.remedy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import test_train
from datasets import prepared
from test_train import run_training, tiny_config
from usseg import contracts
from usseg.contracts import EvaluationOutputs
from usseg.errors import DataError
from usseg.evaluate import evaluate_experiment
from usseg.experiment import Experiment
from usseg.models import load_predictor
from usseg.training import remedy as wiring
from usseg.training.batches import epoch_batches, training_set

torch.set_num_threads(1)
tiny = test_train.tiny  # the shared fixture




def _exp(remedy=None, **augmentation):
    cfg = tiny_config()
    block = {}
    if remedy:
        block["remedy"] = remedy
    if augmentation:
        block["augmentation"] = {**cfg["experiment_defaults"]["augmentation"], **augmentation}
    cfg["experiments"] = {"e": block}
    return cfg, Experiment.from_config(cfg, "e")


def test_no_remedy_adds_no_transform(tiny):
    cfg, exp = _exp()
    data_ = prepared(cfg, tiny)
    assert wiring.training_transforms(exp, data_) == ([], [])
    assert wiring.training_frame_ids(exp, data_.table, cfg["dataset"]) == []


def test_fda_reads_the_unlabeled_target_frames_and_keeps_labels(tiny):
    cfg, exp = _exp({"name": "fda", "beta": 0.1})
    data_ = prepared(cfg, tiny)
    cached, rand = wiring.training_transforms(exp, data_)
    ids = wiring.training_frame_ids(exp, data_.table, cfg["dataset"])
    assert ids and all(i.startswith("RUS_train_c") for i in ids)  # the unlabeled subject only, no test frame
    recs = data_.records("train", ["AUS"])[:4]
    lut = exp.label_lookup(cfg["dataset"])
    arrays = data_.arrays(exp.image_size)
    plain = training_set(arrays, recs, lut)
    styled = training_set(arrays, recs, lut, cached)
    assert styled.fovs is not None and plain.fovs is None  # the fan, for the restyling
    aug = {**exp.augmentation, "flip_prob": 0.0, "noise_prob": 0.0, "contrast_prob": 0.0}
    (a, _), = epoch_batches(plain, aug, 4, 0, 1)
    (b, y), = epoch_batches(styled, aug, 4, 0, 1, rand)
    assert torch.equal(y.round(), y)  # labels stay class indices
    assert b.shape == a.shape and not torch.equal(a, b)  # restyled
    assert float(b.min()) >= 0 and float(b.max()) <= 1


def test_style_remedy_without_unlabeled_frames_names_the_split(tiny, tmp_path):
    cfg, exp = _exp({"name": "histogram_matching"})
    splits = contracts.read_splits(tiny["splits_csv"])
    labeled_only = tmp_path / "labeled_only.csv"
    contracts.write_table(splits[splits["split"] != "unlabeled"], labeled_only, contracts.SPLIT_COLUMNS)
    with pytest.raises(DataError, match="unlabeled"):
        wiring.training_transforms(exp, prepared(cfg, tiny, splits_csv=labeled_only))


def test_ultrasound_augmentation_is_appended(tiny):
    cfg, exp = _exp(ultrasound={"speckle_noise": {"prob": 1.0}}, generic={"num_operations": 1})
    cached, rand = wiring.training_transforms(exp, prepared(cfg, tiny))
    names = [type(t).__name__ for t in rand]
    assert cached == [] and names[0] == "RandSpeckleNoised" and names[-1] == "ClipIntensityd"


def test_fov_normalise_trains_and_predicts_on_normalised_images(tiny, tmp_path):
    cfg, exp = _exp({"name": "fov_normalise"})
    run_training(cfg, "e", tiny, tmp_path / "out", tmp_path / "ckpt")
    predictor = load_predictor(tmp_path / "out" / "model.safetensors", device=torch.device("cpu"))
    same, prepare = wiring.prediction_remedy(exp, predictor, "test_aus", prepared(cfg, tiny), lambda: None)
    assert same is predictor
    images = np.random.default_rng(0).uniform(0.2, 0.4, (2, 32, 32)).astype(np.float32)
    out = prepare(images)
    assert out.max() == pytest.approx(1.0) and out.min() == pytest.approx(0.0)
    summary = evaluate_experiment(exp, prepared(cfg, tiny), tmp_path / "out" / "model.safetensors", "test_rus",
                                  EvaluationOutputs.in_folder(tmp_path / "eval"))
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_subjects"] == summary["n_subjects"] == 2


def test_bn_adapt_adapts_for_the_target_test_set_only(tiny, tmp_path):
    cfg, exp = _exp({"name": "bn_adapt", "batch_size": 2})
    run_training(cfg, "e", tiny, tmp_path / "out", tmp_path / "ckpt")
    predictor = load_predictor(tmp_path / "out" / "model.safetensors", device=torch.device("cpu"))
    args = (prepared(cfg, tiny), lambda: None)
    assert wiring.prediction_remedy(exp, predictor, "test_aus", *args)[0] is predictor
    adapted, _ = wiring.prediction_remedy(exp, predictor, "test_rus", *args)
    assert adapted is not predictor
    before = [m.running_mean.clone() for m in predictor.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    after = [m.running_mean for m in adapted.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert any(not torch.allclose(a, b) for a, b in zip(before, after))


def test_fda_and_ultrasound_augmentation_train_end_to_end(tiny, tmp_path):
    cfg, exp = _exp({"name": "fda", "beta": 0.05}, ultrasound={"acoustic_shadow": {"prob": 0.5}})
    run_training(cfg, "e", tiny, tmp_path / "out", tmp_path / "ckpt")
    assert (tmp_path / "out" / "model.safetensors").is_file()
