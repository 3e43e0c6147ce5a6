"""Segmentation metrics as pure functions of label arrays.

Conventions (the contract in docs/contracts.md; every key described in
docs/experiments.md):

- Dice per class per image is NaN when the class is absent from both the
  reference and the prediction (nothing to score), 0 when it is absent from
  the reference but predicted (a false positive), and 2|A∩B|/(|A|+|B|)
  otherwise.
- A class's headline Dice is over every image where the class is in the
  reference OR predicted: a false positive on an image without the organ
  scores 0 and a region of any size is scored (Reinke et al.'s pitfalls:
  dropping hard cases, ignoring false positives on empty references). The
  `min_reference_area_px` rule (only references of at least that many pixels)
  is a labelled secondary view (usseg.evaluate).
- The subject is the unit (frames of one patient are not independent): a
  class's summary is the mean over subjects of each subject's mean over its
  images (`subject_means`); its interval is in usseg.intervals.
- Normalised surface Dice (NSD, at a tolerance in pixels) and the 95th
  percentile Hausdorff distance (HD95, in pixels) are MONAI's definitions
  (compute_surface_dice, compute_hausdorff_distance: edge pixels by binary
  erosion, exact Euclidean distances between edge pixels), computed here in
  one pass per class, number for number the same (tests/test_metrics.py
  compares them with MONAI's), about ten times faster; per class per image,
  with the same NaN rules as Dice for NSD (0 when only one side has the class). HD95 is NaN unless both the
  reference and the prediction have the class: a missed organ has no
  distance, so it is counted (present but missed) instead; beside it,
  `hd95_with_misses` puts a miss or a false positive at the worst value, the
  image diagonal, so that predicting nothing is not rewarded.
- Every metric is computed on the pixel grid given (usseg.evaluate passes the
  reference mask's original resolution), so distances are in its pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import KDTree

# Fewer subjects than this and a test set's estimates are flagged unstable:
# with 4 subjects one easy or hard patient moves every number. 5 matches the diagnostics' fail threshold for
# labeled target subjects (diagnostics.min_labeled_target_subjects.fail_below).
MIN_SUBJECTS_FOR_STABLE_CI = 5


def dice_per_class(pred: np.ndarray, ref: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Dice of each class in `classes` between integer label maps of the same shape."""
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    out = np.full(len(classes), np.nan, dtype=np.float64)
    for i, c in enumerate(classes):
        p = pred == c
        r = ref == c
        n_p = int(p.sum())
        n_r = int(r.sum())
        if n_r == 0 and n_p == 0:
            continue
        if n_r == 0:
            out[i] = 0.0
            continue
        out[i] = 2.0 * np.logical_and(p, r).sum() / (n_p + n_r)
    return out


def present_per_class(ref: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Whether each class of `classes` occurs in the reference label map."""
    ref = np.asarray(ref)
    return np.array([bool((ref == c).any()) for c in classes])


def mean_where_present(dice: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per-class mean over rows (images) where the class is present; NaN if never present.

    dice, present: (n_images, n_classes).
    """
    dice = np.asarray(dice, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    if dice.ndim != 2 or dice.shape != present.shape:
        raise ValueError("dice and present must both be (n_images, n_classes)")
    vals = np.where(present, np.nan_to_num(dice, nan=0.0), 0.0)
    counts = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, vals.sum(axis=0) / np.maximum(counts, 1), np.nan)


def nanmean_or_nan(values) -> float:
    """Mean of the finite values, NaN (without a warning) when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def is_unstable(n_subjects: int) -> bool:
    """True when a subject-level interval cannot be trusted (see MIN_SUBJECTS_FOR_STABLE_CI)."""
    return n_subjects < MIN_SUBJECTS_FOR_STABLE_CI


def _edges(mask: np.ndarray) -> np.ndarray:
    """Edge pixels of a boolean mask as MONAI's get_mask_edges finds them: the mask minus its binary
    erosion (cross-shaped, outside the image counts as background)."""
    return ndimage.binary_erosion(mask) ^ mask


def _edge_distances(from_edges: np.ndarray, to_edges: np.ndarray) -> torch.Tensor:
    """Distance from each edge pixel of one mask to the nearest of the other's (float32, as MONAI's
    get_surface_distance: a KD-tree over the edge coordinates)."""
    to_coords = np.argwhere(to_edges).astype(np.float64)
    from_coords = np.argwhere(from_edges).astype(np.float64)
    return torch.from_numpy(KDTree(to_coords, leafsize=32).query(from_coords, k=1)[0]).float()


def surface_metrics_per_class(pred: np.ndarray, ref: np.ndarray, classes: Sequence[int],
                              tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(NSD, HD95) of each class in `classes` between label maps of the same shape (MONAI's definitions).

    NSD: NaN when the class is in neither map, 0 when in only one (a miss or a
    false positive), else the share of both maps' edge pixels within
    `tolerance_px` of the other map's edge (MONAI's compute_surface_dice).
    HD95: the larger of the two directed 95th percentiles of the edge distances
    in pixels (MONAI's compute_hausdorff_distance(percentile=95)) when both maps
    have the class, NaN otherwise. Each class is cropped to the box around both
    masks (plus one pixel) first, as MONAI does; distances do not change.
    """
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    nsd = np.full(len(classes), np.nan)
    hd95 = np.full(len(classes), np.nan)
    for i, c in enumerate(classes):
        p, r = pred == c, ref == c
        has_p, has_r = bool(p.any()), bool(r.any())
        if not (has_p or has_r):
            continue
        if has_p != has_r:
            nsd[i] = 0.0
            continue
        rows, cols = np.nonzero(p | r)
        box = (slice(max(rows.min() - 1, 0), rows.max() + 2), slice(max(cols.min() - 1, 0), cols.max() + 2))
        edges_p, edges_r = _edges(p[box]), _edges(r[box])
        d_pr, d_rp = _edge_distances(edges_p, edges_r), _edge_distances(edges_r, edges_p)
        # The same tensor arithmetic as MONAI (float32), so the numbers match to the last bit.
        correct = torch.sum(d_pr <= float(tolerance_px)) + torch.sum(d_rp <= float(tolerance_px))
        nsd[i] = float(correct / (len(d_pr) + len(d_rp)))
        hd95[i] = float(torch.max(torch.stack([torch.quantile(d_pr, 0.95), torch.quantile(d_rp, 0.95)])))
    return nsd, hd95


def hd95_with_misses(hd95: np.ndarray, present: np.ndarray, predicted: np.ndarray,
                     diagonals: np.ndarray) -> np.ndarray:
    """HD95 (n_images, n_classes) with an image where only one side has the class (a miss or a false
    positive) at the worst value, that image's diagonal (n_images,); NaN where neither has it."""
    hd95 = np.asarray(hd95, dtype=np.float64)
    present, predicted = np.asarray(present, dtype=bool), np.asarray(predicted, dtype=bool)
    worst = np.broadcast_to(np.asarray(diagonals, dtype=np.float64)[:, None], hd95.shape)
    return np.where(present & predicted, hd95, np.where(present | predicted, worst, np.nan))


def area_per_class(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Pixel count of each class of `classes` in a label map."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=max(classes, default=0) + 1)
    return np.array([int(counts[c]) for c in classes], dtype=np.int64)


def confusion_counts(pred: np.ndarray, ref: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) pixel counts: row = reference class, column = predicted class."""
    idx = np.asarray(ref, dtype=np.int64).ravel() * n_classes + np.asarray(pred, dtype=np.int64).ravel()
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def subject_means(values: np.ndarray, scored: np.ndarray, subjects: Sequence) -> tuple[list, np.ndarray]:
    """Per subject and column, the mean of `values` over the rows where `scored` is true.

    values, scored: (n_images, n_columns); subjects: one id per row.
    Returns (sorted subject ids, (n_subjects, n_columns) means, NaN where a
    subject has no scored row for that column).
    """
    values = np.asarray(values, dtype=np.float64)
    scored = np.asarray(scored, dtype=bool) & np.isfinite(values)
    if values.ndim != 2 or values.shape != scored.shape:
        raise ValueError("values and scored must both be (n_images, n_columns)")
    uniq, idx = np.unique(np.asarray(subjects), return_inverse=True)
    sums = np.zeros((len(uniq), values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, idx, np.where(scored, values, 0.0))
    np.add.at(counts, idx, scored.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(uniq), np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
