"""Per-image intensity normalisation inside the field of view (remedy 1, the harmonisation baseline).

Simulator and scanner images differ in overall gain and contrast. Normalising
each image by statistics of its own fan removes those global differences
before the network sees it; statistics outside the fan (the black border, the
simulator's padding strip) would measure the frame, not the anatomy, so they
are excluded. The fan is found with the diagnostics' `field_of_view`, the same
mask the domain-shift histograms use.

Two methods, both one affine map per image (statistics from the fan only,
applied to every pixel so the image stays one continuous picture):

- ``percentile``: the fan's `low`-th and `high`-th percentiles map to 0 and 1,
  then clip to [0, 1]. The output keeps the [0, 1] range the rest of usseg
  expects, and the border (darker than the fan's low percentile) stays 0.
- ``zscore``: the fan has mean 0 and standard deviation 1 (unbounded output).

Images are float arrays in [0, 1] as `usseg.images.load_grayscale` reads them,
shaped (H, W) or channel-first (1, H, W) inside MONAI pipelines.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy

from usseg.errors import ConfigError
from usseg.fov import field_of_view

METHODS = ("percentile", "zscore")
# Fewer fan pixels than this and the statistics are the whole image's: a blank
# or nearly black frame has no fan worth measuring.
MIN_FOV_PIXELS = 16


def fov_mask(image: np.ndarray, threshold: int = 12) -> np.ndarray:
    """Boolean fan mask of a float image in [0, 1] ((H, W) or (1, H, W) -> (H, W)).

    `threshold` is a grey level (0-255) as in diagnostics.fov_threshold.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"fov_mask: expected an (H, W) or (1, H, W) image, got shape {np.shape(image)}.")
    gray = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return field_of_view(gray, int(threshold))


def check_method(method: str, where: str = "remedy.method") -> str:
    if method not in METHODS:
        raise ConfigError(f"{where} = {method!r} is not a normalisation; use one of {', '.join(METHODS)}.")
    return method


def normalise_in_fov(
    image: np.ndarray,
    fov: np.ndarray | None = None,
    method: str = "percentile",
    low: float = 1.0,
    high: float = 99.0,
    threshold: int = 12,
) -> np.ndarray:
    """`image` ((H, W) or (C, H, W) float) normalised by the statistics of its fan.

    fov: boolean (H, W) fan mask; None computes it with `fov_mask(image, threshold)`.
    A fan with no spread (a constant image) gives all zeros rather than a division by zero.
    """
    check_method(method, "normalise_in_fov: method")
    if not 0 <= low < high <= 100:
        raise ConfigError(f"normalise_in_fov: percentiles low={low}, high={high} must satisfy 0 <= low < high <= 100.")
    arr = np.asarray(image, dtype=np.float32)
    if fov is None:
        fov = fov_mask(arr, threshold)
    fov = np.asarray(fov, dtype=bool)
    if fov.ndim == 3:
        fov = fov[0]
    if fov.shape != arr.shape[-2:]:
        raise ValueError(f"normalise_in_fov: fan mask shape {fov.shape} does not match image shape {arr.shape}.")
    pixels = arr[..., fov] if int(fov.sum()) >= MIN_FOV_PIXELS else arr.reshape(*arr.shape[:-2], -1)
    pixels = pixels.reshape(-1)
    if method == "percentile":
        lo, hi = np.percentile(pixels, [low, high])
        if hi - lo <= 1e-6:
            return np.zeros_like(arr)
        return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    mean, sd = float(pixels.mean()), float(pixels.std())
    if sd <= 1e-6:
        return np.zeros_like(arr)
    return ((arr - mean) / sd).astype(np.float32)


def normalise_batch(images: np.ndarray, method: str = "percentile", low: float = 1.0, high: float = 99.0,
                    threshold: int = 12) -> np.ndarray:
    """(N, H, W) images, each normalised in its own fan (for predicting test images)."""
    images = np.asarray(images, dtype=np.float32)
    out = np.empty_like(images)
    for i, im in enumerate(images):
        out[i] = normalise_in_fov(im, None, method, low, high, threshold)
    return out


class FieldOfViewd(MapTransform):
    """Adds the fan mask of `keys` (the image) as `fov_key`: a (1, H, W) bool array.

    Deterministic, so training computes it once per image (usseg.training.batches); the ultrasound
    augmentations and the normalisation read it instead of recomputing it.
    """

    def __init__(self, keys, fov_key: str = "fov", threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.fov_key = fov_key
        self.threshold = int(threshold)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.fov_key] = fov_mask(convert_to_numpy(d[key]), self.threshold)[None]
        return d


class NormaliseInFOVd(MapTransform):
    """`normalise_in_fov` on each key; uses d[fov_key] when present (see FieldOfViewd)."""

    def __init__(self, keys, method: str = "percentile", low: float = 1.0, high: float = 99.0,
                 threshold: int = 12, fov_key: str = "fov", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.method = check_method(method)
        self.low, self.high, self.threshold, self.fov_key = float(low), float(high), int(threshold), fov_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            fov = d.get(self.fov_key)
            fov = None if fov is None else convert_to_numpy(fov).astype(bool)
            out = normalise_in_fov(convert_to_numpy(img), fov, self.method, self.low, self.high, self.threshold)
            d[key] = convert_to_dst_type(out, img)[0]
        return d
