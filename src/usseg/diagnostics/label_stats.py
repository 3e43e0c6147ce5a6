"""One pass over the decoded label arrays: pixels per class in every labeled image.

Class balance and label verification both need these counts; reading the
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

    def frame(self, class_names) -> pd.DataFrame:
        return pd.DataFrame(self.counts, index=self.image_ids, columns=class_names)


def collect_label_stats(inputs: DiagnosticInputs) -> LabelStats:
    n_classes = len(inputs.class_names)
    ids, rows, missing, bad_shape, out_of_range = [], [], [], {}, []
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
    counts = np.vstack(rows) if rows else np.zeros((0, n_classes), dtype=np.int64)
    return LabelStats(ids, counts, missing, bad_shape, out_of_range)
