"""Sanity checks of the training pipeline: is it the pipeline or the data?

A model that fails on buggy code looks exactly like a model that fails on bad
data. These checks run the experiment's OWN training code (`train.train_experiment`:
its network, loss, optimizer, data path and augmentation) on altered inputs
whose right answer is known, so a pipeline bug shows up as a FAIL whatever
the data:

- overfit a handful: trained on `sanity.overfit_images` training images only
  (images that show at least one of the experiment's organs at image_size,
  spread over subjects), the model must reach `sanity.overfit_min_dice` on
  those same images (Dice of each organ over the handful's pixels pooled,
  averaged over the organs) within `sanity.overfit_epochs` epochs. The Dice is
  scored the way evaluation predicts (the prepared image alone, the saved
  model's predictor) against the cached label map at image_size, not by the
  training loop, so a training data path that disagrees with the labels
  (classes shifted, an augmentation that moves the image but not the mask)
  cannot grade itself. It is scored after every epoch, and the training stops
  as soon as the goal is reached (the answer is known): the result says after
  how many epochs. A pipeline that cannot reach it trains all the epochs.
- shuffled-label control: the same training with every training label map
  (at image_size, so images of any original size can swap labels)
  given to another training image (of another subject where possible) must
  score near chance on validation. "Chance" is not zero on ultrasound, where
  organs sit in roughly the same place in every frame: it is the Dice of the
  best image-blind prediction learnt from the training label maps (for each
  class, the pixels where it occurs often enough; see `prior_masks`). The
  control FAILs when the training loop's own validation Dice (last epoch)
  exceeds that by more than `sanity.shuffled_max_dice_above_chance`: learning
  from labels that do not belong to the images means the labels reach the
  model by another road.
- label round trip (`label_round_trip`): the cached label arrays, re-encoded
  with the palette, reproduce the mask files away from the anti-aliased borders.

Each check returns a JSON-ready dict with a status (PASS or FAIL), the
measured numbers, the threshold and the counts (images and subjects).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from usseg import contracts, metrics
from usseg.contracts import UNLABELED
from usseg.data import LABEL, PreparedData, load_labels, resize_nearest
from usseg.dataset_root import dataset_file
from usseg.errors import DataError
from usseg.experiment import NETWORK_NAMES, Experiment
from usseg.masks import load_mask_rgb

log = logging.getLogger("usseg.checks.sanity")

PASS, FAIL = "PASS", "FAIL"
# Split name given to the rows a check leaves out of its training run.
UNUSED_SPLIT = "sanity_unused"


# ----------------------------------------------------------------------------- shared helpers


OVERFIT = "overfit a handful"
SHUFFLED = "shuffled-label control"


def _train(exp: Experiment, prepared: PreparedData, splits_table: pd.DataFrame | None, work: Path, check: str,
           **kwargs) -> contracts.TrainingOutputs:
    """Run the experiment's own training (no checkpoints: a scratch run) on `splits_table` (None: the
    prepared split); return its outputs (in work/out). kwargs go to train_experiment (arrays, stop_when)."""
    # Late: MONAI and torch, for the two training checks only (not the label round trip).
    from usseg.train import train_experiment

    work.mkdir(parents=True, exist_ok=True)
    if splits_table is not None:
        splits_csv = work / "splits.csv"
        contracts.write_table(splits_table, splits_csv, contracts.SPLIT_COLUMNS)
        prepared = dataclasses.replace(prepared, splits_csv=splits_csv)
    out = contracts.TrainingOutputs.in_folder(work / "out")
    train_experiment(exp, prepared, out, None, label=f"experiment {exp.name}, sanity check '{check}'", **kwargs)
    return out


def pooled_dice(preds: np.ndarray, refs: np.ndarray, n_classes: int) -> tuple[float, np.ndarray]:
    """Dice of each foreground class over all pixels of all images at once (NaN where absent from refs),
    and its mean over the classes present: (mean, per class)."""
    per_class = np.full(n_classes - 1, np.nan)
    for c in range(1, n_classes):
        r, p = refs == c, preds == c
        if r.any():
            per_class[c - 1] = 2.0 * np.logical_and(p, r).sum() / (p.sum() + r.sum())
    return metrics.nanmean_or_nan(per_class), per_class


def _per_class_dict(class_names, values) -> dict:
    return {c: (None if not np.isfinite(v) else round(float(v), 4)) for c, v in zip(class_names[1:], values)}


def _round(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


# ----------------------------------------------------------------------------- overfit a handful


def pick_handful(records: list[dict], n: int, seed: int) -> list[dict]:
    """n training records, one subject after another (round robin over shuffled subjects), reproducibly."""
    rng = np.random.default_rng(seed)
    by_subject: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["image_id"]):
        by_subject.setdefault(r["subject_id"], []).append(r)
    subjects = sorted(by_subject)
    rng.shuffle(subjects)
    for s in subjects:
        rng.shuffle(by_subject[s])
    picked: list[dict] = []
    while len(picked) < n and any(by_subject[s] for s in subjects):
        for s in subjects:
            if by_subject[s] and len(picked) < n:
                picked.append(by_subject[s].pop())
    return picked


def overfit_handful(exp: Experiment, prepared: PreparedData, sanity_cfg: dict, work_dir) -> dict:
    """Train exp on a few training images until it reaches sanity.overfit_min_dice on them (at most
    sanity.overfit_epochs epochs); score it on those same images."""
    from usseg.models import NetworkPredictor, load_predictor, resolve_device

    class_names = exp.class_names(prepared.dataset)
    lut = exp.label_lookup(prepared.dataset)
    splits_csv = prepared.splits_csv
    arrays = prepared.arrays(exp.image_size)
    train_recs = prepared.records(contracts.TRAIN, exp.train_modalities)
    n_wanted = int(sanity_cfg["overfit_images"])
    # Only images that show one of the experiment's organs (at image_size, where it is scored): an
    # empty label map has no Dice to reach.
    maps = arrays.take([r["image_id"] for r in train_recs]).mapped_labels(lut) if train_recs else []
    with_organs = [r for r, m in zip(train_recs, maps) if m.any()]
    handful = pick_handful(with_organs, n_wanted, int(sanity_cfg["seed"]))
    if not handful:
        raise DataError(
            f"{splits_csv}: no training image of experiment {exp.name} shows any of its organs "
            f"({', '.join(class_names[1:])}); the overfit check needs some."
        )
    ids = [r["image_id"] for r in handful]
    splits = contracts.read_splits(splits_csv)
    # Unlabeled frames stay: the remedies that read target frames (usseg.training.remedy) need them.
    kept = np.where(splits["split"] == UNLABELED, UNLABELED, UNUSED_SPLIT)
    splits["split"] = np.where(splits["image_id"].isin(set(ids)), "train", kept)
    epochs = int(sanity_cfg["overfit_epochs"])
    threshold = float(sanity_cfg["overfit_min_dice"])

    # Scored outside the training loop, as evaluation predicts: the prepared image
    # alone, against the cached label map read from its file and resized here (not
    # the training data path's labels, so that path cannot grade itself). At
    # image_size, so that detail lost to the resolution (thin organs) does not count
    # against the pipeline.
    images = arrays.take(ids).images
    refs = np.stack([resize_nearest(load_labels(r[LABEL], lut), exp.image_size) for r in handful])
    device = resolve_device(exp)

    def score(predictor) -> tuple[float, np.ndarray]:
        # Pooled over the handful's pixels: an organ that shows as a sliver of a few
        # pixels in one image must not decide the check.
        return pooled_dice(np.stack(list(predictor.predict(images))), refs, len(class_names))

    def reached(epoch, net):
        mean, _ = score(NetworkPredictor(net, {"class_names": class_names, "image_size": exp.image_size}, device))
        return f"Dice {mean:.3f} on the handful reaches {threshold:.2f}" if mean >= threshold else None

    out = _train(exp.with_settings(epochs=epochs), prepared, splits, Path(work_dir) / "overfit", OVERFIT,
                 stop_when=reached)
    trained = len(pd.read_csv(out.history))
    mean, per_class = score(load_predictor(out.model, device=device))
    status = PASS if np.isfinite(mean) and mean >= threshold else FAIL
    message = (
        f"trained on {len(handful)} training images, the model reaches Dice {mean:.3f} on those same images "
        f"(pixels pooled, mean over organs; needs {threshold:.2f}) "
        + (f"after {trained} of at most {epochs} epochs" if status == PASS else f"in {trained} epochs")
    )
    if status == FAIL:
        message += (
            ": the pipeline cannot even memorise a handful of images. Suspect the training data path (labels that "
            "do not match their images, an augmentation applied to the image but not the mask), the loss or the "
            "learning rate before blaming the data."
        )
    log.info("experiment %s: overfit check %s: %s", exp.name, status, message)
    return {
        "status": status,
        "message": message,
        "images": len(handful),
        "subjects": len({r["subject_id"] for r in handful}),
        "image_ids": sorted(ids),
        "epochs": epochs,
        "epochs_trained": trained,
        "dice_mean": _round(mean),
        "dice_per_class": _per_class_dict(class_names, per_class),
        "min_dice": threshold,
    }


# ----------------------------------------------------------------------------- shuffled-label control


def shuffled_pairs(records: list[dict], seed: int) -> dict[str, str]:
    """image_id -> image_id whose label it gets: a derangement, across subjects wherever the split allows.

    Subjects are put in a random order and their images listed one subject
    after another; each image takes the label `m` places further on (cyclic),
    m being the largest subject's image count, so the donor belongs to another
    subject unless one subject holds more than half of the images.
    """
    rng = np.random.default_rng(seed)
    by_subject: dict[str, list[str]] = {}
    for r in sorted(records, key=lambda r: r["image_id"]):
        by_subject.setdefault(r["subject_id"], []).append(r["image_id"])
    subjects = sorted(by_subject)
    rng.shuffle(subjects)
    order = [i for s in subjects for i in by_subject[s]]
    n = len(order)
    if n < 2:
        raise DataError(f"the shuffled-label control needs at least 2 training images, got {n}.")
    shift = max(len(v) for v in by_subject.values())
    if shift % n == 0:  # a single subject: any non-zero shift is a derangement
        shift = 1
    return {order[i]: order[(i + shift) % n] for i in range(n)}


def _dice_of_mask(mask: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Dice of one fixed binary mask against each of refs (n, H, W) bool; NaN where both are empty."""
    inter = (refs & mask).sum(axis=(1, 2))
    denom = refs.sum(axis=(1, 2)) + mask.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / np.maximum(denom, 1), np.nan)


# Candidate thresholds on the per-pixel class frequency for the image-blind guess.
PRIOR_THRESHOLDS = np.linspace(0.02, 0.98, 49)


def prior_masks(train_maps: np.ndarray, n_classes: int) -> np.ndarray:
    """The best image-blind guess of each foreground class: (n_classes - 1, H, W) bool.

    For class c, the pixels where c's frequency over the training label maps
    (n, H, W) reaches a threshold, the threshold chosen to maximise c's mean
    Dice over the training maps where c is present. The per-pixel majority
    (threshold 1/2) is not enough: under Dice a generous region around where an
    organ tends to be beats the majority, and a network trained on shuffled
    labels finds that region too.
    """
    masks = np.zeros((n_classes - 1, *train_maps.shape[1:]), dtype=bool)
    for c in range(1, n_classes):
        refs = train_maps == c
        present = refs.any(axis=(1, 2))
        if not present.any():
            continue
        freq = refs.mean(axis=0)
        best = -1.0
        for t in PRIOR_THRESHOLDS:
            mask = freq >= t
            score = float(np.nan_to_num(_dice_of_mask(mask, refs[present])).mean())
            if score > best:
                best, masks[c - 1] = score, mask
    return masks


def chance_dice(prior: np.ndarray, refs: np.ndarray) -> tuple[float, np.ndarray]:
    """Dice of the image-blind guess `prior_masks` on label maps refs (n, H, W): (mean foreground, per class)."""
    n_fg = prior.shape[0]
    dice = np.stack([_dice_of_mask(prior[j], refs == j + 1) for j in range(n_fg)], axis=1)
    present = np.stack([(refs == j + 1).any(axis=(1, 2)) for j in range(n_fg)], axis=1)
    per_class = metrics.mean_where_present(dice, present)
    return metrics.nanmean_or_nan(per_class), per_class


def shuffled_label_control(exp: Experiment, prepared: PreparedData, sanity_cfg: dict, work_dir) -> dict:
    """Train exp with every training label map given to another image; compare its validation Dice with chance."""
    class_names = exp.class_names(prepared.dataset)
    lut = exp.label_lookup(prepared.dataset)
    modalities = exp.train_modalities
    train_recs = prepared.records(contracts.TRAIN, modalities)
    val_recs = prepared.records(contracts.VAL, modalities)
    if not val_recs:
        raise DataError(
            f"{prepared.splits_csv}: experiment {exp.name} has no validation images (split 'val', modalities "
            f"{list(modalities)}); the shuffled-label control scores on them. Raise split.val_fraction."
        )
    pairs = shuffled_pairs(train_recs, int(sanity_cfg["seed"]))
    subject_of = {r["image_id"]: r["subject_id"] for r in train_recs}
    same_subject = sum(subject_of[a] == subject_of[b] for a, b in pairs.items())

    # The arrays with each training image holding another image's labels (at image_size,
    # so images of different original sizes swap labels too); the validation images keep their own.
    arrays = prepared.arrays(exp.image_size)
    shuffled = dataclasses.replace(arrays, labels=arrays.labels.copy())
    shuffled.labels[arrays.positions(list(pairs))] = arrays.labels[arrays.positions(list(pairs.values()))]

    epochs = int(sanity_cfg["shuffled_epochs"] or exp.epochs)
    out = _train(exp.with_settings(epochs=epochs), prepared, None, Path(work_dir) / "shuffled", SHUFFLED,
                 arrays=shuffled)
    history = pd.read_csv(out.history)
    last = history.iloc[-1]
    dice_last = float(last["val_dice_mean"])
    dice_best = float(history["val_dice_mean"].max())

    # Chance on the same terms as the training loop's validation: at image_size.
    def maps(recs):
        return arrays.take([r["image_id"] for r in recs]).mapped_labels(lut)

    prior = prior_masks(maps(train_recs), len(class_names))
    chance, chance_per_class = chance_dice(prior, maps(val_recs))
    margin = float(sanity_cfg["shuffled_max_dice_above_chance"])
    above = dice_last - (chance if np.isfinite(chance) else 0.0)
    status = PASS if np.isfinite(dice_last) and above <= margin else FAIL
    message = (
        f"trained for {epochs} epochs on {len(train_recs)} training images with shuffled labels, the model scores "
        f"mean foreground Dice {dice_last:.3f} on {len(val_recs)} validation images at the last epoch; the best "
        f"image-blind guess from the training labels scores {chance:.3f} (allowed margin {margin:.2f})"
    )
    if status == FAIL:
        message += (
            ": the model learns from labels that do not belong to its images, so the labels reach it by another "
            "road (a label channel or file read as the image, validation labels leaking into training, the "
            "evaluation comparing labels with labels). Find the leak before trusting any result."
        )
    log.info("experiment %s: shuffled-label control %s: %s", exp.name, status, message)
    return {
        "status": status,
        "message": message,
        "train_images": len(train_recs),
        "train_subjects": len(set(subject_of.values())),
        "same_subject_pairs": int(same_subject),
        "val_images": len(val_recs),
        "val_subjects": len({r["subject_id"] for r in val_recs}),
        "epochs": epochs,
        "dice_mean_last_epoch": _round(dice_last),
        "dice_mean_best_epoch": _round(dice_best),
        "dice_per_class_last_epoch": {c: _round(float(last[f"val_dice_{c}"])) for c in class_names[1:]},
        "chance_dice_mean": _round(chance),
        "chance_dice_per_class": _per_class_dict(class_names, chance_per_class),
        "dice_above_chance": _round(above),
        "max_dice_above_chance": margin,
    }


def run_training_checks(exp: Experiment, prepared: PreparedData, sanity_cfg: dict, work_dir=None) -> dict:
    """Both training checks for one network experiment: {experiment, status, overfit, shuffled_label}.

    The forest has no training loop to check: only networks are accepted.
    """
    if not exp.is_network:
        raise DataError(
            f"experiment {exp.name} uses model {exp.model.name!r}; the training sanity checks apply to "
            f"networks ({', '.join(NETWORK_NAMES)})."
        )
    with tempfile.TemporaryDirectory(prefix=f"usseg-sanity-{exp.name}-", dir=work_dir) as tmp:
        overfit = overfit_handful(exp, prepared, sanity_cfg, tmp)
        shuffled = shuffled_label_control(exp, prepared, sanity_cfg, tmp)
    statuses = [overfit["status"], shuffled["status"]]
    return {
        "experiment": exp.name,
        "status": FAIL if FAIL in statuses else PASS,
        "overfit": overfit,
        "shuffled_label": shuffled,
    }


# ----------------------------------------------------------------------------- label round trip


def interior_mask(labels: np.ndarray, border_px: int) -> np.ndarray:
    """Pixels whose (2 border_px + 1)-square neighbourhood holds a single class: away from every border."""
    if border_px <= 0:
        return np.ones(labels.shape, dtype=bool)
    size = 2 * int(border_px) + 1
    lo = ndimage.minimum_filter(labels, size=size, mode="nearest")
    hi = ndimage.maximum_filter(labels, size=size, mode="nearest")
    return lo == hi


def round_trip_mismatch(labels: np.ndarray, rgb: np.ndarray, palette: np.ndarray, tolerance: float, border_px: int):
    """(share of interior pixels whose mask colour is farther than `tolerance` from palette[label], interior count)."""
    if labels.shape != rgb.shape[:2]:
        return 1.0, 0
    inside = interior_mask(labels, border_px)
    n = int(inside.sum())
    if n == 0:
        return 0.0, 0
    encoded = palette[labels].astype(np.int32)
    d2 = ((rgb.astype(np.int32) - encoded) ** 2).sum(axis=2)
    return float(np.count_nonzero((d2 > tolerance**2) & inside)) / n, n


def label_round_trip(prepared: PreparedData, sanity_cfg: dict) -> dict:
    """Re-encode every cached label map the splits use with the palette and compare it with its mask file.

    A mask fails when more than sanity.round_trip_max_mismatch of its interior
    pixels (farther than sanity.round_trip_border_px from a class border) lie
    farther than dataset.off_palette_distance from the colour of their
    decoded class. The check FAILs when any mask fails.
    """
    table, root, labels_dir = prepared.table, prepared.root, prepared.labels_dir
    pal = prepared.dataset.palette
    tolerance = prepared.dataset.off_palette_distance
    border = int(sanity_cfg["round_trip_border_px"])
    max_mismatch = float(sanity_cfg["round_trip_max_mismatch"])
    rows = table[table["mask_path"].astype(str) != ""] if "mask_path" in table else table.iloc[0:0]
    failures, checked, subjects = [], 0, set()
    worst = 0.0
    for r in rows.sort_values("image_id").itertuples(index=False):
        npy = labels_dir / f"{r.image_id}.npy"
        if not npy.is_file():
            continue  # quarantined or unlabeled: nothing is trained or scored on it
        labels = np.load(npy, allow_pickle=False)
        rgb = load_mask_rgb(dataset_file(root, r.mask_path))
        share, _ = round_trip_mismatch(labels, rgb, pal, tolerance, border)
        checked += 1
        subjects.add(r.subject_id)
        worst = max(worst, share)
        if share > max_mismatch:
            failures.append({"image_id": r.image_id, "mask_path": r.mask_path, "mismatch": round(share, 4)})
    if checked == 0:
        raise DataError(f"{prepared.splits_csv}: no image has both a mask and a cached label in {labels_dir}; "
                        "nothing to check.")
    status = PASS if not failures else FAIL
    message = (
        f"{checked - len(failures)} of {checked} cached label maps re-encoded with the palette reproduce their mask "
        f"files away from class borders (worst mismatch {worst:.2%} of interior pixels, allowed {max_mismatch:.2%})"
    )
    if failures:
        message += (
            f"; {len(failures)} do not (e.g. {failures[0]['image_id']}): the label cache does not hold what the masks "
            "say (wrong palette order, a shifted or transposed array, a label paired with another image). Delete "
            f"{labels_dir} and re-run decode_masks; if it persists, check dataset.classes."
        )
    log.info("label round trip %s: %s", status, message)
    return {
        "status": status,
        "message": message,
        "images": checked,
        "subjects": len(subjects),
        "worst_mismatch": round(worst, 6),
        "max_mismatch": max_mismatch,
        "border_px": border,
        "tolerance": tolerance,
        "failures": failures,
    }


def write_result(path, result: dict) -> None:
    """Write a check's result as JSON (strict: no NaN, which the checks already turn into null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
