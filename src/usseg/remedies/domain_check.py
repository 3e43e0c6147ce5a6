"""Does a harmonisation make the domains harder to tell apart? (the domain_auc rows of gap_closure.csv)

The diagnostics' domain classifier (usseg.diagnostics.domain_shift: intensity
and texture features inside the fan, logistic regression, folds grouped by
subject, cluster-robust subject-level interval) is run twice on the same images: as they
are, and after the remedy's harmonisation of the source (simulator) images.
Both runs use the same images at the same size, so the two AUCs compare; they
are not comparable with the diagnostics' AUC, which is measured at the
original resolution. AUC 0.5: the classifier cannot tell the domains apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from usseg.diagnostics.domain_shift import classifier_two_sample_test
from usseg.diagnostics.survey import image_features
from usseg.remedies.normalise import fov_mask

# Fans smaller than this give no texture statistics worth a feature (the survey uses the same bound).
MIN_FOV_PIXELS = 64


def _features(images: np.ndarray, fovs: np.ndarray) -> np.ndarray:
    rows = []
    for image, fov in zip(images, fovs):
        gray = np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
        feats, _ = image_features(gray, fov)
        rows.append([feats[k] for k in sorted(feats)])
    return np.asarray(rows, dtype=float)


Harmoniser = Callable[[np.ndarray], np.ndarray]


def domain_auc(source: np.ndarray, source_subjects: Sequence[str], target: np.ndarray,
               target_subjects: Sequence[str], harmonise_source: Harmoniser | None = None,
               harmonise_target: Harmoniser | None = None, folds: int = 4, seed: int = 0,
               fov_threshold: int = 12) -> dict:
    """The domain classifier's AUC (target = 1) before and after the remedy's harmonisation.

    source, target: (N, H, W) float images in [0, 1] of one size; *_subjects: one subject per image.
    harmonise_source / harmonise_target: map (N, H, W) images to harmonised ones in [0, 1]
    (style remedies change the source only; a normalisation changes both). With neither,
    only the AUC before is computed. The fans are found on the images before harmonisation,
    so both runs measure the same pixels.
    Returns {"before": {...}, "after": {...} or None, "n_source_subjects", "n_target_subjects",
    "n_images"}; each run is {"possible", "auc", "ci95"} or {"possible": False, "why"}.
    """
    source = np.asarray(source, np.float32)
    target = np.asarray(target, np.float32)
    if len(source) != len(source_subjects) or len(target) != len(target_subjects):
        raise ValueError("domain_auc: give one subject per image (source and target).")
    images = np.concatenate([source, target])
    fovs = np.stack([fov_mask(im, fov_threshold) for im in images])
    keep = fovs.reshape(len(fovs), -1).sum(axis=1) >= MIN_FOV_PIXELS
    y = np.r_[np.zeros(len(source), int), np.ones(len(target), int)]
    groups = np.array([f"source:{s}" for s in source_subjects] + [f"target:{s}" for s in target_subjects])

    def run(imgs: np.ndarray) -> dict:
        X = _features(imgs[keep], fovs[keep])
        out = classifier_two_sample_test(X, y[keep], groups[keep], folds, seed)
        if not out["possible"]:
            return {"possible": False, "why": out["why"]}
        return {"possible": True, "auc": out["auc"], "ci95": list(out["ci95"])}

    def apply(fn: Harmoniser | None, imgs: np.ndarray) -> np.ndarray:
        if fn is None:
            return imgs
        out = np.asarray(fn(imgs), np.float32)
        if out.shape != imgs.shape:
            raise ValueError(f"domain_auc: the harmonisation changed the shape {imgs.shape} to {out.shape}.")
        return np.clip(out, 0.0, 1.0)

    after = None
    if harmonise_source is not None or harmonise_target is not None:
        after = run(np.concatenate([apply(harmonise_source, source), apply(harmonise_target, target)]))
    return {
        "before": run(images),
        "after": after,
        "n_source_subjects": int(np.unique(groups[keep & (y == 0)]).size),
        "n_target_subjects": int(np.unique(groups[keep & (y == 1)]).size),
        "n_images": int(keep.sum()),
    }
