"""Pseudo-label self-training: the training loop of `remedy: {name: pseudo_label}` (docs/remedies.md, family 5).

Three phases, each deterministic under the experiment's seed (on CPU):

1. Teacher: the experiment trained as any other (`usseg.train`), for its
   `epochs`, with its checkpoints in ``checkpoint_dir/teacher`` (resumable like
   any training). Its best-validation epoch is the teacher.
2. Pseudo-labels: the teacher's softmax on the target frames
   (`usseg.remedies.wiring.target_frame_rows`: unlabeled frames of the target
   modality from subjects in no test set, never a test image; read at
   image_size, at most `max_target_images`, a seeded sample). A pixel keeps the
   teacher's class where its probability is at least `threshold` and is
   `semi.IGNORE` elsewhere (`semi.pseudo_labels`). They are computed once.
3. Student: the teacher's weights, a fresh optimizer and learning-rate schedule
   (the experiment's, over `self_training_epochs`), trained for
   `self_training_epochs` more epochs. Every labeled batch (the experiment's own
   loader and augmentation) is paired with as many pseudo-labeled frames, drawn
   without augmentation in an order seeded by (seed, epoch) and cycled; the loss
   is the experiment's loss plus `weight` times the cross-entropy over the kept
   pixels (`semi.self_training_step`; ignored pixels do not enter it). The
   student runs in full precision (no CUDA autocast). The model is the student
   epoch with the best validation mean foreground Dice: only student epochs are
   candidates, so the remedy never hands back its teacher unchanged.

history.csv holds the teacher's epochs 1..E, then the student's E+1..E+K
(their train_loss is the supervised plus the weighted pseudo-label loss);
timing.csv both, so the remedy's training cost counts both phases. The
student's checkpoints (``checkpoint_dir/last.safetensors``, ``best.safetensors``)
carry a hash of the experiment's training fingerprint and of the
pseudo-labels, so a changed teacher restarts the student.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader
from monai.utils import set_determinism

from usseg import checkpoint, data, train
from usseg.errors import DataError, UssegError
from usseg.models import build_network, load_predictor, model_metadata, save_network
from usseg.remedies import semi, spec, wiring
from usseg.training_log import epoch_line, write_history

log = logging.getLogger("usseg.self_training")

TEACHER_DIR = "teacher"  # below the experiment's checkpoint folder: the teacher's checkpoints and outputs


def teacher_pseudo_labels(predictor, frames: np.ndarray, threshold: float, batch_size: int) -> np.ndarray:
    """(N, H, W) uint8 pseudo-labels of (N, H, W) frames: the predictor's class where its softmax is
    at least `threshold`, `semi.IGNORE` elsewhere."""
    labels, _ = semi.pseudo_labels(predictor.predict_proba(np.asarray(frames, np.float32), batch_size), threshold)
    return labels


class PseudoLabeledFrames:
    """The pseudo-labeled target frames, served in batches beside the labeled ones."""

    def __init__(self, frames: np.ndarray, labels: np.ndarray, batch_size: int):
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 3 or not len(frames):
            raise DataError(f"pseudo-label self-training needs (N, H, W) target frames, got shape {frames.shape}.")
        if labels.shape != frames.shape:
            raise ValueError(f"pseudo-labels {labels.shape} do not match the frames {frames.shape}.")
        self.frames = torch.as_tensor(frames[:, None])  # (N, 1, H, W) as the labeled batches
        self.labels = torch.as_tensor(labels)  # (N, H, W) uint8, semi.IGNORE where not kept
        self.batch_size = min(int(batch_size), len(frames))

    def batches(self, seed: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches of (frames, pseudo-labels): one permutation per (seed, epoch), cycled."""
        n = len(self.frames)
        order = torch.as_tensor(np.random.default_rng([int(seed), int(epoch)]).permutation(n))
        start = 0
        while True:
            idx = order[(start + torch.arange(self.batch_size)) % n]
            start += self.batch_size
            yield self.frames[idx], self.labels[idx]


def student_epoch(net, loader, pseudo: Iterator, loss_fn, optimizer, weight: float, desc: str) -> float:
    """One epoch of the student: each labeled batch with the next pseudo-labeled batch; the mean loss per image."""
    total, count = 0.0, 0
    for i, batch in enumerate(loader, start=1):
        frames, labels = next(pseudo)
        out = semi.self_training_step(net, optimizer, loss_fn, batch[data.IMAGE], batch[data.LABEL], frames, labels,
                                      weight)
        if not math.isfinite(out["loss"]):
            raise train.TrainingError(
                f"{desc}, batch {i}: the training loss is {out['loss']} (supervised {out['supervised']}, "
                f"pseudo-label {out['pseudo_label']}); training stopped, no model was written. Lower optimizer.lr "
                "or remedy.weight."
            )
        n = int(batch[data.IMAGE].shape[0])
        total += out["loss"] * n
        count += n
    return total / max(count, 1)


def train_pseudo_label(exp, dataset_cfg, class_names, lut, weights, train_recs, val_recs, cfg_hash, device, out_dir,
                       checkpoint_dir, on_epoch_end, *, remedy, frames: np.ndarray, retry: bool = True) -> None:
    """Teacher, pseudo-labels, student (module docstring); writes out_dir's model, history, timing and curves.

    frames: (N, H, W) target frames at image_size (usseg.remedies.wiring.target_bank(...).images).
    remedy: the (cached, random) transforms of usseg.remedies.wiring.training_transforms.
    """
    settings = spec.parse_remedy(exp["remedy"], f"experiments.{exp['name']}.remedy")
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    teacher_dir = checkpoint_dir / TEACHER_DIR
    train._train_network(exp, dataset_cfg, class_names, lut, weights, train_recs, val_recs, cfg_hash, device,
                         teacher_dir, teacher_dir, on_epoch_end, remedy=remedy)
    _, teacher_meta = checkpoint.load_tensors(teacher_dir / train.LAST)
    teacher = load_predictor(teacher_dir / "model.safetensors", device)
    labels = teacher_pseudo_labels(teacher, frames, settings.threshold, int(exp["batch_size"]))
    kept = float(np.mean(labels != semi.IGNORE))
    log.info("experiment %s: pseudo-labels of %d target frames, %.1f %% of pixels kept (threshold %g)",
             exp["name"], len(labels), 100 * kept, settings.threshold)
    student_hash = checkpoint.config_hash({"experiment": cfg_hash,
                                           "pseudo_labels": hashlib.sha256(labels.tobytes()).hexdigest()})

    seed = int(exp["seed"])
    first, last = int(exp["epochs"]) + 1, int(exp["epochs"]) + settings.self_training_epochs
    set_determinism(seed=seed)
    net = build_network(exp["model"], len(class_names), exp["image_size"], where=f"experiments.{exp['name']}.model")
    net.load_state_dict(teacher.net.state_dict())
    net = net.to(device)
    loss_fn = train.build_loss(exp, dataset_cfg, weights).to(device)
    optimizer = train.build_optimizer(exp, net.parameters())
    scheduler = train.build_scheduler({**exp, "epochs": settings.self_training_epochs}, optimizer)
    history = list(teacher_meta["history"])
    best = {"epoch": 0, "key": [-math.inf, -math.inf]}
    start = first
    resumed = (train._resume(checkpoint_dir, student_hash, exp["name"], net, optimizer, scheduler, None)
               if (checkpoint_dir / train.LAST).is_file() else None)
    if resumed is not None:
        start, history, best = resumed

    n_cache = max(1, torch.get_num_threads())
    train_ds = data.build_dataset(train_recs, exp, lut, augment=True, cache_workers=n_cache, remedy=remedy)
    val_ds = (data.build_dataset(val_recs, exp, lut, augment=False, cache_workers=n_cache,
                                 remedy=(wiring.validation_transforms(remedy[0]), []))
              if val_recs else None)
    pseudo = PseudoLabeledFrames(frames, labels, int(exp["batch_size"]))
    n_fg = len(class_names) - 1
    for epoch in range(start, last + 1):
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        generator = torch.Generator()
        generator.manual_seed(train._epoch_seed(seed, epoch))
        loader = DataLoader(train_ds, batch_size=int(exp["batch_size"]), shuffle=True,
                            num_workers=int(exp.get("num_workers", 0)), generator=generator,
                            pin_memory=device.type == "cuda")
        train_loss = student_epoch(net, loader, pseudo.batches(seed, epoch), loss_fn, optimizer, settings.weight,
                                   f"experiment {exp['name']}: student epoch {epoch}/{last}")
        if val_ds is not None:
            val_loss, val_dice = train._validate(net, val_ds, loss_fn, device, n_fg, exp)
        else:
            val_loss, val_dice = float("nan"), np.full(n_fg, np.nan)
        if scheduler is not None:
            scheduler.step()
        row, key = train.epoch_record(epoch, train_loss, val_loss, val_dice, class_names, lr,
                                      time.perf_counter() - t0)
        history.append(row)
        if val_ds is None or key > best["key"]:
            best = {"epoch": epoch, "key": key}
            meta = model_metadata(exp, class_names, student_hash, epoch=epoch, val_dice_mean=row["val_dice_mean"])
            save_network(checkpoint_dir / train.BEST, net, meta)
        train._save_last(checkpoint_dir, student_hash, exp, epoch, history, best, net, optimizer, scheduler, None)
        write_history(history, class_names, out_dir / "history.csv")
        log.info(epoch_line(row, last, class_names))
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    best_path = checkpoint_dir / train.BEST
    try:
        if not best_path.is_file():
            raise DataError(f"{best_path}: the student's best model is missing")
        train.verify_best(best_path, student_hash)
    except UssegError as exc:
        if not retry:
            raise
        train._set_aside_all(checkpoint_dir, exp["name"], exc)
        return train_pseudo_label(exp, dataset_cfg, class_names, lut, weights, train_recs, val_recs, cfg_hash,
                                  device, out_dir, checkpoint_dir, on_epoch_end, remedy=remedy, frames=frames,
                                  retry=False)
    train.write_outputs(best_path, history, class_names, exp["name"], best["epoch"], out_dir)
