"""The network trainer: epochs, validation, model selection, checkpoints and resume.

`train(job)` trains a MONAI network on the job's images (usseg.training.batches)
and writes the job's outputs (usseg.contracts.TrainingOutputs): the model (the
epoch with the best validation mean foreground Dice; the last epoch without
validation images), the history, the timing and the curves. `run_epochs` and the checkpoint
functions are the loop the semi-supervised trainers (usseg.training.semi) share.

Training is resumable. After every epoch `checkpoint_dir/last.safetensors`
holds the model, optimizer, scheduler and AMP-scaler state, the history so far
and the global RNG state, and `checkpoint_dir/best.safetensors` the best model
so far. checkpoint_dir (results/checkpoints/{experiment}) is not a Snakemake
output, so it survives a failed or pre-empted job; the next run with the same
training fingerprint (usseg.training.job.training_hash) continues at the next
epoch. Every checkpoint is verified (stored digest, finite values) before it
is resumed from or copied; a damaged one is set aside as *.corrupt and
training starts again.

Determinism: `monai.utils.set_determinism(seed)` seeds the global RNGs once;
the data order and the augmentation of epoch e are seeded from (seed, e)
(usseg.training.batches), so an epoch does not depend on how many epochs ran
in this process, and a resumed run reproduces an uninterrupted one on CPU.

Stopping early: after each epoch the job's `stop_when` (the overfit check's
goal) and, when the experiment sets `early_stopping.patience`, a plateau of
that many epochs without a better validation Dice end the training; the
checkpoint records it, so a resumed run does not train on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss, DiceFocalLoss
from monai.utils import set_determinism
from tqdm import tqdm

from usseg import checkpoint, metrics
from usseg.checkpoint import CorruptFileError
from usseg.contracts import TrainingOutputs
from usseg.errors import ConfigError, DataError, UssegError
from usseg.experiment import Experiment
from usseg.models import build_network, model_metadata, save_network
from usseg.training.batches import TrainingSet, epoch_batches
from usseg.training.curves import plot_curves
from usseg.training.history import epoch_line, epoch_log, fmt, write_history
from usseg.training.job import TrainingJob

log = logging.getLogger("usseg.train")

LAST = "last.safetensors"
BEST = "best.safetensors"
CHECKPOINT_KIND = "usseg-training-checkpoint"
NO_BEST = {"epoch": 0, "key": [-math.inf, -math.inf]}


class TrainingError(UssegError):
    """Training cannot go on (e.g. the loss is no longer a finite number)."""


# ----------------------------------------------------------------------------- settings


def build_loss(exp: Experiment, dataset, weights: np.ndarray | None) -> torch.nn.Module:
    """DiceCELoss or DiceFocalLoss over softmax outputs and integer labels.

    MONAI expects the weight vector in different shapes (checked against 1.6):
    DiceCELoss takes one weight per class INCLUDING background (the CE term
    uses all of them; it drops the first for its Dice term itself when
    include_background is False), while DiceFocalLoss passes `weight` to both
    of its terms after they drop the background channel, so without
    background it needs the foreground weights only. Note DiceFocalLoss's focal
    term is MONAI's sigmoid focal loss on each channel.
    """
    inc_bg = exp.include_background(dataset)
    name = exp.loss.name
    w = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    if name == "dice_ce":
        return DiceCELoss(include_background=inc_bg, to_onehot_y=True, softmax=True, weight=w)
    if name == "dice_focal":
        if w is not None and not inc_bg:
            w = w[1:]
        return DiceFocalLoss(include_background=inc_bg, to_onehot_y=True, softmax=True, weight=w)
    raise ConfigError(f"{exp.where}.loss.name = {name!r}; use dice_ce or dice_focal.")


def build_optimizer(exp: Experiment, params) -> torch.optim.Optimizer:
    opt = exp.optimizer
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay, momentum=0.9, nesterov=True)
    raise ConfigError(f"{exp.where}.optimizer.name = {opt.name!r}; use adam, adamw or sgd.")


def build_scheduler(exp: Experiment, optimizer, epochs: int | None = None):
    """The learning-rate schedule over `epochs` (default: the experiment's epochs)."""
    if exp.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(epochs or exp.epochs))
    if exp.scheduler == "none":
        return None
    raise ConfigError(f"{exp.where}.scheduler.name = {exp.scheduler!r}; use cosine or none.")


# Channels-last tensors: the convolutions of a small 2D U-Net run about 15 % faster on CPUs in this layout
# (docs/benchmarks.md); the weights are saved in the ordinary layout.
MEMORY_FORMAT = torch.channels_last


def job_network(job: TrainingJob) -> torch.nn.Module:
    """The job's network, freshly initialised from the global RNGs, on its device."""
    exp = job.exp
    net = build_network(exp.model, len(job.class_names), exp.image_size, where=f"{exp.where}.model")
    return net.to(job.device, memory_format=MEMORY_FORMAT)


def _autocast(device: torch.device):
    # Mixed precision only on CUDA: CPU autocast (bfloat16) is slower on most CPUs and changes results.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- one epoch


def train_step(net, x, y, loss_fn, optimizer, scaler, device) -> tuple[float, int]:
    """One optimisation step on a batch; (loss value, batch size). Shared with benchmarks/train.py."""
    x = x.to(device, non_blocking=True, memory_format=MEMORY_FORMAT)
    y = y.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device):
        loss = loss_fn(net(x), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.detach()), int(x.shape[0])


def check_finite(value: float, desc: str, batch: int, lr: float, detail: str = "") -> None:
    """A TrainingError when a batch's loss is not a finite number."""
    if not math.isfinite(value):
        raise TrainingError(
            f"{desc}, batch {batch}: the training loss is {value}{detail} (lr {lr:g}); training stopped, no model "
            "was written. Usually the learning rate is too high (lower optimizer.lr) or an input holds NaN values."
        )


def train_epoch(job: TrainingJob, net, epoch: int, loss_fn, optimizer, scaler, desc: str) -> float:
    """One epoch of plain supervised steps; the mean loss per image."""
    net.train()
    total, count = 0.0, 0
    exp = job.exp
    batches = epoch_batches(job.train, exp.augmentation, exp.batch_size, exp.seed, epoch, job.extras)
    # The bar is for a terminal; disable=None turns it off when stderr is a file
    # (a SLURM job's log), where the epoch summary line in the rule's log says it all.
    bar = tqdm(batches, desc=desc, total=math.ceil(len(job.train) / exp.batch_size), file=sys.stderr,
               leave=False, mininterval=1.0, dynamic_ncols=True, disable=None)
    for i, (x, y) in enumerate(bar, start=1):
        value, n = train_step(net, x, y, loss_fn, optimizer, scaler, job.device)
        if not math.isfinite(value):
            bar.close()
        check_finite(value, desc, i, float(optimizer.param_groups[0]["lr"]))
        total += value * n
        count += n
    bar.close()
    return total / max(count, 1)


def dice_of_batch(pred: torch.Tensor, ref: torch.Tensor, n_fg: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image and foreground class of (B, H, W) label maps: (Dice, present), as usseg.metrics.dice_per_class
    and present_per_class compute them one image at a time."""
    dices, presents = [], []
    for c in range(1, n_fg + 1):
        p, r = pred == c, ref == c
        n_p = p.sum(dim=(1, 2)).double()
        n_r = r.sum(dim=(1, 2)).double()
        inter = (p & r).sum(dim=(1, 2)).double()
        d = torch.where(n_r > 0, 2.0 * inter / (n_p + n_r).clamp_min(1), torch.zeros_like(n_r))
        d = torch.where((n_r == 0) & (n_p == 0), torch.full_like(d, float("nan")), d)
        dices.append(d)
        presents.append(n_r > 0)
    return torch.stack(dices, 1).cpu().numpy(), torch.stack(presents, 1).cpu().numpy()


@torch.inference_mode()
def validate(net, val: TrainingSet, loss_fn, device, n_fg: int, batch_size: int) -> tuple[float, np.ndarray]:
    """Validation loss and per-class Dice at image_size (mean over images where the class is present)."""
    net.eval()
    total, count = 0.0, 0
    dices, presents = [], []
    for start in range(0, len(val), int(batch_size)):
        x = val.images[start:start + batch_size].to(device, memory_format=MEMORY_FORMAT)
        y = val.labels[start:start + batch_size].to(device)
        with _autocast(device):
            logits = net(x)
            loss = loss_fn(logits, y)
        total += float(loss) * x.shape[0]
        count += x.shape[0]
        d, p = dice_of_batch(logits.argmax(dim=1), y[:, 0].long(), n_fg)
        dices.append(d)
        presents.append(p)
    return total / max(count, 1), metrics.mean_where_present(np.concatenate(dices), np.concatenate(presents))


def epoch_record(epoch, train_loss, val_loss, val_dice, class_names, lr, seconds) -> tuple[dict, list]:
    """(history row, model-selection key) of one epoch: the key ranks by validation mean
    foreground Dice, then by lower validation loss."""
    mean_dice = metrics.nanmean_or_nan(val_dice)
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        **{f"val_dice_{c}": float(d) for c, d in zip(class_names[1:], val_dice)},
        "val_dice_mean": mean_dice,
        "lr": lr,
        "seconds": seconds,
    }
    key = [mean_dice if math.isfinite(mean_dice) else -math.inf, -val_loss if math.isfinite(val_loss) else -math.inf]
    return row, key


# ----------------------------------------------------------------------------- the epochs


@dataclass
class Phase:
    """A run of epochs training one network: the job (its fingerprint may be the phase's own), the loss,
    optimizer, schedule and scaler, and the best model when it is kept in memory (no checkpoint folder)."""

    job: TrainingJob
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object = None
    best_in_memory: dict = field(default_factory=dict)

    @classmethod
    def new(cls, job: TrainingJob, net, epochs: int) -> Phase:
        """A phase of `epochs` epochs for `net`: the job's loss, a fresh optimizer and schedule."""
        optimizer = build_optimizer(job.exp, net.parameters())
        scaler = torch.amp.GradScaler("cuda") if job.device.type == "cuda" else None
        return cls(job, build_loss(job.exp, job.dataset, job.weights).to(job.device), optimizer,
                   build_scheduler(job.exp, optimizer, epochs), scaler)


def _plateau(job: TrainingJob, epoch: int, best: dict) -> str | None:
    patience = job.exp.early_stopping_patience
    if patience is None or job.val is None or epoch - int(best["epoch"]) < patience:
        return None
    return f"no better validation Dice for {patience} epochs (early_stopping.patience)"


def run_epochs(phase: Phase, first: int, last: int, history: list, best: dict,
               one_epoch: Callable[[int], float], student, selected,
               extra_tensors: Callable[[], dict | None] = lambda: None) -> tuple[dict, str | None]:
    """Epochs first..last: train (one_epoch(epoch) -> mean loss), validate `selected`, keep its best epoch,
    checkpoint `student` (and extra_tensors()), write the history; stop early when the job or the
    experiment says so. Returns (the best epoch's record, why it stopped early or None)."""
    job = phase.job
    n_fg = len(job.class_names) - 1
    for epoch in range(first, last + 1):
        t0 = time.perf_counter()
        lr = float(phase.optimizer.param_groups[0]["lr"])
        train_loss = one_epoch(epoch)
        if job.val is not None:
            val_loss, val_dice = validate(selected, job.val, phase.loss_fn, job.device, n_fg, job.exp.batch_size)
        else:
            val_loss, val_dice = float("nan"), np.full(n_fg, np.nan)
        if phase.scheduler is not None:
            phase.scheduler.step()
        row, key = epoch_record(epoch, train_loss, val_loss, val_dice, job.class_names, lr,
                                time.perf_counter() - t0)
        history.append(row)
        if job.val is None or key > best["key"]:
            best = {"epoch": epoch, "key": key}
            _keep_best(phase, selected, epoch, row["val_dice_mean"])
        stop = (job.stop_when(epoch, selected) if job.stop_when is not None else None) or _plateau(job, epoch, best)
        if job.checkpoint_dir is not None:
            save_last(phase, epoch, history, best, student, extra_tensors(), stopped=stop)
            write_history(history, job.class_names, job.outputs.history, job.outputs.timing)
        epoch_log.info(epoch_line(row, last, job.class_names))
        if job.on_epoch_end is not None:
            job.on_epoch_end(epoch)
        if stop:
            log.info("%s: stopped after epoch %d of %d: %s", job.name, epoch, last, stop)
            return best, stop
    return best, None


def _keep_best(phase: Phase, net, epoch: int, val_dice_mean: float) -> None:
    job = phase.job
    meta = model_metadata(job.exp, job.class_names, job.cfg_hash, epoch=epoch, val_dice_mean=val_dice_mean)
    if job.checkpoint_dir is not None:
        save_network(job.checkpoint_dir / BEST, net, meta)
    else:
        phase.best_in_memory = {"state": {k: v.detach().clone() for k, v in net.state_dict().items()}, "meta": meta}


def finish(phase: Phase, history: list, best: dict) -> bool:
    """Write the job's outputs: the model (the verified best), history, timing and curves; False (checkpoints set aside) when the
    best model in the checkpoint folder is missing or not this run's."""
    job = phase.job
    if job.checkpoint_dir is None:
        kept = phase.best_in_memory
        checkpoint.save_tensors(job.outputs.model,
                                {f"model.{k}": v for k, v in kept["state"].items()}, kept["meta"])
        write_outputs(None, history, job.class_names, job.name, best["epoch"], job.outputs)
        return True
    best_path = job.checkpoint_dir / BEST
    try:
        if not best_path.is_file():
            raise DataError(f"{best_path}: the best model of experiment {job.exp.name} is missing")
        verify_best(best_path, job.cfg_hash)
    except UssegError as exc:
        set_aside_all(job.checkpoint_dir, job.name, exc)
        return False
    write_outputs(best_path, history, job.class_names, job.name, best["epoch"], job.outputs)
    return True


def write_outputs(best_path: Path | None, history: list[dict], class_names, name: str, best_epoch: int,
                  outputs: TrainingOutputs) -> None:
    """The model (a copy of the verified best model, unless already written), history, timing and curves."""
    if best_path is not None:
        tmp = outputs.model.with_name(outputs.model.name + ".tmp")
        shutil.copyfile(best_path, tmp)
        os.replace(tmp, outputs.model)
    write_history(history, class_names, outputs.history, outputs.timing)
    plot_curves(history, class_names, name, best_epoch, outputs.curves)
    row = next((r for r in history if r["epoch"] == best_epoch), None)
    log.info("%s: best epoch %d (val mean foreground Dice %s)", name, best_epoch,
             fmt(row["val_dice_mean"]) if row else "n/a")


# ----------------------------------------------------------------------------- the network trainer


def train(job: TrainingJob, retry: bool = True) -> list[dict]:
    """Train the job's network (module docstring) and write its outputs; returns the history."""
    exp = job.exp
    job.outputs.make_folders()
    set_determinism(seed=exp.seed)
    net = job_network(job)
    phase = Phase.new(job, net, exp.epochs)
    history: list[dict] = []
    best, first, stopped = dict(NO_BEST), 1, None
    resumed = resume(phase, net, quiet=False)
    if resumed is not None:
        first, history, best, stopped = resumed

    def one_epoch(epoch):
        return train_epoch(job, net, epoch, phase.loss_fn, phase.optimizer, phase.scaler,
                           f"{job.name}: epoch {epoch}/{exp.epochs}")

    if stopped:
        log.info("%s: the checkpoint's training stopped early (%s); writing the outputs from it", job.name, stopped)
    else:
        best, _ = run_epochs(phase, first, exp.epochs, history, best, one_epoch, net, net)
        if first > exp.epochs:
            log.info("checkpoint already holds all %d epochs; writing the outputs from it", exp.epochs)
    if not finish(phase, history, best):
        if not retry:
            raise DataError(f"{job.checkpoint_dir}: the best model of experiment {exp.name} is not this run's, twice.")
        return train(job, retry=False)
    return history


# ----------------------------------------------------------------------------- checkpoints


def save_last(phase: Phase, epoch, history, best, net, extra_tensors=None, stopped: str | None = None) -> None:
    """last.safetensors; extra_tensors (prefixed names, e.g. a mean teacher's "teacher." weights) join the file."""
    job = phase.job
    opt_tensors, opt_meta = checkpoint.flatten_optimizer(phase.optimizer)
    rng_tensors, rng_meta = checkpoint.rng_state()
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    tensors.update(extra_tensors or {})
    meta = {
        "kind": CHECKPOINT_KIND,
        "format_version": checkpoint.FORMAT_VERSION,
        "experiment": job.exp.name,
        "config_hash": job.cfg_hash,
        "epoch": epoch,
        "history": history,
        "best": best,
        "stopped": stopped,
        "optimizer": opt_meta,
        "scheduler": phase.scheduler.state_dict() if phase.scheduler is not None else None,
        "scaler": phase.scaler.state_dict() if phase.scaler is not None else None,
        "rng": rng_meta,
    }
    checkpoint.save_tensors(job.checkpoint_dir / LAST, tensors, meta)


def resume(phase: Phase, net, quiet: bool = True) -> tuple[int, list, dict, str | None] | None:
    """Restore state from last.safetensors when it matches the job's fingerprint:
    (first epoch to run, history, best, why it stopped early or None), or None to start at epoch 1.
    quiet: say nothing when there is no checkpoint yet."""
    job = phase.job
    checkpoint_dir, cfg_hash, name = job.checkpoint_dir, job.cfg_hash, job.name
    if checkpoint_dir is None:
        return None
    last = checkpoint_dir / LAST
    if not last.is_file():
        if not quiet:
            log.info("%s: no checkpoint in %s; starting at epoch 1", name, checkpoint_dir)
        return None
    try:
        tensors, meta = checkpoint.load_tensors(last)
    except UssegError as exc:
        set_aside_all(checkpoint_dir, name, exc)
        return None
    if meta.get("kind") != CHECKPOINT_KIND or meta.get("config_hash") != cfg_hash:
        log.warning(
            "%s: checkpoint %s has config hash %s but this run has %s (settings or data changed); "
            "starting fresh at epoch 1",
            name, last, meta.get("config_hash"), cfg_hash,
        )
        clear(checkpoint_dir)
        return None
    best = meta["best"]
    if best["epoch"] and (checkpoint_dir / BEST).is_file():
        try:
            verify_best(checkpoint_dir / BEST, cfg_hash)
        except UssegError as exc:
            # Resuming without its best model would pick another final model than an uninterrupted run.
            set_aside_all(checkpoint_dir, name, exc)
            return None
    net.load_state_dict(checkpoint.split_prefix(tensors, "model."), strict=True)
    checkpoint.restore_optimizer(phase.optimizer, tensors, meta["optimizer"])
    if phase.scheduler is not None and meta.get("scheduler") is not None:
        phase.scheduler.load_state_dict(meta["scheduler"])
    if phase.scaler is not None and meta.get("scaler") is not None:
        phase.scaler.load_state_dict(meta["scaler"])
    checkpoint.restore_rng(tensors, meta["rng"])
    if best["epoch"] and not (checkpoint_dir / BEST).is_file():
        log.warning("%s: best model file is missing from %s; the best epoch restarts from here", name, checkpoint_dir)
        best = dict(NO_BEST)
    epoch = int(meta["epoch"])
    log.info("%s: resuming from %s after epoch %d (config hash %s)", name, last, epoch, cfg_hash)
    return epoch + 1, list(meta["history"]), best, meta.get("stopped")


def checkpoint_tensors(job: TrainingJob) -> dict[str, torch.Tensor]:
    """The tensors of the job's last.safetensors (verified)."""
    tensors, _ = checkpoint.load_tensors(job.checkpoint_dir / LAST)
    return tensors


def verify_best(path: Path, cfg_hash: str) -> None:
    """Raise UssegError unless `path` is an intact best model of this exact training fingerprint."""
    _, meta = checkpoint.load_tensors(path)
    if meta.get("config_hash") != cfg_hash:
        raise CorruptFileError(
            f"{path}: a model of training fingerprint {meta.get('config_hash')}, not of this run's {cfg_hash}"
        )


def set_aside_all(checkpoint_dir: Path, name: str, reason: Exception) -> None:
    """Keep damaged checkpoints as *.corrupt (never used again) and start training from epoch 1."""
    kept = [str(checkpoint.set_aside(checkpoint_dir / f)) for f in (LAST, BEST) if (checkpoint_dir / f).is_file()]
    log.warning(
        "%s: checkpoint unusable (%s); set aside as %s; training starts again at epoch 1",
        name, reason, ", ".join(kept) or "nothing",
    )


def clear(checkpoint_dir: Path) -> None:
    for fname in (LAST, BEST):
        (checkpoint_dir / fname).unlink(missing_ok=True)
