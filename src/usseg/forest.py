"""Classical baseline: hand-crafted pixel features + a random forest.

The survey in the background reading recommends a features-plus-forest
baseline before any network: if it scores close to the UNet, the network is
not what limits the result. It is trained and evaluated through the same API,
data and metrics as the networks.

The fitted forest is stored as plain arrays in model.safetensors (per-node
children, split feature, threshold and leaf class probabilities, all trees
concatenated with offsets) and `ForestPredictor` walks those arrays itself,
vectorised over pixels and trees. No pickle or joblib is involved, and a
prediction equals scikit-learn's `predict_proba` on the same features.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier

from usseg.experiment import ForestSettings

FEATURE_VERSION = 1
# Smoothing scales in pixels at a 96-pixel-wide image; scaled with the width so
# the features look at the same anatomy at any image_size.
BASE_SIGMAS = (1.0, 2.0, 4.0)
FEATURE_NAMES = (
    "intensity",
    "mean_s1", "mean_s2", "mean_s3",
    "std_s1", "std_s2", "std_s3",
    "gradient_magnitude",
    "laplacian_s2",
    "depth",            # row / height: organs sit at typical depths
    "lateral",          # signed column offset from the centre line, in [-1, 1]
    "fan_radius",       # distance from the top-centre transducer position
    "mean_above",       # mean intensity above the pixel in its column: acoustic shadows
)


def pixel_features(image: np.ndarray) -> np.ndarray:
    """(H, W) float image in [0, 1] -> (H*W, n_features) float32, one row per pixel (row-major)."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    sigmas = [s * w / 96.0 for s in BASE_SIGMAS]
    feats = [img]
    means = [ndimage.gaussian_filter(img, s, mode="nearest") for s in sigmas]
    feats += means
    for s, m in zip(sigmas, means):
        sq = ndimage.gaussian_filter(img * img, s, mode="nearest")
        feats.append(np.sqrt(np.clip(sq - m * m, 0.0, None)))
    gy = ndimage.sobel(means[0], axis=0, mode="nearest")
    gx = ndimage.sobel(means[0], axis=1, mode="nearest")
    feats.append(np.hypot(gx, gy))
    feats.append(ndimage.gaussian_laplace(img, sigmas[1], mode="nearest"))
    rows = (np.arange(h, dtype=np.float64)[:, None] + 0.5) / h
    cols = (np.arange(w, dtype=np.float64)[None, :] + 0.5 - w / 2.0) / (w / 2.0)
    feats.append(np.broadcast_to(rows, (h, w)))
    feats.append(np.broadcast_to(cols, (h, w)))
    feats.append(np.sqrt(rows**2 + (cols / 2.0) ** 2))
    feats.append(np.cumsum(img, axis=0) / np.arange(1, h + 1, dtype=np.float64)[:, None])
    return np.stack(feats, axis=-1).reshape(h * w, len(FEATURE_NAMES)).astype(np.float32)


def sample_training_pixels(images, labels, pixels_per_image: int, seed: int):
    """Features and labels of `pixels_per_image` random pixels per image (all when fewer)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for img, lab in zip(images, labels):
        feats = pixel_features(img)
        flat = np.asarray(lab).reshape(-1)
        n = flat.size
        idx = rng.choice(n, size=min(pixels_per_image, n), replace=False) if pixels_per_image < n else np.arange(n)
        xs.append(feats[idx])
        ys.append(flat[idx])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def fit_forest(x: np.ndarray, y: np.ndarray, settings: ForestSettings, seed: int, class_weight=None,
               n_jobs: int = -1):
    """Fit scikit-learn's RandomForestClassifier on sampled pixels (settings: an experiment's forest block)."""
    rf = RandomForestClassifier(
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        class_weight=class_weight,
        random_state=seed,
        n_jobs=n_jobs,
    )
    rf.fit(x, y)
    return rf


def forest_to_arrays(rf: RandomForestClassifier, n_classes: int) -> dict[str, np.ndarray]:
    """Concatenate the trees' node arrays; children become global node indices (-1 = leaf).

    `value` holds each node's class probabilities over ALL output classes (a
    class absent from the sampled pixels gets probability 0), which is what
    scikit-learn averages across trees in predict_proba.
    """
    lefts, rights, feats, thrs, vals, offsets = [], [], [], [], [], [0]
    classes = np.asarray(rf.classes_, dtype=np.int64)
    for est in rf.estimators_:
        t = est.tree_
        off = offsets[-1]
        left = t.children_left.astype(np.int64)
        right = t.children_right.astype(np.int64)
        lefts.append(np.where(left >= 0, left + off, -1))
        rights.append(np.where(right >= 0, right + off, -1))
        feats.append(np.where(left >= 0, t.feature, 0).astype(np.int64))
        thrs.append(t.threshold.astype(np.float64))
        v = t.value[:, 0, :].astype(np.float64)
        v = v / np.clip(v.sum(axis=1, keepdims=True), 1e-300, None)
        full = np.zeros((t.node_count, n_classes), dtype=np.float64)
        full[:, classes] = v
        vals.append(full)
        offsets.append(off + t.node_count)
    return {
        "forest.children_left": np.concatenate(lefts),
        "forest.children_right": np.concatenate(rights),
        "forest.feature": np.concatenate(feats),
        "forest.threshold": np.concatenate(thrs),
        "forest.value": np.concatenate(vals),
        "forest.tree_offsets": np.asarray(offsets, dtype=np.int64),
    }


def _max_depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """Edges on the longest root-to-leaf path over all trees (breadth-first)."""
    depth = 0
    level = roots[left[roots] >= 0]
    while level.size:
        depth += 1
        nxt = np.concatenate([left[level], right[level]])
        level = nxt[left[nxt] >= 0]
    return depth


class ForestPredictor:
    """Predict label maps from the stored forest arrays (no scikit-learn object needed)."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict):
        left = np.asarray(arrays["forest.children_left"], dtype=np.int64)
        right = np.asarray(arrays["forest.children_right"], dtype=np.int64)
        offsets = np.asarray(arrays["forest.tree_offsets"], dtype=np.int64)
        n_nodes = len(left)
        if len(right) != n_nodes or offsets[-1] != n_nodes or left.max(initial=-1) >= n_nodes:
            from usseg.errors import UssegError

            raise UssegError(f"forest arrays of experiment {metadata.get('experiment')!r} are inconsistent; re-run training.")
        # A leaf points to itself, so walking a fixed number of levels needs no
        # per-pixel "is this a leaf" test; column 0 = go left, 1 = go right.
        own = np.arange(n_nodes)
        leaf = left < 0
        self.children = np.stack([np.where(leaf, own, left), np.where(leaf, own, right)], axis=1)
        self.feature = np.asarray(arrays["forest.feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays["forest.threshold"], dtype=np.float64)
        self.value = np.asarray(arrays["forest.value"], dtype=np.float64)
        self.roots = offsets[:-1]
        self.depth = _max_depth(left, right, self.roots)
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.image_size = tuple(metadata["image_size"])

    @classmethod
    def from_tensors(cls, tensors: dict, metadata: dict) -> ForestPredictor:
        if metadata.get("forest", {}).get("feature_version") != FEATURE_VERSION:
            from usseg.errors import UssegError

            raise UssegError(
                f"forest model of experiment {metadata.get('experiment')!r} was built with feature version "
                f"{metadata.get('forest', {}).get('feature_version')}, this usseg computes version {FEATURE_VERSION}; "
                "re-run training."
            )
        return cls({k: v.numpy() for k, v in tensors.items() if k.startswith("forest.")}, metadata)

    def proba_from_features(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features) float32 -> (n, n_classes) mean leaf probabilities over trees."""
        # Feature-major and flat, so one np.take fetches each pixel's split feature.
        xt = np.ascontiguousarray(np.asarray(x, dtype=np.float32).T).ravel()
        n = x.shape[0]
        node = np.repeat(self.roots[:, None], n, axis=1)  # (n_trees, n)
        pixel = np.arange(n)[None, :]
        for _ in range(self.depth):
            # scikit-learn compares the float32 feature, promoted to double, with a double threshold.
            fv = np.take(xt, self.feature[node] * n + pixel)
            node = self.children[node, (fv > self.threshold[node]).view(np.int8)]
        return self.value[node].mean(axis=0)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) float32 in [0, 1] -> (N, C, H, W) class probabilities."""
        out = []
        for img in images:
            h, w = img.shape
            p = self.proba_from_features(pixel_features(img))
            out.append(p.T.reshape(len(self.class_names), h, w))
        return np.stack(out) if out else np.zeros((0, len(self.class_names), *self.image_size))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.predict_proba(images).argmax(axis=1).astype(np.uint8)
