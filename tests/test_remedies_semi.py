"""The semi-supervised remedies in the training loop (usseg.training.semi, remedy 5 of docs/remedies.md):
pseudo-label self-training and the mean teacher."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import test_train
from datasets import dataset_cfg, prepared
from test_sanity import SANITY
from test_train import run_training, tiny_config
from usseg.checkpoint import load_tensors
from usseg.checks import sanity
from usseg.config import check_config
from usseg.contracts import TRAINING_FILES
from usseg.errors import ConfigError
from usseg.experiment import Experiment
from usseg.models import build_network
from usseg.remedies import semi
from usseg.training import remedy as wiring
from usseg.training import semi as semi_training

torch.set_num_threads(1)
tiny = test_train.tiny  # the shared fixture


def _pseudo_config(**remedy) -> dict:
    return _config({"name": "pseudo_label", "threshold": 0.3, "self_training_epochs": 1, **remedy})


def _config(remedy: dict) -> dict:
    cfg = tiny_config()
    cfg["experiments"] = {"e": {"remedy": remedy}}
    return check_config(cfg, source="tiny config")


# ----------------------------------------------------------------------------- which frames


def test_target_frames_leave_out_test_subjects_and_test_images():
    table = pd.DataFrame(
        [
            ("RUS_train_c0", "c", "RUS", "unlabeled", "train", ""),  # kept
            ("RUS_train_c1", "c", "RUS", "unlabeled", "train", ""),  # kept
            ("RUS_test_a0", "a", "RUS", "test_rus", "test", ""),  # a labeled test image
            ("RUS_test_a5", "a", "RUS", "unlabeled", "test", ""),  # an unlabeled frame of a test subject
            ("RUS_train_a9", "a", "RUS", "unlabeled", "train", ""),  # the same test subject, other folder
            ("RUS_test_z0", "z", "RUS", "unlabeled", "test", ""),  # an original test image without labels
            ("RUS_train_y0", "y", "RUS", "unlabeled", "train", "test_rus"),  # left out of a test set
            ("AUS_train_ct1-0", "ct1", "AUS", "unlabeled", "train", ""),  # not the target modality
            ("AUS_test_ct5-0", "ct5", "AUS", "test_aus", "test", ""),
        ],
        columns=["image_id", "subject_id", "modality", "split", "orig_split", "excluded_from"],
    )
    rows = wiring.target_frame_rows(table, dataset_cfg(target_modality="RUS"))
    assert rows["image_id"].tolist() == ["RUS_train_c0", "RUS_train_c1"]
    # A subject in any test set (here the simulator's) is left out too.
    table.loc[table["image_id"] == "AUS_test_ct5-0", ["subject_id"]] = "c"
    assert wiring.target_frame_rows(table, dataset_cfg(target_modality="RUS")).empty


@pytest.mark.parametrize("name", ["pseudo_label", "mean_teacher"])
def test_training_hash_covers_the_target_frames(tiny, name):
    cfg = _config({"name": name})
    exp = Experiment.from_config(cfg, "e")
    table = prepared(cfg, tiny).table
    assert wiring.training_frame_ids(exp, table, cfg["dataset"]) == [f"RUS_train_c{k}" for k in range(4)]


# ----------------------------------------------------------------------------- the loss


class _FixedTeacher:
    """A predictor whose softmax is given."""

    def __init__(self, probs):
        self.probs = probs

    def predict_proba(self, images, batch_size=16):
        assert len(images) == len(self.probs)
        return self.probs


def _teacher_probs(unsure_class: int, n=2, size=16) -> np.ndarray:
    """3 classes: the top half confidently class 1 (0.95), the bottom half `unsure_class` at 0.6."""
    probs = np.zeros((n, 3, size, size), np.float32)
    probs[:, :, : size // 2] = np.array([0.025, 0.95, 0.025])[None, :, None, None]
    unsure = np.full(3, 0.2, np.float32)
    unsure[unsure_class] = 0.6
    probs[:, :, size // 2:] = unsure[None, :, None, None]
    return probs


def _student_after_one_epoch(threshold: float, unsure_class: int, weight: float = 1.0) -> dict:
    model_cfg = {"name": "unet", "channels": [4, 8], "strides": [2], "num_res_units": 0, "norm": "batch",
                 "dropout": 0.0}
    torch.manual_seed(0)
    net = build_network(model_cfg, 3, (16, 16))
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 1, (2, 16, 16)).astype(np.float32)
    labels = semi_training.teacher_pseudo_labels(_FixedTeacher(_teacher_probs(unsure_class)), frames, threshold, 2)
    pseudo = semi_training.TargetFrameBatches(frames, 2, labels)
    batches = [(torch.as_tensor(rng.uniform(0, 1, (2, 1, 16, 16)), dtype=torch.float32),
                torch.as_tensor(rng.integers(0, 3, (2, 1, 16, 16)), dtype=torch.float32))
               for _ in range(2)]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = semi_training.student_epoch(net, batches, pseudo.batches(0, 1),
                                       lambda logits, y: F.cross_entropy(logits, y[:, 0].long()),
                                       optimizer, weight, "test")
    assert np.isfinite(loss)
    return {"labels": labels, "state": copy.deepcopy(net.state_dict())}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_pixels_under_the_threshold_are_left_out_of_the_loss():
    sure_1 = _student_after_one_epoch(threshold=0.9, unsure_class=1)
    sure_2 = _student_after_one_epoch(threshold=0.9, unsure_class=2)
    # Under the threshold the bottom half is IGNORE, whatever the teacher's unsure class ...
    assert (sure_1["labels"][:, 8:] == semi.IGNORE).all() and (sure_1["labels"][:, :8] == 1).all()
    # ... so which class it was cannot change the student,
    assert _same(sure_1["state"], sure_2["state"])
    # while the kept top half does change it (against the supervised loss alone),
    assert not _same(sure_1["state"], _student_after_one_epoch(0.9, 1, weight=0.0)["state"])
    # and with a threshold below 0.6 the bottom half enters the loss and the unsure class matters.
    loose_1, loose_2 = _student_after_one_epoch(0.5, 1), _student_after_one_epoch(0.5, 2)
    assert (loose_2["labels"][:, 8:] == 2).all()
    assert not _same(loose_1["state"], loose_2["state"])


def test_pseudo_batches_are_seeded_per_epoch_and_cycle():
    frames = np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2) / 20
    labels = np.zeros((5, 2, 2), np.uint8)
    pseudo = semi_training.TargetFrameBatches(frames, 2, labels)

    def firsts(seed, epoch, k=5):
        it = pseudo.batches(seed, epoch)
        return [tuple(next(it)[0][:, 0, 0, 0].tolist()) for _ in range(k)]

    assert firsts(0, 1) == firsts(0, 1)
    assert firsts(0, 1) != firsts(0, 2)
    seen = [v for batch in firsts(0, 1) for v in batch]
    assert sorted(seen[:5]) == sorted(frames[:, 0, 0].tolist())  # every frame once before any repeats
    with pytest.raises(Exception, match="target frames"):
        semi_training.TargetFrameBatches(np.zeros((0, 2, 2), np.float32), 2)


# ----------------------------------------------------------------------------- config


def test_semi_supervised_settings_are_checked():
    assert Experiment.from_config(_pseudo_config(), "e").remedy.self_training_epochs == 1
    cfg = tiny_config()
    cfg["experiments"] = {"e": {"remedy": {"name": "pseudo_label", "self_training_epochs": 0}}}
    with pytest.raises(ConfigError, match="self_training_epochs"):
        check_config(cfg, source="tiny config")
    cfg["experiments"] = {"e": {"remedy": {"name": "mean_teacher", "threshold": 0.9}}}
    with pytest.raises(ConfigError, match="threshold"):
        check_config(cfg, source="tiny config")


# ----------------------------------------------------------------------------- the loop, end to end


def _add_test_subject_frames(paths):
    """Unlabeled rows of test subject `a` (one from its test folder, one from a train folder) to the tiny dataset."""
    manifest = pd.read_csv(paths["manifest_csv"], keep_default_na=False)
    splits = pd.read_csv(paths["splits_csv"], keep_default_na=False)
    source = manifest[manifest["image_id"] == "RUS_test_a0"].iloc[0]
    for image_id, orig in (("RUS_test_a9", "test"), ("RUS_train_a8", "train")):
        row = source.copy()
        row["image_id"], row["orig_split"], row["has_mask"], row["mask_path"] = image_id, orig, False, ""
        manifest.loc[len(manifest)] = row
        splits.loc[len(splits)] = {"image_id": image_id, "subject_id": "a", "split": "unlabeled", "note": ""}
    manifest.to_csv(paths["manifest_csv"], index=False)
    splits.to_csv(paths["splits_csv"], index=False)


@pytest.mark.parametrize("name, epochs, best_from", [("pseudo_label", [1, 2, 3], 3), ("mean_teacher", [1, 2], 1)])
def test_trains_end_to_end_on_frames_of_no_test_subject(tiny, tmp_path, monkeypatch, name, epochs, best_from):
    _add_test_subject_frames(tiny)
    read = []
    bank_ids = wiring.bank_ids

    def spy(*args, **kwargs):
        read.extend(bank_ids(*args, **kwargs))
        return read

    monkeypatch.setattr(wiring, "bank_ids", spy)
    cfg = _pseudo_config() if name == "pseudo_label" else _config({"name": name})
    run_training(cfg, "e", tiny, tmp_path / "out", tmp_path / "ckpt")
    assert sorted(read) == [f"RUS_train_c{k}" for k in range(4)]
    history = pd.read_csv(tmp_path / "out" / "history.csv")
    # pseudo_label: the teacher's 2 epochs, then the student's one; mean_teacher: the experiment's 2.
    assert history["epoch"].tolist() == epochs
    assert len(pd.read_csv(tmp_path / "out" / "timing.csv")) == len(epochs)
    _, meta = load_tensors(tmp_path / "out" / "model.safetensors")
    assert meta["epoch"] >= best_from  # pseudo_label: the student, never its teacher
    assert (tmp_path / "ckpt" / semi_training.TEACHER_DIR / "model.safetensors").is_file() == (name == "pseudo_label")


def _weights(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_pseudo_label_training_is_deterministic_and_resumes_to_the_same_model(tiny, tmp_path, caplog):
    cfg = _pseudo_config(self_training_epochs=2)
    run_training(cfg, "e", tiny, tmp_path / "a", tmp_path / "ckpt_a")

    class Stop(Exception):
        pass

    def stop_after_first_student_epoch(epoch):
        if epoch == 3:
            raise Stop

    with pytest.raises(Stop):
        run_training(cfg, "e", tiny, tmp_path / "b", tmp_path / "ckpt_b", on_epoch_end=stop_after_first_student_epoch)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="usseg"):
        run_training(cfg, "e", tiny, tmp_path / "b", tmp_path / "ckpt_b")
    assert "resuming from" in caplog.text and "after epoch 3" in caplog.text  # the student, not from scratch
    a, b = _weights(tmp_path / "a" / "model.safetensors"), _weights(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "history.csv").read_bytes() == (tmp_path / "b" / "history.csv").read_bytes()
    # Without checkpoints (a sanity check's scratch run) the teacher's files go to a folder beside the model,
    # and the model is the same.
    run_training(cfg, "e", tiny, tmp_path / "c", None)
    assert sorted(p.name for p in (tmp_path / "c" / "teacher").iterdir()) == sorted(TRAINING_FILES.values())
    c = _weights(tmp_path / "c" / "model.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_mean_teacher_ema_decay_warms_up():
    assert semi_training.ema_decay_at(0, 0.99) == 0.0  # the first teacher is the first student
    assert semi_training.ema_decay_at(1, 0.99) == 0.5
    assert semi_training.ema_decay_at(10_000, 0.99) == 0.99


def test_mean_teacher_keeps_the_teacher_and_resumes_to_the_same_model(tiny, tmp_path):
    cfg = _config({"name": "mean_teacher", "rampup_epochs": 2})
    run_training(cfg, "e", tiny, tmp_path / "a", tmp_path / "ckpt_a")

    class Stop(Exception):
        pass

    def stop(epoch):
        raise Stop

    with pytest.raises(Stop):
        run_training(cfg, "e", tiny, tmp_path / "b", tmp_path / "ckpt_b", on_epoch_end=stop)
    # After epoch 1 the best model is the EMA teacher (kept in last.safetensors), not the student.
    last, _ = load_tensors(tmp_path / "ckpt_b" / "last.safetensors")
    best = _weights(tmp_path / "ckpt_b" / "best.safetensors")
    assert all(torch.equal(best[k], last["teacher." + k[len("model."):]]) for k in best)
    assert not all(torch.equal(best[k], last[k]) for k in best if k.endswith("weight"))
    run_training(cfg, "e", tiny, tmp_path / "b", tmp_path / "ckpt_b")
    a, b = _weights(tmp_path / "a" / "model.safetensors"), _weights(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "history.csv").read_bytes() == (tmp_path / "b" / "history.csv").read_bytes()


@pytest.mark.parametrize("name", ["pseudo_label", "fda"])
def test_overfit_check_runs_remedies_that_read_target_frames(tiny, tmp_path, name):
    cfg = _pseudo_config() if name == "pseudo_label" else _config({"name": name})
    result = sanity.overfit_handful(Experiment.from_config(cfg, "e"), prepared(cfg, tiny),
                                    {**SANITY, "overfit_epochs": 2}, tmp_path / "work")
    assert result["status"] in ("PASS", "FAIL")  # it ran; two epochs need not memorise
