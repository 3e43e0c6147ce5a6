"""Train one experiment: a MONAI network here, the random-forest baseline in usseg.forest_train,
the semi-supervised remedies (pseudo_label, mean_teacher) in usseg.semi_training.

`train_experiment` writes, under out_dir, `model.safetensors` (the epoch with
the best validation mean foreground Dice), `history.csv` and `curves.png`.

Training is resumable. After every epoch `checkpoint_dir/last.safetensors`
holds the model, optimizer, scheduler and AMP-scaler state, the history so far
and the global RNG state, and `checkpoint_dir/best.safetensors` the best model
so far. checkpoint_dir (results/checkpoints/{experiment}) is not a Snakemake
output, so it survives a failed or pre-empted job; the next run with the same
config hash continues at the next epoch. The hash covers the experiment's
settings (except device and num_workers, which do not change what is learned),
its output classes, the identity of the train/val images, the code training
runs (every usseg module usseg.train imports, usseg.code_deps) and the library
versions, so a changed setting, dataset, code or library starts over instead of
mixing two runs or copying an old model. Every checkpoint is verified (stored
digest, finite values) before it is resumed from or copied; a damaged one is set
aside as *.corrupt and training starts again.

Determinism: `monai.utils.set_determinism(seed)` seeds the global RNGs once;
the data order and the augmentation of epoch e are seeded from (seed, e), so an
epoch does not depend on how many epochs ran in this process, and a resumed run
reproduces an uninterrupted one on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import DataLoader
from monai.losses import DiceCELoss, DiceFocalLoss
from monai.utils import set_determinism
from tqdm import tqdm

from usseg import checkpoint, contracts, data, metrics
from usseg.checkpoint import CorruptFileError
from usseg.class_balance import class_totals, suggest_class_weights
from usseg.code_deps import code_digest, module_code_files
from usseg.errors import ConfigError, DataError, UssegError
from usseg.experiment import Experiment
from usseg.forest_train import train_forest
from usseg.models import build_network, model_metadata, resolve_device, save_network
from usseg.provenance import library_versions
from usseg.remedies import spec, wiring
from usseg.training_curves import plot_curves
from usseg.training_log import epoch_line as _epoch_line
from usseg.training_log import epoch_log
from usseg.training_log import fmt as _fmt
from usseg.training_log import write_history as _write_history

log = logging.getLogger("usseg.train")

LAST = "last.safetensors"
BEST = "best.safetensors"
CHECKPOINT_KIND = "usseg-training-checkpoint"
# Settings that do not change what is learned; excluded from the config hash so
# that a run pre-empted on a GPU node can resume on another node.
HASH_EXCLUDED_KEYS = ("name", "device", "num_workers")
# Libraries whose version does not change what is learned (left out of the hash).
HASH_EXCLUDED_LIBRARIES = ("snakemake",)


class TrainingError(UssegError):
    """Training cannot go on (e.g. the loss is no longer a finite number)."""


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class TrainingJob:
    """One training, prepared: what the network, forest and semi-supervised trainers read.

    train_experiment builds it once from the experiment and the prepared data.
    remedy: the (cached, random) transforms of the experiment's remedy
    (usseg.remedies.wiring.training_transforms).
    """

    exp: Experiment
    dataset: Mapping
    class_names: list[str]
    lut: np.ndarray
    weights: np.ndarray | None  # one loss weight per output class, or None
    train_recs: list[dict]
    val_recs: list[dict]
    cfg_hash: str  # the training fingerprint (training_hash) its checkpoints and model carry
    device: torch.device
    out_dir: Path
    checkpoint_dir: Path
    on_epoch_end: Callable[[int], None] | None = None
    remedy: tuple[list, list] = ([], [])

    def moved(self, **changes) -> TrainingJob:
        """The same job with some fields replaced (a teacher's folders, a student's fingerprint)."""
        return dataclasses.replace(self, **changes)


def train_experiment(
    exp: Experiment,
    prepared: data.PreparedData,
    out_dir,
    checkpoint_dir,
    *,
    on_epoch_end: Callable[[int], None] | None = None,
) -> None:
    """Train experiment `exp` on the prepared data and write its outputs to out_dir.

    on_epoch_end(epoch) is called after each epoch's checkpoint is written
    (for progress hooks and for tests that interrupt a run).
    """
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(exp)
    dataset = prepared.dataset
    class_names = exp.class_names(dataset)
    table = prepared.table
    modalities = list(exp.train_modalities)
    train_recs = prepared.records(contracts.TRAIN, modalities)
    if not train_recs:
        raise DataError(
            f"experiment {exp.name}: no labeled training images: {prepared.splits_csv} has no rows with split "
            f"'train' and modality in {modalities} ({data.describe_split_counts(table, modalities)}). "
            "Train on a modality with labeled training images (e.g. train_modalities: [AUS])."
        )
    val_recs = prepared.records(contracts.VAL, modalities)
    if not val_recs:
        log.warning(
            "experiment %s: no validation images (split 'val', modalities %s); the last epoch is kept as the model",
            exp.name, modalities,
        )
    remedy = wiring.training_transforms(exp, prepared)
    target_frames = [{"image_id": i} for i in wiring.training_frame_ids(exp, table, dataset)]
    cfg_hash = training_hash(exp, dataset, table, train_recs, val_recs + target_frames)
    log.info(
        "experiment %s: %d train / %d val images (%s), classes %s, device %s, config hash %s",
        exp.name, len(train_recs), len(val_recs), ", ".join(modalities), ", ".join(class_names), device, cfg_hash,
    )
    job = TrainingJob(
        exp=exp, dataset=dataset, class_names=class_names, lut=exp.label_lookup(dataset),
        weights=class_weight_vector(exp, dataset, [r[data.LABEL] for r in train_recs]),
        train_recs=train_recs, val_recs=val_recs, cfg_hash=cfg_hash, device=device, out_dir=out_dir,
        checkpoint_dir=checkpoint_dir, on_epoch_end=on_epoch_end, remedy=remedy,
    )
    if exp.is_forest:
        train_forest(job)
    elif isinstance(settings := exp.remedy, spec.PseudoLabel | spec.MeanTeacher):
        # Late: usseg.semi_training builds on this module's loop.
        from usseg.semi_training import train_semi_supervised

        train_semi_supervised(job, frames=wiring.target_bank(exp, settings, prepared).images)
    else:
        _train_network(job)


# ----------------------------------------------------------------------------- settings


def training_hash(exp: Experiment, dataset: Mapping, table: pd.DataFrame, train_recs, val_recs) -> str:
    """Hash of everything that determines the trained model (see module docstring)."""
    ids = {r["image_id"] for r in train_recs} | {r["image_id"] for r in val_recs}
    rows = table[table["image_id"].isin(ids)].sort_values("image_id")
    fingerprint = [
        [r.get("image_id"), r.get("split"), r.get("sha256", ""), r.get("mask_sha256", "")]
        for r in rows.to_dict("records")
    ]
    settings = {k: v for k, v in exp.settings.items() if k not in HASH_EXCLUDED_KEYS}
    return checkpoint.config_hash(
        {
            "experiment": settings,
            "classes": exp.class_names(dataset),
            "lut": exp.label_lookup(dataset).tolist(),
            "data": fingerprint,
            "code": training_code_digest(),
            "versions": training_library_versions(),
        }
    )


def training_code_digest() -> str:
    """One digest of every usseg file training runs (usseg.train and its imports, transitively)."""
    return code_digest(module_code_files("usseg.train"))


def training_library_versions() -> dict:
    return {k: v for k, v in library_versions().items() if k not in HASH_EXCLUDED_LIBRARIES}


def class_weight_vector(exp: Experiment, dataset: Mapping, train_label_paths) -> np.ndarray | None:
    """exp.loss.class_weights as one weight per output class (background first), or None.

    auto: `suggest_class_weights` over the training labels mapped to the
    output classes, the same weights the diagnostics suggest.
    """
    setting = exp.loss.class_weights
    names = exp.class_names(dataset)
    if setting in (None, "none"):
        return None
    if setting == "auto":
        lut = exp.label_lookup(dataset)
        counts = class_totals((data.load_labels(p, lut) for p in train_label_paths), len(names))
        try:
            w = suggest_class_weights(counts)
        except ValueError:
            raise DataError(f"experiment {exp.name}: the training labels hold no pixels; cannot derive class weights.") from None
        log.info(
            "experiment %s: class_weights auto from %d training label maps: %s",
            exp.name, len(train_label_paths), ", ".join(f"{c} {v:.2f}" for c, v in zip(names, w)),
        )
        return w.astype(np.float32)
    w = np.asarray(setting, dtype=np.float32)
    if w.shape != (len(names),):
        raise ConfigError(
            f"{exp.where}.loss.class_weights has {w.size} values; the experiment has {len(names)} output classes."
        )
    return w


def build_loss(exp: Experiment, dataset: Mapping, weights: np.ndarray | None) -> torch.nn.Module:
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


# ----------------------------------------------------------------------------- network training


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1)


def _autocast(device: torch.device):
    # Mixed precision only on CUDA: CPU autocast (bfloat16) is slower on most CPUs and changes results.
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()




def _train_network(job: TrainingJob, retry: bool = True) -> None:
    exp, device, checkpoint_dir = job.exp, job.device, job.checkpoint_dir
    seed, epochs = exp.seed, exp.epochs
    set_determinism(seed=seed)
    net = job_network(job)
    loss_fn = build_loss(exp, job.dataset, job.weights).to(device)
    optimizer = build_optimizer(exp, net.parameters())
    scheduler = build_scheduler(exp, optimizer)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None

    history: list[dict] = []
    best = {"epoch": 0, "key": [-math.inf, -math.inf]}
    start = 1
    resumed = _resume(checkpoint_dir, job.cfg_hash, exp.name, net, optimizer, scheduler, scaler)
    if resumed is not None:
        start, history, best = resumed

    train_ds, val_ds = training_datasets(job)
    n_fg = len(job.class_names) - 1

    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        loader = epoch_loader(train_ds, exp, epoch, device)
        train_loss = _train_one_epoch(
            net, loader, loss_fn, optimizer, scaler, device, f"experiment {exp.name}: epoch {epoch}/{epochs}"
        )
        if val_ds is not None:
            val_loss, val_dice = _validate(net, val_ds, loss_fn, device, n_fg, exp)
        else:
            val_loss, val_dice = float("nan"), np.full(n_fg, np.nan)
        if scheduler is not None:
            scheduler.step()
        row, key = epoch_record(epoch, train_loss, val_loss, val_dice, job.class_names, lr, time.perf_counter() - t0)
        history.append(row)
        mean_dice = row["val_dice_mean"]
        if val_ds is None or key > best["key"]:
            best = {"epoch": epoch, "key": key}
            meta = model_metadata(exp, job.class_names, job.cfg_hash, epoch=epoch, val_dice_mean=mean_dice)
            save_network(checkpoint_dir / BEST, net, meta)
        _save_last(checkpoint_dir, job.cfg_hash, exp, epoch, history, best, net, optimizer, scheduler, scaler)
        _write_history(history, job.class_names, job.out_dir / "history.csv")
        epoch_log.info(_epoch_line(row, epochs, job.class_names))
        if job.on_epoch_end is not None:
            job.on_epoch_end(epoch)

    if start > epochs:
        log.info("checkpoint already holds all %d epochs; writing the outputs from it", epochs)
    best_path = checkpoint_dir / BEST
    if not best_path.is_file():
        raise DataError(f"{best_path}: the best model of experiment {exp.name} is missing; delete {checkpoint_dir} and re-run.")
    try:
        verify_best(best_path, job.cfg_hash)
    except UssegError as exc:
        if not retry:
            raise
        _set_aside_all(checkpoint_dir, exp.name, exc)
        return _train_network(job, retry=False)
    write_outputs(best_path, history, job.class_names, exp.name, best["epoch"], job.out_dir)


def job_network(job: TrainingJob) -> torch.nn.Module:
    """The job's network, freshly initialised from the global RNGs, on its device."""
    exp = job.exp
    return build_network(exp.model, len(job.class_names), exp.image_size, where=f"{exp.where}.model").to(job.device)


def training_datasets(job: TrainingJob):
    """(train, val) CacheDatasets of a job; val is None without validation images.

    Validation images get the remedy's cached part only (the normalisation), as test images do.
    """
    n_cache = max(1, torch.get_num_threads())  # caching threads within the job's thread budget
    train_ds = data.build_dataset(job.train_recs, job.exp.image_size, job.exp.augmentation, job.lut, augment=True, cache_workers=n_cache,
                                  remedy=job.remedy)
    val_ds = (data.build_dataset(job.val_recs, job.exp.image_size, job.exp.augmentation, job.lut, augment=False, cache_workers=n_cache,
                                 remedy=(wiring.validation_transforms(job.remedy[0]), []))
              if job.val_recs else None)
    return train_ds, val_ds


def epoch_loader(train_ds, exp: Experiment, epoch: int, device: torch.device) -> DataLoader:
    """Epoch `epoch`'s shuffled loader, seeded from (seed, epoch).

    A new loader per epoch: MONAI seeds the random transforms from its generator on creation.
    """
    generator = torch.Generator()
    generator.manual_seed(_epoch_seed(exp.seed, epoch))
    return DataLoader(train_ds, batch_size=exp.batch_size, shuffle=True, num_workers=exp.num_workers,
                      generator=generator, pin_memory=device.type == "cuda")


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


def write_outputs(best_path: Path, history: list[dict], class_names, name: str, best_epoch: int, out_dir: Path) -> None:
    """model.safetensors (a copy of the verified best model), history.csv, timing.csv and curves.png."""
    tmp = out_dir / "model.safetensors.tmp"
    shutil.copyfile(best_path, tmp)
    os.replace(tmp, out_dir / "model.safetensors")
    _write_history(history, class_names, out_dir / "history.csv")
    plot_curves(history, class_names, name, best_epoch, out_dir / "curves.png")
    row = next((r for r in history if r["epoch"] == best_epoch), None)
    log.info("experiment %s: best epoch %d (val mean foreground Dice %s)", name, best_epoch,
             _fmt(row["val_dice_mean"]) if row else "n/a")


def train_step(net, batch, loss_fn, optimizer, scaler, device) -> tuple[float, int]:
    """One optimisation step on a batch; (loss value, batch size). Shared with benchmarks/train.py."""
    x = batch[data.IMAGE].to(device, non_blocking=True)
    y = batch[data.LABEL].to(device, non_blocking=True)
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


def _train_one_epoch(net, loader, loss_fn, optimizer, scaler, device, desc) -> float:
    net.train()
    total, count = 0.0, 0
    # The bar is for a terminal; disable=None turns it off when stderr is a file
    # (a SLURM job's log), where the epoch summary line in the rule's log says it all.
    bar = tqdm(loader, desc=desc, file=sys.stderr, leave=False, mininterval=1.0,
               dynamic_ncols=True, disable=None)
    for i, batch in enumerate(bar, start=1):
        value, n = train_step(net, batch, loss_fn, optimizer, scaler, device)
        if not math.isfinite(value):
            bar.close()
            raise TrainingError(
                f"{desc}, batch {i}: the training loss is {value} (lr {optimizer.param_groups[0]['lr']:g}); "
                "training stopped, no model was written. Usually the learning rate is too high "
                "(lower optimizer.lr) or an input holds NaN values."
            )
        total += value * n
        count += n
        bar.set_postfix(loss=f"{value:.3f}", refresh=False)
    bar.close()
    return total / max(count, 1)


@torch.no_grad()
def _validate(net, val_ds, loss_fn, device, n_fg, exp) -> tuple[float, np.ndarray]:
    """Validation loss and per-class Dice at image_size (mean over images where the class is present)."""
    net.eval()
    loader = DataLoader(val_ds, batch_size=exp.batch_size, shuffle=False, num_workers=exp.num_workers)
    total, count = 0.0, 0
    dices, presents = [], []
    fg = list(range(1, n_fg + 1))
    for batch in loader:
        x = batch[data.IMAGE].to(device)
        y = batch[data.LABEL].to(device)
        with _autocast(device):
            logits = net(x)
            loss = loss_fn(logits, y)
        total += float(loss) * x.shape[0]
        count += x.shape[0]
        pred = logits.argmax(dim=1).cpu().numpy()
        ref = y[:, 0].cpu().numpy().astype(np.int64)
        for p, r in zip(pred, ref):
            dices.append(metrics.dice_per_class(p, r, fg))
            presents.append(metrics.present_per_class(r, fg))
    return total / max(count, 1), metrics.mean_where_present(np.array(dices), np.array(presents))


# ----------------------------------------------------------------------------- checkpoints


def _save_last(checkpoint_dir, cfg_hash, exp, epoch, history, best, net, optimizer, scheduler, scaler,
               extra_tensors=None):
    """last.safetensors; extra_tensors (prefixed names, e.g. a mean teacher's "teacher." weights) join the file."""
    opt_tensors, opt_meta = checkpoint.flatten_optimizer(optimizer)
    rng_tensors, rng_meta = checkpoint.rng_state()
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    tensors.update(extra_tensors or {})
    meta = {
        "kind": CHECKPOINT_KIND,
        "format_version": checkpoint.FORMAT_VERSION,
        "experiment": exp.name,
        "config_hash": cfg_hash,
        "epoch": epoch,
        "history": history,
        "best": best,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_meta,
    }
    checkpoint.save_tensors(checkpoint_dir / LAST, tensors, meta)


def _resume(checkpoint_dir, cfg_hash, name, net, optimizer, scheduler, scaler):
    """Restore state from last.safetensors when it matches cfg_hash: (start_epoch, history, best) or None."""
    last = checkpoint_dir / LAST
    if not last.is_file():
        log.info("experiment %s: no checkpoint in %s; starting at epoch 1", name, checkpoint_dir)
        return None
    try:
        tensors, meta = checkpoint.load_tensors(last)
    except UssegError as exc:
        _set_aside_all(checkpoint_dir, name, exc)
        return None
    if meta.get("kind") != CHECKPOINT_KIND or meta.get("config_hash") != cfg_hash:
        log.warning(
            "experiment %s: checkpoint %s has config hash %s but this run has %s (settings or data changed); "
            "starting fresh at epoch 1",
            name, last, meta.get("config_hash"), cfg_hash,
        )
        _clear(checkpoint_dir)
        return None
    best = meta["best"]
    if best["epoch"] and (checkpoint_dir / BEST).is_file():
        try:
            verify_best(checkpoint_dir / BEST, cfg_hash)
        except UssegError as exc:
            # Resuming without its best model would pick another final model than an uninterrupted run.
            _set_aside_all(checkpoint_dir, name, exc)
            return None
    net.load_state_dict(checkpoint.split_prefix(tensors, "model."), strict=True)
    checkpoint.restore_optimizer(optimizer, tensors, meta["optimizer"])
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler") is not None:
        scaler.load_state_dict(meta["scaler"])
    checkpoint.restore_rng(tensors, meta["rng"])
    if best["epoch"] and not (checkpoint_dir / BEST).is_file():
        log.warning("experiment %s: best model file is missing from %s; the best epoch restarts from here", name, checkpoint_dir)
        best = {"epoch": 0, "key": [-math.inf, -math.inf]}
    epoch = int(meta["epoch"])
    log.info("experiment %s: resuming from %s after epoch %d (config hash %s)", name, last, epoch, cfg_hash)
    return epoch + 1, list(meta["history"]), best


def verify_best(path: Path, cfg_hash: str) -> None:
    """Raise UssegError unless `path` is an intact best model of this exact training fingerprint."""
    _, meta = checkpoint.load_tensors(path)
    if meta.get("config_hash") != cfg_hash:
        raise CorruptFileError(
            f"{path}: a model of training fingerprint {meta.get('config_hash')}, not of this run's {cfg_hash}"
        )


def _set_aside_all(checkpoint_dir: Path, name: str, reason: Exception) -> None:
    """Keep damaged checkpoints as *.corrupt (never used again) and start training from epoch 1."""
    kept = [str(checkpoint.set_aside(checkpoint_dir / f)) for f in (LAST, BEST) if (checkpoint_dir / f).is_file()]
    log.warning(
        "experiment %s: checkpoint unusable (%s); set aside as %s; training starts again at epoch 1",
        name, reason, ", ".join(kept) or "nothing",
    )


def _clear(checkpoint_dir: Path) -> None:
    for fname in (LAST, BEST):
        (checkpoint_dir / fname).unlink(missing_ok=True)
