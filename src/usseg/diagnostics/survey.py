"""One pass over the image files for the checks that need pixels.

Every image gets a perceptual hash (leakage); a capped, deterministic sample
per domain also gets its field of view, its grey-level histogram inside it and
cheap intensity and texture features (domain shift). Reading each file once
keeps the diagnostics within their time budget on the full dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage as ndi
from scipy.fft import dctn

from usseg.diagnostics.fov import field_of_view
from usseg.diagnostics.inputs import DiagnosticInputs

HASH_SIZE = 8  # 8 x 8 = 64-bit perceptual hash
THUMB_SIZE = 64  # thumbnails that confirm hash matches
PERCENTILES = (5, 25, 50, 75, 95)
COARSE_BINS = 8


def phash(gray: np.ndarray, size: int = HASH_SIZE) -> np.ndarray:
    """64-bit perceptual hash (DCT) as 8 bytes, as in the imagehash library's phash.

    The grey image is box-averaged to 32 x 32, transformed with a 2-D DCT, and
    each of the 8 x 8 lowest frequencies becomes one bit: above their median
    or not. Low frequencies describe the layout of the image, so the bits
    survive brightness and contrast changes, noise and recompression; unlike a
    difference hash, flat regions (common in simulator frames) do not leave
    bits to chance.
    """
    side = 4 * size
    thumb = np.asarray(
        Image.fromarray(gray).resize((side, side), Image.Resampling.BOX), dtype=np.float64
    )
    low = dctn(thumb, norm="ortho")[:size, :size]
    return np.packbits((low > np.median(low)).ravel())


def thumbnail(gray: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Box-averaged (size x size) float32 thumbnail: speckle averages out, anatomy stays."""
    return np.asarray(
        Image.fromarray(gray).resize((size, size), Image.Resampling.BOX), dtype=np.float32
    )


def thumbnail_correlation(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """Pearson correlation of two thumbnails over the pixels inside both fields of view (> threshold).

    The black frame and the fan's outline are shared by every image of a
    scanner; leaving them out makes the correlation measure the anatomy.
    """
    inside = (a > threshold) & (b > threshold)
    if inside.sum() < 16:
        inside = np.ones_like(inside)
    x = a[inside] - a[inside].mean()
    y = b[inside] - b[inside].mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float(np.array_equal(a, b))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between hashes a (..., 8) and b (..., 8), broadcast."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1)


def percentiles_from_hist(hist: np.ndarray, qs=PERCENTILES) -> list[float]:
    """Grey-level percentiles (lower interpolation) of a 256-bin histogram."""
    cdf = np.cumsum(hist)
    if cdf[-1] == 0:
        return [float("nan")] * len(qs)
    return [float(np.searchsorted(cdf, q / 100 * cdf[-1], side="left")) for q in qs]


def hist_mean_std(hist: np.ndarray) -> tuple[float, float]:
    levels = np.arange(hist.size)
    n = hist.sum()
    if n == 0:
        return float("nan"), float("nan")
    mean = float((hist * levels).sum() / n)
    return mean, float(np.sqrt(max((hist * (levels - mean) ** 2).sum() / n, 0.0)))


def _hist_percentile(hist: np.ndarray, q: float) -> float:
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q / 100 * cdf[-1], side="left")) if cdf[-1] else float("nan")


def image_features(gray: np.ndarray, fov: np.ndarray) -> tuple[dict, np.ndarray]:
    """Intensity and texture features inside the field of view, and its 256-bin histogram.

    Intensity: mean, standard deviation, percentiles and a coarse histogram.
    Texture (speckle): local standard deviation in 5 x 5 windows, its ratio to
    the local mean (speckle contrast), and the mean and 90th percentile of the
    absolute grey-level step between neighbouring pixels. Texture is measured
    away from the fan's edge, where the border would dominate every local statistic.
    """
    hist = np.bincount(gray[fov], minlength=256).astype(np.int64)
    feats: dict[str, float] = {}
    mean, std = hist_mean_std(hist)
    feats["mean"], feats["std"] = mean, std
    for q, v in zip(PERCENTILES, percentiles_from_hist(hist)):
        feats[f"p{q}"] = v
    coarse = hist.reshape(COARSE_BINS, -1).sum(axis=1) / max(hist.sum(), 1)
    for i, v in enumerate(coarse):
        feats[f"hist{i}"] = float(v)

    rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    g, f = gray[box], fov[box]
    inner = ndi.minimum_filter(f.view(np.uint8), size=7).view(
        bool
    )  # erosion by a 7 x 7 square, separable
    if inner.sum() < 16:
        inner = f
    x = g.astype(np.float32)
    mu = ndi.uniform_filter(x, 5)
    sd = np.sqrt(np.maximum(ndi.uniform_filter(x * x, 5) - mu * mu, 0.0))
    feats["local_std"] = float(sd[inner].mean())
    feats["speckle_contrast"] = float((sd[inner] / (mu[inner] + 1.0)).mean())
    gi = g.astype(np.int16)
    steps = np.bincount(np.abs(np.diff(gi, axis=1))[inner[:, 1:]], minlength=256)
    steps += np.bincount(np.abs(np.diff(gi, axis=0))[inner[1:, :]], minlength=256)
    feats["gradient_mean"] = float((steps * np.arange(steps.size)).sum() / max(steps.sum(), 1))
    feats["gradient_p90"] = _hist_percentile(steps, 90)
    return feats, hist


@dataclass
class Survey:
    image_ids: list[str]
    hashes: np.ndarray  # (n, 8) uint8
    thumbs: np.ndarray  # (n, THUMB_SIZE, THUMB_SIZE) float32
    unreadable: dict[str, str]  # image_id -> error
    sample_ids: list[str] = field(default_factory=list)
    features: pd.DataFrame = field(default_factory=pd.DataFrame)  # index image_id
    histograms: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # image_id -> 256 counts inside the FOV
    fov_fraction: dict[str, float] = field(default_factory=dict)


def domain_sample(inputs: DiagnosticInputs, cap: int, seed: int) -> list[str]:
    """Up to `cap` images per domain, labeled or not, drawn deterministically from the seed."""
    df = inputs.images
    chosen: list[str] = []
    domains = df["modality"].map(inputs.domain_of)
    for d in sorted(domains.unique()):
        ids = df.loc[domains == d, "image_id"].to_numpy()
        if len(ids) > cap:
            rng = np.random.default_rng(seed)
            ids = np.sort(rng.choice(ids, size=cap, replace=False))
        chosen.extend(ids.tolist())
    return chosen


def survey_images(
    inputs: DiagnosticInputs, cap_per_domain: int, seed: int, fov_threshold: int
) -> Survey:
    sample = set(domain_sample(inputs, cap_per_domain, seed))
    ids, hashes, thumbs, unreadable = [], [], [], {}
    feats, hists, fov_frac = {}, {}, {}
    for row in inputs.images.to_dict("records"):
        iid = row["image_id"]
        try:
            gray = inputs.read_gray(row)
        except (OSError, ValueError, SyntaxError) as exc:  # a broken file is a finding, not a crash
            unreadable[iid] = f"{type(exc).__name__}: {exc}"
            continue
        ids.append(iid)
        hashes.append(phash(gray))
        thumbs.append(thumbnail(gray))
        if iid in sample:
            fov = field_of_view(gray, fov_threshold)
            fov_frac[iid] = float(fov.mean())
            if fov.sum() >= 64:
                feats[iid], hists[iid] = image_features(gray, fov)
    return Survey(
        image_ids=ids,
        hashes=np.vstack(hashes)
        if hashes
        else np.zeros((0, HASH_SIZE * HASH_SIZE // 8), dtype=np.uint8),
        thumbs=np.stack(thumbs)
        if thumbs
        else np.zeros((0, THUMB_SIZE, THUMB_SIZE), dtype=np.float32),
        unreadable=unreadable,
        sample_ids=[i for i in ids if i in feats],
        features=pd.DataFrame.from_dict(feats, orient="index"),
        histograms=hists,
        fov_fraction=fov_frac,
    )
