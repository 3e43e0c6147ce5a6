"""The training loops of the semi-supervised remedies (docs/remedies.md, family 5).

Both read the target frames of `usseg.remedies.wiring.target_frame_rows`:
unlabeled frames of the target modality from subjects in no test set, never
an original test image, read at image_size (at most `max_target_images`, a
seeded sample). Both are deterministic under the experiment's seed on CPU,
and resumable like any training (`usseg.train`).

`remedy: {name: pseudo_label}`, self-training in three phases:

1. Teacher: the experiment trained as any other (`usseg.train`), for its
   `epochs`, with its checkpoints and outputs in ``checkpoint_dir/teacher``.
   Its best-validation epoch is the teacher.
2. Pseudo-labels: the teacher's softmax on the target frames; a pixel keeps
   the teacher's class where its probability is at least `threshold` and is
   `semi.IGNORE` elsewhere (`semi.pseudo_labels`). Computed once.
3. Student: the teacher's weights, a fresh optimizer and learning-rate
   schedule (the experiment's, over `self_training_epochs`), trained
   `self_training_epochs` more epochs. Every labeled batch (the experiment's
   own loader and augmentation) is paired with as many pseudo-labeled frames
   (no augmentation; an order seeded by (seed, epoch), cycled); the loss is the
   experiment's loss plus `weight` times the cross-entropy over the kept pixels
   (`semi.self_training_step`; ignored pixels do not enter it). The model is
   the student epoch with the best validation mean foreground Dice: only
   student epochs are candidates, so the remedy never hands back its teacher.
   history.csv holds the teacher's epochs 1..E, then the student's E+1..E+K;
   the student's checkpoints carry a hash of the experiment's fingerprint and
   of the pseudo-labels, so a changed teacher restarts the student.

`remedy: {name: mean_teacher}` (Tarvainen & Valpola 2017), one phase of the
experiment's `epochs` from scratch: every labeled batch is paired with as many
target frames (drawn as above); the student minimises the experiment's loss
plus `consistency_weight x exp(-5 (1 - t)^2)` (t = epoch / `rampup_epochs`,
at most 1) times the mean squared difference between its softmax on the
frames with Gaussian noise (sd 0.05, seeded per epoch) and the teacher's on
the clean frames; after every step the teacher's weights become
`a x teacher + (1 - a) x student` (`semi.mean_teacher_step`), with
a = min(1 - 1 / (step + 1), `ema_decay`) at global step `step` (0 first), as
in Tarvainen & Valpola's code: the early teacher is the mean of the students.
The teacher is validated every epoch and is the model (its best epoch), as the
averaged weights are the better predictor in Tarvainen & Valpola's results.
Its weights are kept in last.safetensors under ``teacher.``.

Both run in full precision (no CUDA autocast). train_loss in history.csv is the
loss optimised (supervised plus the weighted unlabeled term); timing.csv counts
every epoch of every phase, so the remedy's training cost is all of it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from monai.utils import set_determinism

from usseg import checkpoint, data, train
from usseg.errors import DataError, UssegError
from usseg.models import load_predictor, model_metadata, save_network
from usseg.remedies import semi, spec
from usseg.training_log import epoch_line, epoch_log, write_history

log = logging.getLogger("usseg.semi_training")

TEACHER_DIR = "teacher"  # pseudo_label: the teacher's checkpoints and outputs, below the experiment's checkpoint folder
TEACHER_PREFIX = "teacher."  # mean_teacher: the teacher's weights in last.safetensors
# The student's input noise on the target frames (Tarvainen & Valpola's Gaussian input noise).
MEAN_TEACHER_NOISE_STD = 0.05


def teacher_pseudo_labels(predictor, frames: np.ndarray, threshold: float, batch_size: int) -> np.ndarray:
    """(N, H, W) uint8 pseudo-labels of (N, H, W) frames: the predictor's class where its softmax is
    at least `threshold`, `semi.IGNORE` elsewhere."""
    labels, _ = semi.pseudo_labels(predictor.predict_proba(np.asarray(frames, np.float32), batch_size), threshold)
    return labels


class TargetFrameBatches:
    """The target frames (and their pseudo-labels, if any), served in batches beside the labeled ones."""

    def __init__(self, frames: np.ndarray, batch_size: int, labels: np.ndarray | None = None):
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 3 or not len(frames):
            raise DataError(f"semi-supervised training needs (N, H, W) target frames, got shape {frames.shape}.")
        if labels is not None and labels.shape != frames.shape:
            raise ValueError(f"pseudo-labels {labels.shape} do not match the frames {frames.shape}.")
        self.frames = torch.as_tensor(frames[:, None])  # (N, 1, H, W) as the labeled batches
        self.labels = None if labels is None else torch.as_tensor(labels)  # (N, H, W) uint8
        self.batch_size = min(int(batch_size), len(frames))

    def batches(self, seed: int, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Endless batches of (frames, labels or None): one permutation per (seed, epoch), cycled."""
        n = len(self.frames)
        order = torch.as_tensor(np.random.default_rng([int(seed), int(epoch)]).permutation(n))
        start = 0
        while True:
            idx = order[(start + torch.arange(self.batch_size)) % n]
            start += self.batch_size
            yield self.frames[idx], None if self.labels is None else self.labels[idx]


def _check_finite(out: dict, desc: str, i: int) -> None:
    if not math.isfinite(out["loss"]):
        parts = ", ".join(f"{k} {v}" for k, v in out.items() if k != "loss")
        raise train.TrainingError(
            f"{desc}, batch {i}: the training loss is {out['loss']} ({parts}); training stopped, no model was "
            "written. Lower optimizer.lr or the remedy's weight."
        )


def student_epoch(net, loader, pseudo: Iterator, loss_fn, optimizer, weight: float, desc: str) -> float:
    """One self-training epoch: each labeled batch with the next pseudo-labeled batch; the mean loss per image."""
    total, count = 0.0, 0
    for i, batch in enumerate(loader, start=1):
        frames, labels = next(pseudo)
        out = semi.self_training_step(net, optimizer, loss_fn, batch[data.IMAGE], batch[data.LABEL], frames, labels,
                                      weight)
        _check_finite(out, desc, i)
        n = int(batch[data.IMAGE].shape[0])
        total += out["loss"] * n
        count += n
    return total / max(count, 1)


def ema_decay_at(step: int, ema_decay: float) -> float:
    """The EMA decay of global step `step` (0 first): min(1 - 1 / (step + 1), ema_decay), as in Tarvainen &
    Valpola's code, so the early teacher is the plain mean of the students so far, not mostly its random start."""
    return min(1.0 - 1.0 / (int(step) + 1), float(ema_decay))


def mean_teacher_epoch(student, teacher, loader, frames: Iterator, loss_fn, optimizer, consistency_weight: float,
                       ema_decay: float, generator: torch.Generator, desc: str, first_step: int = 0) -> float:
    """One mean-teacher epoch: each labeled batch with the next target frames; the mean loss per image.

    first_step: the global step of the epoch's first batch (for `ema_decay_at`)."""
    total, count = 0.0, 0
    for i, batch in enumerate(loader, start=1):
        x_u, _ = next(frames)
        out = semi.mean_teacher_step(student, teacher, optimizer, loss_fn, batch[data.IMAGE], batch[data.LABEL], x_u,
                                     consistency_weight, ema_decay_at(first_step + i - 1, ema_decay),
                                     MEAN_TEACHER_NOISE_STD, generator)
        _check_finite(out, desc, i)
        n = int(batch[data.IMAGE].shape[0])
        total += out["loss"] * n
        count += n
    return total / max(count, 1)


# ----------------------------------------------------------------------------- the loops


@dataclass
class _Run:
    """What every epoch of a phase needs: the job (its fingerprint may be the phase's own) and the
    phase's datasets, loss, optimizer and schedule."""

    job: train.TrainingJob
    train_ds: object
    val_ds: object
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object


def _run_epochs(run: _Run, first: int, last: int, history: list, best: dict, one_epoch, student, selected,
                extra_tensors=lambda: None) -> dict:
    """Epochs first..last: train (one_epoch(epoch, loader) -> loss), validate `selected`, keep its best epoch,
    checkpoint `student` (and extra_tensors()), write the history. Returns the best epoch's record."""
    job = run.job
    exp = job.exp
    n_fg = len(job.class_names) - 1
    for epoch in range(first, last + 1):
        t0 = time.perf_counter()
        lr = float(run.optimizer.param_groups[0]["lr"])
        # Seeded as usseg.train's loader.
        train_loss = one_epoch(epoch, train.epoch_loader(run.train_ds, exp, epoch, job.device))
        if run.val_ds is not None:
            val_loss, val_dice = train._validate(selected, run.val_ds, run.loss_fn, job.device, n_fg, exp)
        else:
            val_loss, val_dice = float("nan"), np.full(n_fg, np.nan)
        if run.scheduler is not None:
            run.scheduler.step()
        row, key = train.epoch_record(epoch, train_loss, val_loss, val_dice, job.class_names, lr,
                                      time.perf_counter() - t0)
        history.append(row)
        if run.val_ds is None or key > best["key"]:
            best = {"epoch": epoch, "key": key}
            meta = model_metadata(exp, job.class_names, job.cfg_hash, epoch=epoch, val_dice_mean=row["val_dice_mean"])
            save_network(job.checkpoint_dir / train.BEST, selected, meta)
        train._save_last(job.checkpoint_dir, job.cfg_hash, exp, epoch, history, best, student, run.optimizer,
                         run.scheduler, None, extra_tensors=extra_tensors())
        write_history(history, job.class_names, job.out_dir / "history.csv")
        epoch_log.info(epoch_line(row, last, job.class_names))
        if job.on_epoch_end is not None:
            job.on_epoch_end(epoch)
    return best


def _finish(run: _Run, history: list, best: dict) -> bool:
    """Copy the verified best model to out_dir with the history and curves; False (checkpoints set
    aside) when the best model is missing or not this run's."""
    job = run.job
    best_path = job.checkpoint_dir / train.BEST
    try:
        if not best_path.is_file():
            raise DataError(f"{best_path}: the best model of experiment {job.exp.name} is missing")
        train.verify_best(best_path, job.cfg_hash)
    except UssegError as exc:
        train._set_aside_all(job.checkpoint_dir, job.exp.name, exc)
        return False
    train.write_outputs(best_path, history, job.class_names, job.exp.name, best["epoch"], job.out_dir)
    return True


def _new_run(job: train.TrainingJob, net, epochs: int) -> _Run:
    """A phase of `epochs` epochs training `net`: the job's datasets and loss, a fresh optimizer and schedule."""
    train_ds, val_ds = train.training_datasets(job)
    optimizer = train.build_optimizer(job.exp, net.parameters())
    return _Run(
        job=job, train_ds=train_ds, val_ds=val_ds,
        loss_fn=train.build_loss(job.exp, job.dataset, job.weights).to(job.device), optimizer=optimizer,
        scheduler=train.build_scheduler(job.exp, optimizer, epochs),
    )


def _resume(run: _Run, net) -> tuple[int, list, dict] | None:
    """usseg.train's resume of last.safetensors, quiet when there is none yet."""
    job = run.job
    if not (job.checkpoint_dir / train.LAST).is_file():
        return None
    return train._resume(job.checkpoint_dir, job.cfg_hash, job.exp.name, net, run.optimizer, run.scheduler, None)


def train_semi_supervised(job: train.TrainingJob, *, frames: np.ndarray, retry: bool = True) -> None:
    """Train the job's experiment with its pseudo_label or mean_teacher remedy (module docstring);
    writes out_dir's model.safetensors, history.csv, timing.csv and curves.png.

    frames: (N, H, W) target frames at image_size (usseg.remedies.wiring.target_bank(...).images).
    """
    exp = job.exp
    settings = exp.remedy
    if isinstance(settings, spec.PseudoLabel):
        done = _train_pseudo_label(job, settings=settings, frames=frames)
    elif isinstance(settings, spec.MeanTeacher):
        done = _train_mean_teacher(job, settings=settings, frames=frames)
    else:
        raise ValueError(f"experiment {exp.name}: remedy {settings.name} is not semi-supervised.")
    if not done:
        if not retry:
            raise DataError(f"{job.checkpoint_dir}: the best model of experiment {exp.name} is not this run's, twice.")
        train_semi_supervised(job, frames=frames, retry=False)


def _train_pseudo_label(job: train.TrainingJob, *, settings, frames) -> bool:
    exp = job.exp
    teacher_dir = job.checkpoint_dir / TEACHER_DIR
    train._train_network(job.moved(out_dir=teacher_dir, checkpoint_dir=teacher_dir))
    _, teacher_meta = checkpoint.load_tensors(teacher_dir / train.LAST)
    teacher = load_predictor(teacher_dir / "model.safetensors", job.device)
    labels = teacher_pseudo_labels(teacher, frames, settings.threshold, exp.batch_size)
    kept = float(np.mean(labels != semi.IGNORE))
    log.info("experiment %s: pseudo-labels of %d target frames, %.1f %% of pixels kept (threshold %g)",
             exp.name, len(labels), 100 * kept, settings.threshold)
    if kept == 0:
        log.warning("experiment %s: the teacher is nowhere as sure as remedy.threshold = %g; the student learns "
                    "from the labeled images only (lower the threshold or train the teacher longer)",
                    exp.name, settings.threshold)
    student_hash = checkpoint.config_hash({"experiment": job.cfg_hash,
                                           "pseudo_labels": hashlib.sha256(labels.tobytes()).hexdigest()})
    set_determinism(seed=exp.seed)
    student = job.moved(cfg_hash=student_hash)
    net = train.job_network(student)
    net.load_state_dict(teacher.net.state_dict())
    run = _new_run(student, net, settings.self_training_epochs)
    first, last = exp.epochs + 1, exp.epochs + settings.self_training_epochs
    history, best = list(teacher_meta["history"]), {"epoch": 0, "key": [-math.inf, -math.inf]}
    resumed = _resume(run, net)
    if resumed is not None:
        first, history, best = resumed
    pseudo = TargetFrameBatches(frames, exp.batch_size, labels)

    def one_epoch(epoch, loader):
        return student_epoch(net, loader, pseudo.batches(exp.seed, epoch), run.loss_fn, run.optimizer,
                             settings.weight, f"experiment {exp.name}: student epoch {epoch}/{last}")

    best = _run_epochs(run, first, last, history, best, one_epoch, net, net)
    return _finish(run, history, best)


def _train_mean_teacher(job: train.TrainingJob, *, settings, frames) -> bool:
    exp = job.exp
    seed, epochs = exp.seed, exp.epochs
    set_determinism(seed=seed)
    student = train.job_network(job)
    teacher = semi.make_teacher(student)
    run = _new_run(job, student, epochs)
    first, history, best = 1, [], {"epoch": 0, "key": [-math.inf, -math.inf]}
    resumed = _resume(run, student)
    if resumed is not None:
        first, history, best = resumed
        tensors, _ = checkpoint.load_tensors(job.checkpoint_dir / train.LAST)
        teacher.load_state_dict(checkpoint.split_prefix(tensors, TEACHER_PREFIX), strict=True)
    unlabeled = TargetFrameBatches(frames, exp.batch_size)

    def one_epoch(epoch, loader):
        noise = torch.Generator()
        noise.manual_seed(int(np.random.default_rng([seed, epoch, 1]).integers(2**62)))
        weight = settings.consistency_weight * semi.sigmoid_rampup(epoch, settings.rampup_epochs)
        return mean_teacher_epoch(student, teacher, loader, unlabeled.batches(seed, epoch), run.loss_fn,
                                  run.optimizer, weight, settings.ema_decay, noise,
                                  f"experiment {exp.name}: epoch {epoch}/{epochs}", (epoch - 1) * len(loader))

    def teacher_tensors():
        return {f"{TEACHER_PREFIX}{k}": v for k, v in teacher.state_dict().items()}

    best = _run_epochs(run, first, epochs, history, best, one_epoch, student, teacher, teacher_tensors)
    if first > epochs:
        log.info("checkpoint already holds all %d epochs; writing the outputs from it", epochs)
    return _finish(run, history, best)
