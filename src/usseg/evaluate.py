"""Evaluate a trained experiment on one test set at the labels' full resolution.

The model predicts at exp.image_size (the same deterministic preprocessing as
training); the predicted label map is optionally reduced to the largest
connected component per organ, resized back to the original label size
(nearest) and compared with the cached label mapped to the experiment's output
classes. Metric conventions are in usseg.metrics.

The headline is every frame, by subject: per class, each subject's mean Dice
over its frames where the class is in the reference or predicted (a false
positive on an organ-free frame scores 0, a small region is scored), then the
mean over subjects with its interval. The `min_reference_area_px` rule is kept
as a labelled secondary view (`area_rule`). The one composite is
usseg.composite's class-macro mean.

Outputs, at the paths the caller names (usseg.contracts.EvaluationOutputs: the
rule's outputs, or the usual names in a folder): per_image.csv, per_subject.csv,
summary.json (subject-level numbers first; the contract in docs/contracts.md,
every key described in docs/experiments.md), confusion.csv and confusion.png
(pixel confusion between classes) and overlays.png (best and worst image among
those where an organ is scored).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from usseg import composite, contracts, data, evaluation_figures, intervals, metrics, splits
from usseg.contracts import is_test_set
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError, UssegError
from usseg.experiment import Experiment
from usseg.figure_text import MAX_WIDTH_IN, pyplot, save_png
from usseg.models import load_predictor, resolve_device
from usseg.training import remedy as wiring

log = logging.getLogger("usseg.evaluate")

PREDICT_BATCH = 16


def largest_component_per_class(labels: np.ndarray, classes) -> np.ndarray:
    """Keep, for each class in `classes`, only its largest 8-connected component (rest -> background 0)."""
    out = labels.copy()
    structure = np.ones((3, 3), dtype=bool)
    for c in classes:
        mask = labels == c
        if not mask.any():
            continue
        comp, n = ndimage.label(mask, structure=structure)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        keep = int(np.argmax(sizes)) + 1
        out[mask & (comp != keep)] = 0
    return out


# Used when evaluate_experiment is called without an `evaluation` config section
# (the config schema holds the same defaults; docs/experiments.md says why).
DEFAULT_EVALUATION = {"nsd_tolerance_px": 3, "min_reference_area_px": 64}

METRIC_RESOLUTION = ("the reference mask's original pixel grid: the prediction is resized to it (nearest "
                     "neighbour); NSD tolerance and HD95 are in its pixels")
POOLED_DEFINITION = ("secondary: mean over the images where the class is in the reference or predicted, pooling "
                     "every frame of every subject (frames of one subject are not independent; the subject-level "
                     "value is the main one)")
SUBJECT_DEFINITION = ("per class: each subject's mean over its images where the class is in the reference or "
                      "predicted (a false positive on an image without the organ scores 0; regions of any size are "
                      "scored), then the mean over subjects")
AREA_RULE_DEFINITION = ("secondary view: per class, each subject's mean over its images where the class covers at least "
                        "min_reference_area_px pixels of the reference, then the mean over subjects; smaller regions "
                        "and images without the organ are left out (counted in too_small_images)")
HD95_WORST_DEFINITION = ("HD95 with misses at the worst value: over the images where the class is in the reference "
                         "or predicted, an image where only one side has it counts as the image diagonal (pixels)")


def evaluate_experiment(
    exp: Experiment,
    prepared: data.PreparedData,
    model_path,
    test_set: str,
    outputs: contracts.EvaluationOutputs,
    *,
    evaluation: dict | None = None,
    test_sets=None,
    predictor=None,
    figures: bool = True,
) -> dict:
    """Evaluate `model_path` on the prepared data's images of split `test_set`; write `outputs`, return the summary.

    `outputs`: where each file goes (`contracts.EvaluationOutputs.from_rule`, or `.in_folder(folder)`;
    their folders are created).
    `evaluation`: the config's evaluation section (NSD tolerance, minimum
    reference area). `test_sets`: every test set of the run (default: every
    test split in splits.csv); the foreground
    mean is over the classes scored on all of them, so that it compares like
    with like across test sets. `predictor`: where the label maps come from
    (default: the usseg model at `model_path`); any object with `class_names`,
    `image_size` and either `predict(images)` or `predict_records(records)`,
    such as a FilesPredictor reading another tool's predictions. `figures`: write confusion.png and
    overlays.png (False: the numbers only, for the gap study's many evaluations).
    """
    if not is_test_set(test_set):
        raise UssegError(
            f"test set {test_set!r} is not a test split: test sets are named test_<modality> (docs/contracts.md)."
        )
    # Speed and determinism: a network predicts with its experiment's threads (not the job's share of the cores).
    torch.set_num_threads(exp.threads)
    settings = {**DEFAULT_EVALUATION, **(evaluation or {})}
    tolerance = float(settings["nsd_tolerance_px"])
    min_area = int(settings["min_reference_area_px"])
    outputs.make_folders()
    dataset = prepared.dataset
    class_names = exp.class_names(dataset)
    predictor = _checked_predictor(predictor or load_predictor(model_path, device=resolve_device(exp)), exp,
                                   class_names, model_path)
    lut = exp.label_lookup(dataset)
    records = prepared.records(test_set)
    if not records:
        raise DataError(f"{prepared.splits_csv}: no images with split {test_set!r}; nothing to evaluate experiment "
                        f"{exp.name} on.")
    arr, confusion, preds_small = _score_images(exp, prepared, predictor, records, test_set, lut, class_names,
                                                tolerance)
    fg_names = class_names[1:]
    subjects = [r["subject_id"] for r in records]
    if test_sets is None:
        test_sets = sorted(s for s in prepared.table["split"].unique() if is_test_set(s))
    shared_names = _composite_classes(prepared, test_set, test_sets, lut, list(range(1, len(class_names))),
                                      class_names, arr["ref_px"], subjects)
    per_image, scored = _per_image_table(records, arr, fg_names, min_area)
    per_image.to_csv(outputs.per_image, index=False)

    scores = score_subjects(arr, subjects, fg_names, min_area)
    fg_values = pd.DataFrame(scores["dice"], index=scores["subjects"], columns=fg_names)[shared_names]
    _per_subject_table(scores, subjects, fg_names, composite.subject_terms(fg_values)).to_csv(
        outputs.per_subject, index=False)

    fg_iv = composite.composite(fg_values)
    summary = _summary(exp, prepared, test_set, test_sets, len(records), scores, arr, fg_names, shared_names, fg_iv,
                       tolerance, min_area)
    outputs.summary.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")

    write_confusion(confusion, class_names, outputs.confusion)
    if figures:
        evaluation_figures.plot_confusion(confusion, class_names, f"{exp.name} on {test_set}",
                                          outputs.confusion_png)
        plot_overlays(records, per_image, preds_small, lut, class_names, dataset, exp.name, test_set,
                      outputs.overlays, scored)
    log.info("experiment %s on %s: %d images, %s over %s: %s%s", exp.name, test_set, len(records), composite.NAME,
             ", ".join(shared_names) or "no class", intervals.describe(fg_iv),
             f" (unstable: fewer than {metrics.MIN_SUBJECTS_FOR_STABLE_CI} subjects)" if summary["unstable"] else "")
    return summary


def _checked_predictor(predictor, exp: Experiment, class_names: list[str], model_path):
    """The predictor, checked to predict the experiment's classes (a size change is only warned about)."""
    if predictor.class_names != class_names:
        raise UssegError(
            f"{model_path}: the model predicts {predictor.class_names} but experiment {exp.name} asks for "
            f"{class_names}; re-run training for this experiment."
        )
    if tuple(int(s) for s in predictor.image_size) != exp.image_size:
        log.warning("%s: trained at image_size %s, the config now says %s; predicting at the trained size",
                    model_path, list(predictor.image_size), list(exp.image_size))
    return predictor


def _score_images(exp: Experiment, prepared: data.PreparedData, predictor, records: list[dict], test_set: str,
                  lut, class_names: list[str], tolerance: float):
    """Predict every test image and score it against its reference at the reference's size: per image and
    foreground class the Dice, NSD, HD95 (and HD95 with misses), the reference and predicted areas; the
    pixel confusion counts; and the predictions at the model's size (for the overlays)."""
    size_exp = exp.with_settings(image_size=[int(s) for s in predictor.image_size])

    # Speed: the test images at the model's size come from the prepared arrays (made once per size).
    def preprocess(chunk):
        return prepared.arrays(size_exp.image_size).take([r["image_id"] for r in chunk]).images

    # The experiment's remedy (docs/remedies.md): normalised test images, batch-norm adaptation.
    predictor, prepare = wiring.prediction_remedy(
        size_exp, predictor, test_set, prepared, test_images=lambda: preprocess(records),
    )
    fg = list(range(1, len(class_names)))
    n_cls = len(class_names)
    rows = {"dice": [], "nsd": [], "hd95": [], "ref_px": [], "pred_px": []}
    confusion = np.zeros((n_cls, n_cls), dtype=np.int64)
    preds_small, diagonals = [], []
    for start in range(0, len(records), PREDICT_BATCH):
        chunk = records[start:start + PREDICT_BATCH]
        preds = _predict(predictor, chunk, preprocess, prepare)
        for r, pred in zip(chunk, preds):
            if exp.largest_component:
                pred = largest_component_per_class(pred, fg)
            ref = data.load_labels(r[data.LABEL], lut)
            full = data.resize_nearest(pred, ref.shape)
            nsd, hd95 = metrics.surface_metrics_per_class(full, ref, fg, tolerance)
            rows["dice"].append(metrics.dice_per_class(full, ref, fg))
            rows["nsd"].append(nsd)
            rows["hd95"].append(hd95)
            rows["ref_px"].append(metrics.area_per_class(ref, fg))
            rows["pred_px"].append(metrics.area_per_class(full, fg))
            diagonals.append(math.hypot(*ref.shape))
            confusion += metrics.confusion_counts(full, ref, n_cls)
            preds_small.append(pred)
    arr = {k: np.array(v, dtype=np.float64).reshape(len(records), len(fg)) for k, v in rows.items()}
    arr["hd95_worst"] = metrics.hd95_with_misses(arr["hd95"], arr["ref_px"] > 0, arr["pred_px"] > 0,
                                                 np.asarray(diagonals))
    return arr, confusion, preds_small


def _per_image_table(records: list[dict], arr: dict, fg_names: list[str], min_area: int):
    """per_image.csv's rows, and which (image, class) the reference scores under the area rule."""
    per_image = pd.DataFrame({"image_id": [r["image_id"] for r in records],
                              "subject_id": [r["subject_id"] for r in records]})
    for metric in ("dice", "nsd", "hd95", "hd95_worst"):
        for j, c in enumerate(fg_names):
            per_image[f"{metric}_{c}"] = arr[metric][:, j]
    for j, c in enumerate(fg_names):
        per_image[f"ref_px_{c}"] = arr["ref_px"][:, j].astype(np.int64)
        per_image[f"pred_px_{c}"] = arr["pred_px"][:, j].astype(np.int64)
    scored = arr["ref_px"] >= max(min_area, 1)
    # Per image: mean Dice over the classes scored in that image (false positives are counted per class instead).
    per_image["dice_mean_scored"] = [metrics.nanmean_or_nan(d[s]) for d, s in zip(arr["dice"], scored)]
    return per_image, scored


def _per_subject_table(scores: dict, subjects: list[str], fg_names: list[str], terms: pd.Series) -> pd.DataFrame:
    """per_subject.csv's rows: each subject's images, its per-class scores and its composite term."""
    subj_ids = scores["subjects"]
    subj_arr = np.asarray(subjects)
    table = pd.DataFrame({"subject_id": subj_ids, "n_images": [int((subj_arr == s).sum()) for s in subj_ids]})
    for metric in ("dice", "nsd", "hd95", "hd95_worst", "dice_area_rule"):
        for j, c in enumerate(fg_names):
            table[f"{metric}_{c}"] = scores[metric][:, j]
    table["dice_composite_term"] = terms.to_numpy()
    return table


def _summary(exp: Experiment, prepared: data.PreparedData, test_set: str, test_sets, n_images: int, scores: dict,
             arr: dict, fg_names: list[str], shared_names: list[str], fg_iv: dict, tolerance: float,
             min_area: int) -> dict:
    """summary.json (docs/contracts.md)."""
    subj_ids, subj_dice = scores["subjects"], scores["dice"]
    per_class = class_summaries(arr, scores, fg_names, min_area)
    return {
        "experiment": exp.name,
        "model": exp.model.name,
        "test_set": test_set,
        "aggregation": "subject",
        "aggregation_definition": SUBJECT_DEFINITION,
        "n_images": n_images,
        "n_subjects": len(subj_ids),
        "dice": {c: per_class[c]["dice"] for c in fg_names},
        "dice_mean_foreground": _json_number(fg_iv["estimate"]),
        "mean_foreground": {
            "name": composite.NAME,
            "classes": shared_names,
            "definition": composite.definition(shared_names, test_sets),
            "dice": _json_number(fg_iv["estimate"]),
            **_interval_keys(fg_iv),
        },
        "ci95": {c: per_class[c]["ci95"] for c in fg_names},
        "per_subject": {s: {c: _json_number(v) for c, v in zip(fg_names, row)} for s, row in zip(subj_ids, subj_dice)},
        "unstable": metrics.is_unstable(len(subj_ids)),
        "per_class": per_class,
        "area_rule": {"definition": AREA_RULE_DEFINITION,
                      "dice": {c: per_class[c]["area_rule"]["dice"] for c in fg_names}},
        "pooled_image": {"definition": POOLED_DEFINITION,
                         "dice": {c: per_class[c]["pooled_image_dice"] for c in fg_names}},
        "hd95_worst_definition": HD95_WORST_DEFINITION,
        "metric_resolution": METRIC_RESOLUTION,
        "nsd_tolerance_px": tolerance,
        "min_reference_area_px": min_area,
        "excluded": excluded_images(prepared.splits_csv, test_set),
        "excluded_subjects": splits.subjects_left_out(contracts.read_splits(prepared.splits_csv), test_set),
    }


def score_subjects(arr: dict, subjects, fg_names, min_area: int) -> dict:
    """Per subject and class (rows: sorted subject ids): the headline Dice and NSD (frames where the class
    is in the reference or predicted), HD95 (frames where both have it), HD95 with misses at the worst
    value, and the area rule's Dice (frames with at least min_area reference pixels)."""
    present, predicted = arr["ref_px"] > 0, arr["pred_px"] > 0
    counted = present | predicted
    ids, dice = metrics.subject_means(arr["dice"], counted, subjects)
    return {"subjects": ids, "dice": dice,
            "nsd": metrics.subject_means(arr["nsd"], counted, subjects)[1],
            "hd95": metrics.subject_means(arr["hd95"], present & predicted, subjects)[1],
            "hd95_worst": metrics.subject_means(arr["hd95_worst"], counted, subjects)[1],
            "dice_area_rule": metrics.subject_means(arr["dice"], arr["ref_px"] >= max(min_area, 1), subjects)[1]}


def class_summaries(arr: dict, scores: dict, fg_names, min_area: int) -> dict:
    """summary.json's per_class: the headline with its interval, range and far subjects; the boundary
    metrics; the error counts; the area rule's secondary view."""
    present, predicted = arr["ref_px"] > 0, arr["pred_px"] > 0
    counted = present | predicted
    scored = arr["ref_px"] >= max(min_area, 1)
    ids = [str(s) for s in scores["subjects"]]
    out = {}
    for j, c in enumerate(fg_names):
        iv = intervals.subject_mean_interval(scores["dice"][:, j], subjects=ids)
        area = intervals.subject_mean_interval(scores["dice_area_rule"][:, j], subjects=ids)
        nsd = intervals.subject_mean_interval(scores["nsd"][:, j])
        worst = intervals.subject_mean_interval(scores["hd95_worst"][:, j], bounds=(0.0, math.inf))
        out[c] = {
            "n_images": int(counted[:, j].sum()),
            "dice": _json_number(iv["estimate"]),
            **_interval_keys(iv),
            "nsd": _json_number(nsd["estimate"]),
            "nsd_ci95": _json_interval(nsd["ci95"]),
            "hd95": _json_number(metrics.nanmean_or_nan(scores["hd95"][:, j])),
            "hd95_n_images": int((present[:, j] & predicted[:, j]).sum()),
            "hd95_worst": _json_number(worst["estimate"]),
            "hd95_worst_ci95": _json_interval(worst["ci95"]),
            "hd95_worst_n_images": int(counted[:, j].sum()),
            "false_positive_images": int((~present[:, j] & predicted[:, j]).sum()),
            "absent_images": int((~present[:, j]).sum()),
            "missed_images": int((present[:, j] & ~predicted[:, j]).sum()),
            "too_small_images": int((present[:, j] & ~scored[:, j]).sum()),
            "predicted_images": int(predicted[:, j].sum()),
            "pooled_image_dice": _json_number(metrics.mean_where_present(arr["dice"][:, [j]], counted[:, [j]])[0]),
            "area_rule": {"n_images": int(scored[:, j].sum()), "dice": _json_number(area["estimate"]),
                          **_interval_keys(area)},
        }
    return out


def _interval_keys(iv: dict) -> dict:
    """The keys every interval carries in summary.json: n_subjects, ci95, ci_method, estimable,
    interval_note, range (per-subject minimum and maximum, named) and far_subjects."""
    rng = iv.get("range")
    return {
        "n_subjects": iv["n_subjects"],
        "ci95": _json_interval(iv["ci95"]),
        "ci_method": iv["ci_method"],
        "estimable": iv["estimable"],
        "interval_note": iv["note"],
        "range": None if rng is None else {**rng, "min": _json_number(rng["min"]), "max": _json_number(rng["max"])},
        "far_subjects": [{**f, "value": _json_number(f["value"]), "others_median": _json_number(f["others_median"])}
                         for f in iv.get("far_subjects") or []],
    }


def _predict(predictor, records, preprocess, prepare) -> list[np.ndarray]:
    """Label maps of `records`: a model gets their preprocessed images (`prepare`d by the
    experiment's remedy), a predictor that reads its own files the records."""
    if hasattr(predictor, "predict_records"):
        return predictor.predict_records(records)
    return predictor.predict(prepare(preprocess(records)))


class FilesPredictor:
    """Label maps read from PNG files `{folder}/{image_id}.png` (another tool's predictions, e.g. nnU-Net's).

    The files hold output-class indices at the image's full resolution;
    `image_size` only sizes the preprocessing that evaluation builds for any
    predictor (these files need none).
    """

    def __init__(self, folder, class_names: list[str], image_size):
        self.folder = Path(folder)
        self.class_names = list(class_names)
        self.image_size = [int(s) for s in image_size]

    def predict_records(self, records) -> list[np.ndarray]:
        from PIL import Image

        maps = []
        for r in records:
            path = self.folder / f"{r['image_id']}.png"
            if not path.is_file():
                raise DataError(f"{path}: no prediction for image {r['image_id']}; re-run the step that predicts it.")
            with Image.open(path) as im:
                labels = np.asarray(im)
            if labels.ndim != 2 or labels.max(initial=0) >= len(self.class_names):
                raise DataError(f"{path}: expected a 2D map of class indices 0..{len(self.class_names) - 1}.")
            maps.append(labels.astype(np.int64))
        return maps


def _composite_classes(prepared, test_set, test_sets, lut, fg, class_names, ref_px, subjects) -> list[str]:
    """usseg.composite.composite_classes for this run: subjects with each class in the reference, counted
    on this test set from `ref_px` and on the others from their cached labels."""
    def count(areas: np.ndarray, subj) -> tuple[dict, int]:
        ids = np.asarray(subj)
        uniq = np.unique(ids)
        has = {c: int(sum(bool((areas[ids == s, j] > 0).any()) for s in uniq)) for j, c in enumerate(fg_names)}
        return has, len(uniq)

    fg_names = [class_names[c] for c in fg]
    counts, sizes = {}, {}
    counts[test_set], sizes[test_set] = count(np.asarray(ref_px), subjects)
    for other in test_sets:
        if other == test_set:
            continue
        recs = prepared.records(other)
        areas = np.array([metrics.area_per_class(data.load_labels(r[data.LABEL], lut), fg) for r in recs],
                         dtype=np.int64).reshape(len(recs), len(fg))
        counts[other], sizes[other] = count(areas, [r["subject_id"] for r in recs])
    return composite.composite_classes(counts, sizes, fg_names)


def excluded_images(splits_csv, test_set: str) -> list[dict]:
    """[{image_id, reason}] of splits.csv rows left out of `test_set` (column excluded_from, reason in note)."""
    return splits.excluded_images(contracts.read_splits(splits_csv), test_set)


def write_confusion(counts: np.ndarray, class_names: list[str], path) -> None:
    """Pixel confusion matrix as CSV: one row per reference class, one column per predicted class."""
    frame = pd.DataFrame(counts, columns=[f"predicted_{c}" for c in class_names])
    frame.insert(0, "reference", class_names)
    frame.to_csv(path, index=False)


def _json_interval(ci) -> list[float] | None:
    return None if ci is None else [_json_number(ci[0]), _json_number(ci[1])]


def _json_number(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def output_colours(class_names: list[str], dataset: DatasetSpec) -> np.ndarray:
    """(n_out, 3) uint8: each output class's palette colour."""
    names, pal = dataset.class_names, dataset.palette
    return np.stack([pal[names.index(c)] for c in class_names])


def outlines(labels: np.ndarray) -> np.ndarray:
    """The label map reduced to each region's inner boundary (pixels with a differently labelled 4-neighbour)."""
    padded = np.pad(labels, 1, mode="edge")
    inner = padded[1:-1, 1:-1]
    edge = ((inner != padded[:-2, 1:-1]) | (inner != padded[2:, 1:-1])
            | (inner != padded[1:-1, :-2]) | (inner != padded[1:-1, 2:]))
    return np.where(edge & (labels > 0), labels, 0)


def _overlay(gray: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Grey image with the outlines of `labels` drawn in their class colours."""
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float64)
    edge = outlines(labels)
    # Two pixels wide so that outlines stay visible when the figure is scaled down.
    edge = np.maximum(edge, np.pad(edge, ((0, 1), (0, 1)))[1:, 1:])
    fg = edge > 0
    rgb[fg] = colours[edge[fg]] / 255.0
    return np.clip(rgb, 0.0, 1.0)


def plot_overlays(records, per_image, preds_small, lut, class_names, dataset, name, test_set, path,
                  scored=None) -> None:
    """Best and worst image, among those where an organ is scored: image | reference | prediction outlines.

    Ranked by the image's mean Dice over the classes scored in it (present in
    the reference, not too small), so an image without the organ is never
    picked as "best" for predicting nothing.
    """
    from matplotlib.patches import Patch

    plt = pyplot()

    scores = per_image["dice_mean_scored"].to_numpy(dtype=np.float64)
    if scored is not None:
        scores = np.where(np.asarray(scored).any(axis=1), scores, np.nan)
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size:
        picks = [("best", int(finite[np.argmax(scores[finite])])), ("worst", int(finite[np.argmin(scores[finite])]))]
    else:
        picks = [("no organ scored in any reference", 0)]
    colours = output_colours(class_names, dataset)
    fig, axes = plt.subplots(len(picks), 3, figsize=(MAX_WIDTH_IN, 3.25 * len(picks) + 0.9), squeeze=False,
                             layout="constrained")
    shown = set()
    for row, (label, i) in enumerate(picks):
        rec = records[i]
        gray = data.load_grayscale(rec[data.IMAGE])
        ref = data.load_labels(rec[data.LABEL], lut)
        pred = data.resize_nearest(preds_small[i], ref.shape)
        shown |= set(np.unique(ref)) | set(np.unique(pred))
        score = scores[i]
        panels = [
            (np.repeat(gray[..., None], 3, axis=-1), f"{label}: {rec['image_id']}"),
            (_overlay(gray, ref, colours), "reference outlines"),
            (_overlay(gray, pred, colours),
             "predicted outlines" + (f" (Dice {score:.2f})" if np.isfinite(score) else "")),
        ]
        for ax, (img, title) in zip(axes[row], panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    # Edges keep light palette colours (bone is white) visible in the legend.
    handles = [Patch(facecolor=colours[c] / 255.0, edgecolor="black", label=class_names[c])
               for c in sorted(shown) if c > 0]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), frameon=False)
    fig.suptitle(f"{name} on {test_set}: best and worst image where an organ is scored\n"
                 "(mean Dice over the organs in its reference)", fontsize=11)
    save_png(fig, path)
    plt.close(fig)
