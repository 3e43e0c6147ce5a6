"""One pass over the image files for the checks that need pixels.

Every image gets a perceptual hash (leakage) and quality scores inside its
field of view (image quality). A capped, deterministic sample per domain also
gets its grey-level histogram inside the field of view (descriptive view),
its file properties (format control), intensity and texture features computed
on a *harmonised* copy (domain classifier) and the histogram of what a model
sees (intensity at the model's input). Reading each file once keeps the
diagnostics within their time budget on the full dataset.

Harmonisation: both domains are resized to one grid and JPEG-round-tripped at
one quality before the classifier's features are computed, so that a file
difference (PNG vs JPEG, 800 vs 1000 pixels wide) cannot pass for an
acquisition difference; the format control measures that file difference on
its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage as ndi
from scipy.fft import dctn

from usseg.diagnostics.image_quality import quality_scores
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.fov import field_of_view

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


def harmonise(gray: np.ndarray, grid: int, jpeg_quality: int) -> np.ndarray:
    """The image as both domains are compared: resized (area-averaged) to grid x grid, JPEG-round-tripped."""
    small = Image.fromarray(gray).resize((grid, grid), Image.Resampling.BOX)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=jpeg_quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"))


def harmonised_side(images: pd.DataFrame, grid: int) -> int:
    """The common grid: `grid`, but at most half the smallest sampled image side (at least 32).

    Downsampling at least twofold averages away the block and ringing
    artefacts of a lossy format that an upsampled copy would keep.
    """
    sides = images[["width", "height"]].to_numpy()
    sides = sides[(sides > 0).all(axis=1)]
    if sides.size == 0:
        return grid
    return int(max(32, min(grid, sides.min() // 2)))


def file_properties(path) -> dict:
    """What the file says about itself, not about the anatomy: format, size, channels and JPEG quality.

    The JPEG quality is read from the luminance quantisation table (its mean
    step; 0 for lossless formats): exporters fix it per device, so it tells
    the source of a file without looking at a pixel. Bytes per pixel are left
    out on purpose: a lossless file's size measures the image's content
    (speckle compresses worse than a smooth simulator frame), not its encoding.
    """
    with Image.open(path) as im:
        fmt = (im.format or "").upper()
        width, height = im.size
        channels = len(im.getbands())
        tables = getattr(im, "quantization", None) or {}
    luma = np.asarray(tables.get(0, []), dtype=float)
    return {
        "is_jpeg": float(fmt in ("JPEG", "MPO")),
        "is_png": float(fmt == "PNG"),
        "width": float(width),
        "height": float(height),
        "channels": float(channels),
        "jpeg_luma_step": float(luma.mean()) if luma.size else 0.0,
    }


def model_input_histogram(image_path, fov: np.ndarray, image_size) -> np.ndarray:
    """256-bin histogram (over [0, 1]) of the model's input inside the field of view.

    The input is made exactly as training and evaluation make it
    (usseg.prepared_arrays: grey levels / 255, bilinear anti-aliased resize to
    `image_size`); no other normalisation is applied.
    The field of view is resized with the nearest neighbour.
    """
    # MONAI's resize: only when asked.
    from usseg.images import load_grayscale
    from usseg.prepared_arrays import resize_image, resize_nearest

    img = resize_image(load_grayscale(image_path), image_size)
    inside = resize_nearest(fov.astype(np.uint8), img.shape).astype(bool)
    levels = np.clip(np.rint(img[inside] * 255), 0, 255).astype(np.int64)
    return np.bincount(levels, minlength=256).astype(np.int64)


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
    file_props: pd.DataFrame = field(default_factory=pd.DataFrame)  # index image_id (sample)
    model_histograms: dict[str, np.ndarray] = field(default_factory=dict)  # image_id -> 256 bins of [0, 1]
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)  # index image_id (every readable image)
    fov_box: dict[str, tuple] = field(default_factory=dict)  # image_id -> (top, bottom, left, right, pixels)
    grid: int = 0  # side of the harmonised copies the classifier's features come from


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
    inputs: DiagnosticInputs,
    cap_per_domain: int,
    seed: int,
    fov_threshold: int,
    grid: int = 128,
    jpeg_quality: int = 75,
    model_image_size=None,
) -> Survey:
    """Read every image once; see the module docstring for what each image (or sampled image) yields.

    `model_image_size` is the experiments' image_size; None skips the
    model-input histograms (the domain check then says so).
    """
    sample = set(domain_sample(inputs, cap_per_domain, seed))
    side = harmonised_side(inputs.images[inputs.images["image_id"].isin(sample)], grid)
    ids, hashes, thumbs, unreadable = [], [], [], {}
    feats, hists, fov_frac, props, model_hists, quality, fov_box = {}, {}, {}, {}, {}, {}, {}
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
        fov = field_of_view(gray, fov_threshold)
        quality[iid] = quality_scores(gray, fov)
        fov_box[iid] = bounding_box(fov)
        if iid in sample:
            fov_frac[iid] = float(fov.mean())
            small = harmonise(gray, side, jpeg_quality)
            # Away from the fan's edge, where recompression rings against the black frame.
            small_fov = ndi.binary_erosion(field_of_view(small, fov_threshold), iterations=2)
            if fov.sum() >= 64 and small_fov.sum() >= 64:
                feats[iid], _ = image_features(small, small_fov)
                hists[iid] = np.bincount(gray[fov], minlength=256).astype(np.int64)
                props[iid] = file_properties(inputs.image_file(row))
                if model_image_size is not None:
                    model_hists[iid] = model_input_histogram(
                        inputs.image_file(row), fov, model_image_size
                    )
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
        file_props=pd.DataFrame.from_dict(props, orient="index"),
        model_histograms=model_hists,
        quality=pd.DataFrame.from_dict(quality, orient="index"),
        fov_box=fov_box,
        grid=side,
    )


def bounding_box(fov: np.ndarray) -> tuple:
    """(top, bottom, left, right, pixels) of the field of view; the whole frame when it is empty."""
    rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
    if rows.size == 0:
        return (0, fov.shape[0], 0, fov.shape[1], int(fov.size))
    return (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1, int(fov.sum()))
