"""One pass over the decoded label arrays: pixels and centre per class in every labeled image.

Class balance, label verification and label shift need these; reading the
arrays once keeps the diagnostics fast on the full dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from usseg.class_balance import pixel_counts
from usseg.diagnostics.inputs import DiagnosticInputs


@dataclass
class LabelStats:
    image_ids: list[str]
    counts: np.ndarray  # (n_images, n_classes) pixels per class, int64
    missing: list[str]  # labeled images whose label array does not exist
    bad_shape: dict[str, tuple]  # image_id -> label shape that differs from the image's
    out_of_range: list[str]  # label arrays with values beyond the palette
    centroids: np.ndarray | None = None  # (n_images, n_classes, 2) mean (row, col) in pixels; NaN if absent

    def frame(self, class_names) -> pd.DataFrame:
        return pd.DataFrame(self.counts, index=self.image_ids, columns=class_names)


def collect_label_stats(inputs: DiagnosticInputs) -> LabelStats:
    n_classes = len(inputs.class_names)
    ids, rows, missing, bad_shape, out_of_range, centres = [], [], [], {}, [], []
    for row in inputs.labeled.to_dict("records"):
        labels = inputs.read_label(row["image_id"])
        if labels is None:
            missing.append(row["image_id"])
            continue
        if row["height"] and row["width"] and labels.shape != (row["height"], row["width"]):
            bad_shape[row["image_id"]] = tuple(labels.shape)
        if labels.size and int(labels.max()) >= n_classes:
            out_of_range.append(row["image_id"])
            labels = np.where(labels < n_classes, labels, 0)
        ids.append(row["image_id"])
        rows.append(pixel_counts([labels], n_classes))
        centres.append(class_centroids(labels, n_classes))
    counts = np.vstack(rows) if rows else np.zeros((0, n_classes), dtype=np.int64)
    cents = np.stack(centres) if centres else np.zeros((0, n_classes, 2))
    return LabelStats(ids, counts, missing, bad_shape, out_of_range, cents)


def class_centroids(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, 2) mean row and column of each class's pixels; NaN for absent classes."""
    flat = labels.ravel().astype(np.int64)
    rows, cols = np.divmod(np.arange(flat.size), labels.shape[1])
    n = np.bincount(flat, minlength=n_classes)[:n_classes].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.bincount(flat, weights=rows, minlength=n_classes)[:n_classes] / n
        c = np.bincount(flat, weights=cols, minlength=n_classes)[:n_classes] / n
    return np.stack([r, c], axis=1)
