"""Train the random-forest baseline: one fit on sampled pixels, scored on the validation images.

The network's trainer is usseg.training.loop; both write the same history.csv,
timing.csv and curves (usseg.training.history) and a model.safetensors that
usseg.models loads. The forest reads the same images as the network (the
prepared arrays at image_size, usseg.training.batches), without augmentation.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from usseg import checkpoint, forest, metrics
from usseg.models import model_metadata
from usseg.training.curves import plot_curves
from usseg.training.history import epoch_line, write_history

if TYPE_CHECKING:
    from usseg.training.batches import TrainingSet
    from usseg.training.job import TrainingJob

log = logging.getLogger("usseg.train")


def _arrays(images: TrainingSet) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return list(images.images[:, 0].numpy()), list(images.labels[:, 0].numpy().astype(np.int64))


def train(job: TrainingJob) -> None:
    """Fit the forest of `job` (usseg.training.job.TrainingJob) and write its model, history and curves."""
    t0 = time.perf_counter()
    exp, class_names, weights, outputs = job.exp, job.class_names, job.weights, job.outputs
    outputs.make_folders()
    settings = exp.forest
    seed = exp.seed
    n = len(class_names)
    train_imgs, train_labs = _arrays(job.train)
    x, y = forest.sample_training_pixels(train_imgs, train_labs, settings.pixels_per_image, seed)
    class_weight = None
    if weights is not None:
        class_weight = {int(c): float(weights[c]) for c in np.unique(y)}
    # The experiment's threads, as a network training uses (a config value, not the machine's cores).
    rf = forest.fit_forest(x, y, settings, seed, class_weight=class_weight, n_jobs=exp.threads)
    arrs = forest.forest_to_arrays(rf, n)
    meta = model_metadata(
        exp, class_names, job.cfg_hash, epoch=1,
        forest={
            "feature_version": forest.FEATURE_VERSION,
            "feature_names": list(forest.FEATURE_NAMES),
            "n_trees": len(rf.estimators_),
            "n_nodes": int(arrs["forest.tree_offsets"][-1]),
            "n_training_pixels": len(y),
        },
    )
    predictor = forest.ForestPredictor(arrs, meta)
    train_loss = _log_loss(predictor.proba_from_features(x), y)
    n_fg = n - 1
    if job.val is not None:
        val_imgs, val_labs = _arrays(job.val)
        proba = predictor.predict_proba(np.stack(val_imgs))
        val_loss = _log_loss(proba.transpose(0, 2, 3, 1).reshape(-1, n), np.concatenate([v.ravel() for v in val_labs]))
        pred = proba.argmax(axis=1)
        fg = list(range(1, n))
        d = np.array([metrics.dice_per_class(p, r, fg) for p, r in zip(pred, val_labs)])
        pr = np.array([metrics.present_per_class(r, fg) for r in val_labs])
        val_dice = metrics.mean_where_present(d, pr)
    else:
        val_loss, val_dice = float("nan"), np.full(n_fg, np.nan)
    mean_dice = metrics.nanmean_or_nan(val_dice)
    meta["val_dice_mean"] = mean_dice
    checkpoint.save_tensors(outputs.model, arrs, meta)
    row = {
        "epoch": 1,
        "train_loss": train_loss,
        "val_loss": val_loss,
        **{f"val_dice_{c}": float(v) for c, v in zip(class_names[1:], val_dice)},
        "val_dice_mean": mean_dice,
        "lr": float("nan"),
        "seconds": time.perf_counter() - t0,
    }
    write_history([row], class_names, outputs.history, outputs.timing)
    plot_curves([row], class_names, exp.name, 1, outputs.curves)
    log.info(
        "%s: random forest, %d trees, %d nodes, %d training pixels; %s",
        job.name, len(rf.estimators_), meta["forest"]["n_nodes"], len(y), epoch_line(row, 1, class_names),
    )


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    p = proba[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, 1e-7, 1.0)).mean())
