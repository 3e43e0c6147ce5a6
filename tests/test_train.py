"""Training: loss and class-weight configuration, data selection, determinism, resume.

`make_tiny_dataset` and `tiny_config` are shared with test_evaluate.py and
test_forest.py: a dataset root with AUS/ and RUS/ images, cached label arrays,
manifest.csv and splits.csv, small enough to train on in a second.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from monai.losses import DiceFocalLoss, DiceLoss
from safetensors.torch import load_file

from datasets import Frame, colour, prepared, write_frames
from usseg import data
from usseg.class_balance import pixel_counts, suggest_class_weights
from usseg.config import check_config
from usseg.contracts import TrainingOutputs
from usseg.errors import DataError, UssegError
from usseg.experiment import Experiment
from usseg.train import train_experiment
from usseg.training.job import class_weight_vector
from usseg.training.loop import build_loss

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]

LIVER, BONE, GALLBLADDER, KIDNEY = 1, 2, 3, 4


# ----------------------------------------------------------------------------- shared fixtures


def _frame(rng, h, w, shift, real):
    """A fan-free toy frame: bright liver ellipse, dark kidney disc, a thin bone line."""
    yy, xx = np.mgrid[0:h, 0:w]
    lab = np.zeros((h, w), np.uint8)
    liver = ((yy - h * 0.45) / (h * 0.28)) ** 2 + ((xx - w * 0.35 - shift) / (w * 0.22)) ** 2 < 1
    kidney = (yy - h * 0.6) ** 2 + (xx - w * 0.75) ** 2 < (min(h, w) * 0.12) ** 2
    lab[liver] = LIVER
    lab[kidney] = KIDNEY
    lab[2:4, w // 2 - 6: w // 2 + 6] = BONE
    img = np.full((h, w), 0.15)
    img[lab == LIVER] = 0.6
    img[lab == KIDNEY] = 0.35
    img[lab == BONE] = 0.95
    img = img + rng.normal(0, 0.12 if real else 0.04, (h, w))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), lab


def make_tiny_dataset(tmp_path: Path, frames: int = 4, size=(40, 48), seed: int = 0) -> dict:
    """Write a tiny AUS/RUS dataset with labels, manifest.csv and splits.csv (datasets.write_frames); return the paths."""
    rng = np.random.default_rng(seed)
    h, w = size
    plan = [
        ("AUS", "train", "train", ["ct1", "ct2", "ct3"]),
        ("AUS", "train", "val", ["ct4"]),
        ("AUS", "test", "test_aus", ["ct5", "ct6"]),
        ("RUS", "test", "test_rus", ["a", "b"]),
        ("RUS", "train", "unlabeled", ["c"]),
    ]
    drawn = []
    for modality, orig, split, subjects in plan:
        for s in subjects:
            for k in range(frames):
                img, lab = _frame(rng, h, w, shift=k - frames / 2, real=modality == "RUS")
                mask = colour(lab) if split != "unlabeled" else None
                drawn.append(Frame(modality, orig, s, k, img, mask, split=split, jpg=modality == "RUS"))
    return write_frames(tmp_path, drawn).paths()


def tiny_config(**defaults) -> dict:
    """config.yaml with tiny experiment defaults (32x32, 2 epochs, a 3-level UNet)."""
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["experiment_defaults"].update(
        {
            "model": {"name": "unet", "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1,
                      "norm": "batch", "dropout": 0.0},
            "epochs": 2,
            "batch_size": 4,
            "image_size": [32, 32],
            "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
            "forest": {"n_estimators": 5, "max_depth": 6, "pixels_per_image": 200},
            "device": "cpu",
        }
    )
    cfg["experiment_defaults"].update(defaults)
    # Tests replace the experiments; config.yaml's gap study names one of its own as baseline.
    cfg["gap_study"]["enabled"] = False
    return check_config(cfg, source="tiny config")


@pytest.fixture
def tiny(tmp_path):
    return make_tiny_dataset(tmp_path)


def run_training(cfg, name, paths, out, ckpt, **kw):
    """Train experiment `name`, its outputs under their usual names in folder `out`."""
    exp = Experiment.from_config(cfg, name)
    train_experiment(exp, prepared(cfg, paths), TrainingOutputs.in_folder(out), ckpt, **kw)
    return exp


# ----------------------------------------------------------------------------- loss configuration


def _logits_and_labels(n_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, n_classes, 8, 8, generator=g)
    labels = torch.randint(0, n_classes, (2, 1, 8, 8), generator=g)
    return logits, labels


def _exp(cfg, experiment, **loss):
    exp = Experiment.from_config(cfg, experiment)
    return exp.with_settings(loss={**exp.settings["loss"], **loss})


def test_dice_ce_without_background_keeps_full_weights_for_ce():
    cfg = tiny_config()
    exp = _exp(cfg, "multiorgan_unet", include_background=False)
    w = np.linspace(0.5, 3.0, 9).astype(np.float32)
    loss = build_loss(exp, cfg["dataset"], w)
    logits, labels = _logits_and_labels(9)
    got = loss(logits, labels)
    # Expected: Dice over foreground channels with foreground weights + CE with all nine weights.
    dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, weight=torch.tensor(w[1:]))
    ce = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    expected = dice(logits, labels) + ce(logits, labels[:, 0].long())
    assert torch.allclose(got, expected, atol=1e-6)
    unweighted = build_loss(exp, cfg["dataset"], None)(logits, labels)
    assert not torch.allclose(got, unweighted)


def test_dice_focal_without_background_gets_foreground_weights():
    cfg = tiny_config()
    exp = _exp(cfg, "multiorgan_unet", name="dice_focal", include_background=False)
    w = np.linspace(0.5, 3.0, 9).astype(np.float32)
    logits, labels = _logits_and_labels(9)
    got = build_loss(exp, cfg["dataset"], w)(logits, labels)
    expected = DiceFocalLoss(include_background=False, to_onehot_y=True, softmax=True,
                             weight=torch.tensor(w[1:]))(logits, labels)
    assert torch.allclose(got, expected)
    # MONAI really wants n-1 weights here: the full vector is rejected.
    with pytest.raises(ValueError):
        DiceFocalLoss(include_background=False, to_onehot_y=True, softmax=True, weight=torch.tensor(w))(logits, labels)


def test_dice_ce_with_background_and_binary_task():
    cfg = tiny_config()
    exp = _exp(cfg, "liver_unet")  # include_background auto -> False for one organ
    loss = build_loss(exp, cfg["dataset"], np.array([0.2, 1.0], np.float32))
    assert loss.dice.include_background is False
    logits, labels = _logits_and_labels(2)
    assert torch.isfinite(loss(logits, labels))
    exp_bg = _exp(cfg, "multiorgan_unet")
    assert build_loss(exp_bg, cfg["dataset"], None).dice.include_background is True


def test_class_weights_none_list_and_auto(tiny):
    cfg = tiny_config()
    ds = cfg["dataset"]
    assert class_weight_vector(Experiment.from_config(cfg, "multiorgan_unet"), ds, []) is None
    exp = _exp(cfg, "liver_unet", class_weights=[0.3, 2.0])
    assert class_weight_vector(exp, ds, []).tolist() == pytest.approx([0.3, 2.0])
    exp = Experiment.from_config(cfg, "multiorgan_unet_weighted")
    paths = sorted(Path(tiny["labels_dir"]).glob("AUS_train_ct1-*.npy"))
    w = class_weight_vector(exp, ds, paths)
    lut = exp.label_lookup(ds)
    expected = suggest_class_weights(pixel_counts([lut[np.load(p)] for p in paths], 9))
    assert w.shape == (9,) and np.allclose(w, expected)
    # Classes that never occur get weight 0; the rare kidney outweighs the background.
    assert w[5] == 0 and w[KIDNEY] > w[0]


def test_binary_experiment_maps_other_organs_to_background(tiny):
    cfg = tiny_config()
    exp = Experiment.from_config(cfg, "liver_unet")
    lut = exp.label_lookup(cfg["dataset"])
    path = next(Path(tiny["labels_dir"]).glob("AUS_train_*.npy"))
    raw = np.load(path)
    mapped = data.load_labels(path, lut)
    assert set(np.unique(mapped)) == {0, 1}
    assert np.array_equal(mapped == 1, raw == LIVER)
    # The training set maps the palette labels with the same lookup table.
    from usseg.training.batches import training_set

    data_ = prepared(cfg, tiny)
    recs = [r for r in data_.records("train", ["AUS"]) if r["image_id"] == path.stem]
    item = training_set(data_.arrays(exp.image_size), recs, lut)
    assert item.images.shape == (1, 1, 32, 32) and item.labels.shape == (1, 1, 32, 32)
    assert 0.0 <= float(item.images.min()) and float(item.images.max()) <= 1.0
    assert set(torch.unique(item.labels).tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- errors


def test_training_on_a_modality_without_labeled_train_images_is_a_data_error(tiny, tmp_path):
    cfg = tiny_config()
    cfg["experiments"]["real_only"] = {"classes": ["liver"], "train_modalities": ["RUS"]}
    with pytest.raises(DataError, match=r"real_only.*'train'.*RUS"):
        run_training(cfg, "real_only", tiny, tmp_path / "out", tmp_path / "ckpt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_clear_error(tiny, tmp_path):
    cfg = tiny_config(device="cuda")
    with pytest.raises(UssegError, match="device: cuda requested for experiment liver_unet but no CUDA GPU"):
        run_training(cfg, "liver_unet", tiny, tmp_path / "out", tmp_path / "ckpt")


# ----------------------------------------------------------------------------- determinism and resume


def _history(out: Path) -> pd.DataFrame:
    timing = pd.read_csv(out / "timing.csv")
    assert list(timing.columns) == ["epoch", "seconds"] and (timing["seconds"] > 0).all()
    return pd.read_csv(out / "history.csv")


def _weights(out: Path) -> dict:
    return load_file(str(out / "model.safetensors"))


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_and_resume_continues_after_interruption(tiny, tmp_path, caplog):
    cfg = tiny_config(epochs=3)
    # Dropout exercises the restored torch RNG on resume.
    cfg["experiments"]["multiorgan_unet"] = {"model": {"dropout": 0.1}}
    caplog.set_level(logging.INFO, logger="usseg.train")
    caplog.set_level(logging.INFO, logger="usseg.epochs")  # the epoch lines

    run_training(cfg, "multiorgan_unet", tiny, tmp_path / "a", tmp_path / "ckpt_a")
    run_training(cfg, "multiorgan_unet", tiny, tmp_path / "b", tmp_path / "ckpt_b")
    hist_a = _history(tmp_path / "a")
    assert list(hist_a.columns) == [
        "epoch", "train_loss", "val_loss", "val_dice_liver", "val_dice_bone", "val_dice_gallbladder",
        "val_dice_kidney", "val_dice_pancreas", "val_dice_vessels", "val_dice_spleen", "val_dice_adrenal",
        "val_dice_mean", "lr",
    ]
    assert hist_a["epoch"].tolist() == [1, 2, 3]
    assert hist_a["train_loss"].notna().all() and hist_a["val_dice_liver"].notna().all()
    assert hist_a["val_dice_pancreas"].isna().all()  # never present in validation
    pd.testing.assert_frame_equal(hist_a, _history(tmp_path / "b"))
    assert _same_weights(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert (tmp_path / "a" / "curves.png").stat().st_size > 10_000
    assert any(r.getMessage().startswith("epoch 3/3 train_loss ") and " val_dice liver " in r.getMessage()
               for r in caplog.records)

    class Preempted(Exception):
        pass

    def stop_after_first(epoch):
        if epoch == 1:
            raise Preempted

    out_c, ckpt_c = tmp_path / "c", tmp_path / "ckpt_c"
    with pytest.raises(Preempted):
        run_training(cfg, "multiorgan_unet", tiny, out_c, ckpt_c, on_epoch_end=stop_after_first)
    assert (ckpt_c / "last.safetensors").is_file()
    assert not (out_c / "model.safetensors").exists()
    caplog.clear()
    epochs_run = []
    run_training(cfg, "multiorgan_unet", tiny, out_c, ckpt_c, on_epoch_end=epochs_run.append)
    assert epochs_run == [2, 3]
    assert any("resuming" in r.getMessage() and "after epoch 1" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(hist_a, _history(out_c))
    assert _same_weights(_weights(tmp_path / "a"), _weights(out_c))

    # A changed setting changes the config hash: the old checkpoint is not reused.
    caplog.clear()
    changed = copy.deepcopy(cfg)
    changed["experiments"]["multiorgan_unet"]["optimizer"] = {"lr": 0.005}
    epochs_run.clear()
    run_training(check_config(changed), "multiorgan_unet", tiny, out_c, ckpt_c, on_epoch_end=epochs_run.append)
    assert epochs_run == [1, 2, 3]
    assert any("starting fresh" in r.getMessage() for r in caplog.records)


def test_article_config_loads_with_the_article_settings():
    from usseg.config import load_config

    cfg = load_config(REPO / "config.yaml", REPO / "configs" / "article.yaml")
    # The article's four (its remedies are arms of the gap study, not experiments).
    assert {"liver_unet", "multiorgan_unet", "multiorgan_unet_weighted", "liver_rf"} == set(cfg["experiments"])
    exp = Experiment.from_config(cfg, "multiorgan_unet_weighted")
    assert exp.image_size == (256, 256) and exp.epochs == 50 and exp.batch_size == 16
    assert exp.model.channels == (16, 32, 64, 128, 256) and exp.model.strides == (2, 2, 2, 2)
    assert exp.model.num_res_units == 2 and exp.model.norm == "batch"
    assert (exp.optimizer.name, exp.optimizer.lr, exp.optimizer.weight_decay) == ("adam", 1e-4, 0.0)
    assert exp.scheduler == "cosine" and exp.loss.name == "dice_ce"
    assert exp.loss.class_weights == [0.5, 1.0, 3.0, 2.0, 1.5, 2.5, 2.0, 1.5, 3.0]
    assert Experiment.from_config(cfg, "liver_rf").is_forest
    assert cfg["demo"]["size"] == "full"


# ----------------------------------------------------------------------------- fingerprint, verification, faults


def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_training_fingerprint_covers_the_code_training_imports_and_library_versions():
    from usseg.training.job import training_code_files, training_library_versions

    cfg = tiny_config()
    files = {p.relative_to(REPO / "src" / "usseg").as_posix()
             for p in training_code_files(Experiment.from_config(cfg, "multiorgan_unet"))}
    assert {"train.py", "data.py", "experiment.py", "models.py", "checkpoint.py", "training/loop.py",
            "training/batches.py", "prepared_arrays.py"} <= files
    # The other trainers and the remedy families the experiment does not use are not its code.
    assert not files & {"training/forest.py", "training/semi.py", "remedies/us_augment.py", "remedies/style.py"}
    forest = {p.name for p in training_code_files(Experiment.from_config(cfg, "liver_rf"))}
    assert {"forest.py", "train.py"} <= forest and "loop.py" not in forest
    versions = training_library_versions()
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"].startswith(torch.__version__[:4])
    assert "monai" in versions and "snakemake" not in versions


def test_after_a_code_change_training_really_retrains(tiny, tmp_path, caplog, monkeypatch):
    import usseg.training.job as job_module

    cfg = tiny_config()
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    run_training(cfg, "liver_unet", tiny, out, ckpt)
    epochs_run: list[int] = []
    run_training(cfg, "liver_unet", tiny, out, ckpt, on_epoch_end=epochs_run.append)
    assert epochs_run == [], "unchanged code and settings: the finished checkpoint is reused"
    monkeypatch.setattr(job_module, "training_code_digest", lambda exp: "another version of the code")
    caplog.set_level(logging.INFO, logger="usseg.train")
    caplog.set_level(logging.INFO, logger="usseg.epochs")  # the epoch lines
    run_training(cfg, "liver_unet", tiny, out, ckpt, on_epoch_end=epochs_run.append)
    assert epochs_run == [1, 2]
    assert any("starting fresh" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damaged", ["best.safetensors", "last.safetensors"])
def test_a_corrupt_checkpoint_is_set_aside_and_training_restarts(tiny, tmp_path, caplog, damaged):
    from usseg import checkpoint

    cfg = tiny_config()
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    run_training(cfg, "liver_unet", tiny, out, ckpt)
    first = _weights(out)
    _flip_last_byte(ckpt / damaged)
    caplog.set_level(logging.INFO, logger="usseg.train")
    caplog.set_level(logging.INFO, logger="usseg.epochs")  # the epoch lines
    epochs_run: list[int] = []
    run_training(cfg, "liver_unet", tiny, out, ckpt, on_epoch_end=epochs_run.append)
    assert epochs_run == [1, 2]
    assert (ckpt / f"{damaged}.corrupt").is_file()
    assert any("set aside" in r.getMessage() and damaged in r.getMessage() for r in caplog.records)
    checkpoint.load_tensors(out / "model.safetensors")  # verified: intact
    assert _same_weights(first, _weights(out))  # and the same model an undisturbed run gives


def test_a_non_finite_loss_stops_training_with_a_message(tiny, tmp_path, monkeypatch):
    import usseg.training.loop as train_module

    monkeypatch.setattr(train_module, "train_step", lambda *a, **k: (float("nan"), 4))
    with pytest.raises(train_module.TrainingError, match=r"liver_unet: epoch 1/2, batch 1: the training loss is nan"):
        run_training(tiny_config(), "liver_unet", tiny, tmp_path / "out", tmp_path / "ckpt")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_several_trainings_in_one_process_give_each_one_s_model_alone(tiny, tmp_path):
    # usseg.train.train_many (the gap study's seeds and folds in one job): each training seeds every
    # global RNG itself and uses its experiment's threads, so what ran before it changes nothing.
    from usseg.train import TrainingRun, train_many

    cfg = tiny_config()
    weighted = Experiment.from_config(cfg, "multiorgan_unet_weighted").with_settings(seed=3)
    data_ = prepared(cfg, tiny)
    train_experiment(weighted, data_, TrainingOutputs.in_folder(tmp_path / "alone"), tmp_path / "ckpt_alone")
    other = Experiment.from_config(cfg, "liver_unet").with_settings(threads=2, model={
        **cfg["experiment_defaults"]["model"], "dropout": 0.2})
    train_many([TrainingRun(other, data_, TrainingOutputs.in_folder(tmp_path / "first"), tmp_path / "ckpt_first"),
                TrainingRun(weighted, data_, TrainingOutputs.in_folder(tmp_path / "many"), None)])
    assert torch.get_num_threads() == 1  # the weighted experiment's, set again after the other's 2
    assert _same_weights(_weights(tmp_path / "alone"), _weights(tmp_path / "many"))
    assert (tmp_path / "alone" / "history.csv").read_bytes() == (tmp_path / "many" / "history.csv").read_bytes()
