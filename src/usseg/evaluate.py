"""Evaluate a trained experiment on one test set at the labels' full resolution.

The model predicts at exp.image_size (the same deterministic preprocessing as
training); the predicted label map is optionally reduced to the largest
connected component per organ, resized back to the original label size
(nearest) and compared with the cached label mapped to the experiment's output
classes. Metric conventions are in usseg.metrics.

Outputs in out_dir: per_image.csv, per_subject.csv, summary.json (the
contract in docs/contracts.md) and overlays.png (best and worst image).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from monai.transforms import Compose
from scipy import ndimage

from usseg import data, metrics
from usseg.config import class_names as palette_class_names
from usseg.config import experiment_class_names, label_lookup, palette
from usseg.contracts import is_test_set
from usseg.errors import DataError, UssegError
from usseg.models import load_predictor, resolve_device

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


def evaluate_experiment(
    exp: dict,
    dataset_cfg: dict,
    data_root,
    manifest_csv,
    splits_csv,
    labels_dir,
    model_path,
    test_set: str,
    out_dir,
) -> dict:
    """Evaluate `model_path` on the images of split `test_set`; write outputs, return the summary."""
    if not is_test_set(test_set):
        raise UssegError(
            f"test set {test_set!r} is not a test split: test sets are named test_<modality> (docs/contracts.md)."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_names = experiment_class_names(exp, dataset_cfg)
    predictor = load_predictor(model_path, device=resolve_device(exp))
    if predictor.class_names != class_names:
        raise UssegError(
            f"{model_path}: the model predicts {predictor.class_names} but experiment {exp['name']} asks for "
            f"{class_names}; re-run training for this experiment."
        )
    if list(predictor.image_size) != [int(s) for s in exp["image_size"]]:
        log.warning("%s: trained at image_size %s, the config now says %s; predicting at the trained size",
                    model_path, list(predictor.image_size), exp["image_size"])
    lut = label_lookup(exp, dataset_cfg)
    table = data.read_split_table(manifest_csv, splits_csv)
    root = data.dataset_root(data_root, dataset_cfg)
    records = data.split_records(table, test_set, None, root, labels_dir)
    if not records:
        raise DataError(f"{splits_csv}: no images with split {test_set!r}; nothing to evaluate experiment {exp['name']} on.")

    size_exp = dict(exp, image_size=list(predictor.image_size))
    preprocess = Compose(data.deterministic_transforms(size_exp, lut, with_label=False))
    fg = list(range(1, len(class_names)))
    postprocess = bool(exp.get("postprocess", {}).get("largest_component", False))
    dices, presents, preds_small = [], [], []
    for start in range(0, len(records), PREDICT_BATCH):
        chunk = records[start:start + PREDICT_BATCH]
        images = np.stack([np.asarray(preprocess({data.IMAGE: r[data.IMAGE]})[data.IMAGE])[0] for r in chunk])
        preds = predictor.predict(images)
        for r, pred in zip(chunk, preds):
            if postprocess:
                pred = largest_component_per_class(pred, fg)
            ref = data.load_labels(r[data.LABEL], lut)
            full = data.resize_nearest(pred, ref.shape)
            dices.append(metrics.dice_per_class(full, ref, fg))
            presents.append(metrics.present_per_class(ref, fg))
            preds_small.append(pred)
    dice = np.array(dices).reshape(len(records), len(fg))
    present = np.array(presents).reshape(len(records), len(fg))
    subjects = [r["subject_id"] for r in records]

    per_image = pd.DataFrame({"image_id": [r["image_id"] for r in records], "subject_id": subjects})
    for j, c in enumerate(class_names[1:]):
        per_image[f"dice_{c}"] = dice[:, j]
    per_image["dice_mean_foreground"] = [metrics.nanmean_or_nan(row) for row in dice]
    per_image.to_csv(out_dir / "per_image.csv", index=False)

    subj_ids = sorted(set(subjects))
    subj_arr = np.asarray(subjects)
    subj_rows, per_subject = [], {}
    for s in subj_ids:
        idx = subj_arr == s
        means = metrics.mean_where_present(dice[idx], present[idx])
        subj_rows.append(
            {"subject_id": s, "n_images": int(idx.sum()),
             **{f"dice_{c}": v for c, v in zip(class_names[1:], means)},
             "dice_mean_foreground": metrics.nanmean_or_nan(means)}
        )
        per_subject[s] = {c: _json_number(v) for c, v in zip(class_names[1:], means)}
    pd.DataFrame(subj_rows).to_csv(out_dir / "per_subject.csv", index=False)

    class_dice = metrics.mean_where_present(dice, present)
    ci = metrics.subject_bootstrap_ci(dice, present, subjects)
    summary = {
        "experiment": exp["name"],
        "test_set": test_set,
        "n_images": len(records),
        "n_subjects": len(subj_ids),
        "dice": {c: _json_number(v) for c, v in zip(class_names[1:], class_dice)},
        # Mean of the per-class values above over the classes present in this test set.
        "dice_mean_foreground": _json_number(metrics.nanmean_or_nan(class_dice)),
        "ci95": {c: [_json_number(lo), _json_number(hi)] for c, (lo, hi) in zip(class_names[1:], ci)},
        "per_subject": per_subject,
        "unstable": metrics.is_unstable(len(subj_ids)),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")

    plot_overlays(records, per_image, preds_small, lut, class_names, dataset_cfg, exp["name"], test_set,
                  out_dir / "overlays.png")
    log.info(
        "experiment %s on %s: %d images, %d subjects, mean foreground Dice %s%s",
        exp["name"], test_set, len(records), len(subj_ids), _fmt(summary["dice_mean_foreground"]),
        f" (unstable: fewer than {metrics.MIN_SUBJECTS_FOR_STABLE_CI} subjects)" if summary["unstable"] else "",
    )
    return summary


def _json_number(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def output_colours(class_names: list[str], dataset_cfg: dict) -> np.ndarray:
    """(n_out, 3) uint8: each output class's palette colour."""
    names = palette_class_names(dataset_cfg)
    pal = palette(dataset_cfg)
    return np.stack([pal[names.index(c)] for c in class_names])


def _overlay(gray: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float64)
    fg = labels > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colours[labels[fg]] / 255.0
    return np.clip(rgb, 0.0, 1.0)


def plot_overlays(records, per_image, preds_small, lut, class_names, dataset_cfg, name, test_set, path) -> None:
    """Best and worst image by mean foreground Dice: image | reference | prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    scores = per_image["dice_mean_foreground"].to_numpy()
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size:
        picks = [("best", int(finite[np.argmax(scores[finite])])), ("worst", int(finite[np.argmin(scores[finite])]))]
    else:
        picks = [("no organ in reference or prediction", 0)]
    colours = output_colours(class_names, dataset_cfg)
    fig, axes = plt.subplots(len(picks), 3, figsize=(11, 3.6 * len(picks) + 1.0), squeeze=False, layout="constrained")
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
            (_overlay(gray, ref, colours), "reference"),
            (_overlay(gray, pred, colours), "prediction" + (f" (Dice {score:.2f})" if np.isfinite(score) else "")),
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
    fig.suptitle(f"{name} on {test_set}: best and worst image (mean foreground Dice)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
