"""The training loops of the semi-supervised remedies (docs/remedies.md, family 5).

Both read the target frames of `usseg.training.remedy.target_frame_rows`:
unlabeled frames of the target modality from subjects in no test set, never
an original test image, read at image_size (at most `max_target_images`, a
seeded sample). Both are deterministic under the experiment's seed on CPU,
and resumable like any training (they run the network trainer's loop,
`usseg.training.loop.run_epochs`).

`remedy: {name: pseudo_label}`, self-training in three phases:

1. Teacher: the experiment trained as any other (`usseg.training.loop`), for its
   `epochs`, with its checkpoints and outputs (usual names) in ``checkpoint_dir/teacher``.
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
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from monai.utils import set_determinism

from usseg import checkpoint
from usseg.contracts import TrainingOutputs
from usseg.errors import DataError
from usseg.models import load_predictor
from usseg.remedies import semi, spec
from usseg.training import loop
from usseg.training.batches import epoch_batches
from usseg.training.job import TrainingJob

log = logging.getLogger("usseg.train")

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
        raise loop.TrainingError(
            f"{desc}, batch {i}: the training loss is {out['loss']} ({parts}); training stopped, no model was "
            "written. Lower optimizer.lr or the remedy's weight."
        )


def student_epoch(net, batches: Iterable, pseudo: Iterator, loss_fn, optimizer, weight: float, desc: str) -> float:
    """One self-training epoch: each labeled (images, labels) batch with the next pseudo-labeled batch;
    the mean loss per image."""
    net.train()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches, start=1):
        frames, labels = next(pseudo)
        out = semi.self_training_step(net, optimizer, loss_fn, x, y, frames, labels, weight)
        _check_finite(out, desc, i)
        n = int(x.shape[0])
        total += out["loss"] * n
        count += n
    return total / max(count, 1)


def ema_decay_at(step: int, ema_decay: float) -> float:
    """The EMA decay of global step `step` (0 first): min(1 - 1 / (step + 1), ema_decay), as in Tarvainen &
    Valpola's code, so the early teacher is the plain mean of the students so far, not mostly its random start."""
    return min(1.0 - 1.0 / (int(step) + 1), float(ema_decay))


def mean_teacher_epoch(student, teacher, batches: Iterable, frames: Iterator, loss_fn, optimizer,
                       consistency_weight: float, ema_decay: float, generator: torch.Generator, desc: str,
                       first_step: int = 0) -> float:
    """One mean-teacher epoch: each labeled (images, labels) batch with the next target frames; the mean loss
    per image. first_step: the global step of the epoch's first batch (for `ema_decay_at`)."""
    student.train()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches, start=1):
        x_u, _ = next(frames)
        out = semi.mean_teacher_step(student, teacher, optimizer, loss_fn, x, y, x_u,
                                     consistency_weight, ema_decay_at(first_step + i - 1, ema_decay),
                                     MEAN_TEACHER_NOISE_STD, generator)
        _check_finite(out, desc, i)
        n = int(x.shape[0])
        total += out["loss"] * n
        count += n
    return total / max(count, 1)


# ----------------------------------------------------------------------------- the trainers


def _labeled(job: TrainingJob, epoch: int):
    """Epoch `epoch`'s labeled batches, as the network trainer draws them (usseg.training.batches)."""
    exp = job.exp
    return epoch_batches(job.train, exp.augmentation, exp.batch_size, exp.seed, epoch, job.extras)


def train(job: TrainingJob, retry: bool = True) -> None:
    """Train the job's experiment with its pseudo_label or mean_teacher remedy (module docstring);
    writes the job's outputs (usseg.contracts.TrainingOutputs): model, history, timing and curves.

    The target frames are job.target_frames: (N, H, W) at image_size (usseg.training.remedy.target_bank).
    """
    exp = job.exp
    settings = exp.remedy
    if job.target_frames is None:
        raise ValueError(f"experiment {exp.name}: a semi-supervised training needs its target frames.")
    if isinstance(settings, spec.PseudoLabel):
        done = _train_pseudo_label(job, settings=settings, frames=job.target_frames)
    elif isinstance(settings, spec.MeanTeacher):
        done = _train_mean_teacher(job, settings=settings, frames=job.target_frames)
    else:
        raise ValueError(f"experiment {exp.name}: remedy {settings.name} is not semi-supervised.")
    if not done:
        if not retry:
            raise DataError(f"{job.checkpoint_dir}: the best model of experiment {exp.name} is not this run's, twice.")
        train(job, retry=False)


def _teacher(job: TrainingJob):
    """Phase 1 of pseudo_label: the experiment trained as any other; (its history, its predictor).
    Its checkpoints and outputs (TrainingOutputs.in_folder) go to a `teacher` folder below the checkpoint
    folder (beside the job's model when the job keeps no checkpoints)."""
    teacher_dir = (job.outputs.model.parent if job.checkpoint_dir is None else job.checkpoint_dir) / TEACHER_DIR
    outputs = TrainingOutputs.in_folder(teacher_dir)
    history = loop.train(job.moved(outputs=outputs, checkpoint_dir=None if job.checkpoint_dir is None else teacher_dir))
    return history, load_predictor(outputs.model, job.device)


def _train_pseudo_label(job: TrainingJob, *, settings, frames) -> bool:
    exp = job.exp
    teacher_history, teacher = _teacher(job)
    labels = teacher_pseudo_labels(teacher, frames, settings.threshold, exp.batch_size)
    kept = float(np.mean(labels != semi.IGNORE))
    log.info("%s: pseudo-labels of %d target frames, %.1f %% of pixels kept (threshold %g)",
             job.name, len(labels), 100 * kept, settings.threshold)
    if kept == 0:
        log.warning("%s: the teacher is nowhere as sure as remedy.threshold = %g; the student learns "
                    "from the labeled images only (lower the threshold or train the teacher longer)",
                    job.name, settings.threshold)
    student_hash = checkpoint.config_hash({"experiment": job.cfg_hash,
                                           "pseudo_labels": hashlib.sha256(labels.tobytes()).hexdigest()})
    set_determinism(seed=exp.seed)
    student = job.moved(cfg_hash=student_hash)
    net = loop.job_network(student)
    net.load_state_dict(teacher.net.state_dict())
    phase = loop.Phase.new(student, net, settings.self_training_epochs)
    first, last = exp.epochs + 1, exp.epochs + settings.self_training_epochs
    history, best = list(teacher_history), dict(loop.NO_BEST)
    resumed = loop.resume(phase, net)
    if resumed is not None:
        first, history, best, _ = resumed
    pseudo = TargetFrameBatches(frames, exp.batch_size, labels)

    def one_epoch(epoch):
        return student_epoch(net, _labeled(job, epoch), pseudo.batches(exp.seed, epoch), phase.loss_fn,
                             phase.optimizer, settings.weight, f"{job.name}: student epoch {epoch}/{last}")

    best, _ = loop.run_epochs(phase, first, last, history, best, one_epoch, net, net)
    return loop.finish(phase, history, best)


def _train_mean_teacher(job: TrainingJob, *, settings, frames) -> bool:
    exp = job.exp
    seed, epochs = exp.seed, exp.epochs
    set_determinism(seed=seed)
    student = loop.job_network(job)
    teacher = semi.make_teacher(student)
    phase = loop.Phase.new(job, student, epochs)
    first, history, best = 1, [], dict(loop.NO_BEST)
    resumed = loop.resume(phase, student)
    if resumed is not None:
        first, history, best, _ = resumed
        tensors = loop.checkpoint_tensors(job)
        teacher.load_state_dict(checkpoint.split_prefix(tensors, TEACHER_PREFIX), strict=True)
    unlabeled = TargetFrameBatches(frames, exp.batch_size)
    steps_per_epoch = math.ceil(len(job.train) / exp.batch_size)

    def one_epoch(epoch):
        noise = torch.Generator()
        noise.manual_seed(int(np.random.default_rng([seed, epoch, 1]).integers(2**62)))
        weight = settings.consistency_weight * semi.sigmoid_rampup(epoch, settings.rampup_epochs)
        return mean_teacher_epoch(student, teacher, _labeled(job, epoch), unlabeled.batches(seed, epoch),
                                  phase.loss_fn, phase.optimizer, weight, settings.ema_decay, noise,
                                  f"{job.name}: epoch {epoch}/{epochs}", (epoch - 1) * steps_per_epoch)

    def teacher_tensors():
        return {f"{TEACHER_PREFIX}{k}": v for k, v in teacher.state_dict().items()}

    best, _ = loop.run_epochs(phase, first, epochs, history, best, one_epoch, student, teacher, teacher_tensors)
    if first > epochs:
        log.info("checkpoint already holds all %d epochs; writing the outputs from it", epochs)
    return loop.finish(phase, history, best)
