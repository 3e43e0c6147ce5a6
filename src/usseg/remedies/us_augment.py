"""Ultrasound-specific augmentation and a generic strong augmentation (remedy 2).

The ultrasound transforms follow the formulas collected by Tupper et al.,
"Revisiting data augmentation for ultrasound images" (2025), written here as
MONAI dictionary transforms (their `usaugment` package depends on an
unmaintained augmentation library):

- depth attenuation (Ostvik et al. 2021): the image is multiplied inside the
  fan by ``g(d) = (1 - g_min) * exp(-rate * d) + g_min``, d the normalised
  distance from the probe at the top centre, ``d = sqrt((x - 0.5)^2 + y^2)``
  with x, y in [0, 1].
- acoustic shadow (Smistad et al. 2018): multiplied inside the fan by
  ``1 - s * exp(-((x - mx)^2 / (2 sx^2) + (y - my)^2 / (2 sy^2)))``, a
  Gaussian blob of strength s centred on a random fan pixel, sx and sy
  fractions of the width and height.
- haze (Ostvik et al. 2021): ``0.5 * u * exp(-(r - r0)^2 / (2 sigma^2))``
  added inside the fan, u uniform noise in [0, 1], r the distance from the
  probe, then clipped to [0, 1]: a noisy arc of haze at radius r0.
- speckle reduction (Ostvik et al. 2021; Tomasi & Manduchi 1998): a bilateral
  filter with random spatial and intensity sigmas, inside the fan.

`RandSpeckleNoised` is not in Tupper et al.: multiplicative speckle with
gamma-distributed gain (mean 1, variance 1/looks), the fully developed speckle
model of multi-look intensity images. Simulator frames carry less speckle
than scanner frames, so adding it is the counterpart of removing it.

All of these change intensities only: the label is never read or written.
Geometry moves only in the generic strong augmentation (`generic_strong_transforms`),
which warps image and label with the same random affine (label by nearest neighbour).

Images are channel-first float arrays or tensors in [0, 1], (1, H, W); every
transform returns the same type and keeps the [0, 1] range. Randomness comes
from each transform's own `self.R` (MONAI `Randomizable`), so
`Compose.set_random_state(seed)` makes a pipeline reproducible.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.transforms import (
    MapTransform,
    OneOf,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandomizableTransform,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.utils import convert_to_dst_type, convert_to_numpy

from usseg.errors import ConfigError
from usseg.remedies.normalise import fov_mask

IMAGE = "image"
LABEL = "label"
FOV = "fov"


def _range(value, name: str, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
    """A (low, high) sampling range from a number or a pair, checked against [lo, hi]."""
    pair = (float(value), float(value)) if np.isscalar(value) else tuple(float(v) for v in value)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ConfigError(f"{name} = {value!r} must be a number or a pair [low, high] with low <= high.")
    if (lo is not None and pair[0] < lo) or (hi is not None and pair[1] > hi):
        raise ConfigError(f"{name} = {list(pair)} must lie within [{lo}, {hi}].")
    return pair  # type: ignore[return-value]


def probe_distance(height: int, width: int) -> np.ndarray:
    """(H, W) distance from the probe at the top centre, in units of the image height/width."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    return np.sqrt((x - 0.5) ** 2 + y**2)


class _FanIntensityTransform(RandomizableTransform, MapTransform):
    """Base: a random intensity change of the image keys, inside the fan only.

    The fan comes from d[fov_key] (see usseg.remedies.normalise.FieldOfViewd)
    or, when absent, is computed from the first image key with `fov_threshold`.
    """

    def __init__(self, keys, prob: float, fov_key: str, fov_threshold: int, allow_missing_keys: bool):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.fov_key = fov_key
        self.fov_threshold = int(fov_threshold)

    def _sample(self, height: int, width: int, fov: np.ndarray) -> None:
        raise NotImplementedError

    def _apply(self, image: np.ndarray, fov: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        first = True
        for key in self.key_iterator(d):
            img = d[key]
            arr = convert_to_numpy(img).astype(np.float32)
            if self.fov_key in d:
                fov = convert_to_numpy(d[self.fov_key]).astype(bool).reshape(arr.shape[-2:])
            else:
                fov = fov_mask(arr, self.fov_threshold)
            if first:  # one draw per call: every key gets the same artefact
                self._sample(arr.shape[-2], arr.shape[-1], fov)
                first = False
            out = np.where(fov, self._apply(arr, fov), arr)
            d[key] = convert_to_dst_type(np.clip(out, 0.0, 1.0).astype(np.float32), img)[0]
        return d


class RandDepthAttenuationd(_FanIntensityTransform):
    """Depth attenuation: gain (1 - min_gain) * exp(-rate * d) + min_gain, d the distance from the probe."""

    def __init__(self, keys=IMAGE, prob: float = 0.5, rate=(0.0, 3.0), min_gain: float = 0.0,
                 fov_key: str = FOV, fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, prob, fov_key, fov_threshold, allow_missing_keys)
        self.rate = _range(rate, "depth_attenuation.rate", 0.0)
        if not 0.0 <= float(min_gain) <= 1.0:
            raise ConfigError(f"depth_attenuation.min_gain = {min_gain} must lie in [0, 1].")
        self.min_gain = float(min_gain)

    def _sample(self, height, width, fov):
        self._rate = float(self.R.uniform(*self.rate))

    def _apply(self, image, fov):
        d = probe_distance(*image.shape[-2:])
        return image * ((1.0 - self.min_gain) * np.exp(-self._rate * d) + self.min_gain)


class RandAcousticShadowd(_FanIntensityTransform):
    """Gaussian acoustic shadow of random strength and size centred on a random fan pixel."""

    def __init__(self, keys=IMAGE, prob: float = 0.5, strength=(0.25, 0.8), sigma_x=(0.01, 0.2),
                 sigma_y=(0.01, 0.2), fov_key: str = FOV, fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, prob, fov_key, fov_threshold, allow_missing_keys)
        self.strength = _range(strength, "acoustic_shadow.strength", 0.0, 1.0)
        self.sigma_x = _range(sigma_x, "acoustic_shadow.sigma_x", 1e-3)
        self.sigma_y = _range(sigma_y, "acoustic_shadow.sigma_y", 1e-3)

    def _sample(self, height, width, fov):
        rows, cols = np.nonzero(fov) if fov.any() else np.nonzero(np.ones((height, width), bool))
        i = int(self.R.randint(len(rows)))
        self._centre = (float(rows[i]), float(cols[i]))
        self._strength = float(self.R.uniform(*self.strength))
        self._sigma = (float(self.R.uniform(*self.sigma_y)) * height, float(self.R.uniform(*self.sigma_x)) * width)

    def _apply(self, image, fov):
        h, w = image.shape[-2:]
        yy = (np.arange(h, dtype=np.float32)[:, None] - self._centre[0]) ** 2 / (2 * self._sigma[0] ** 2)
        xx = (np.arange(w, dtype=np.float32)[None, :] - self._centre[1]) ** 2 / (2 * self._sigma[1] ** 2)
        return image * (1.0 - self._strength * np.exp(-(yy + xx)))


class RandHazed(_FanIntensityTransform):
    """Haze: a noisy arc 0.5 * u * exp(-(r - r0)^2 / (2 sigma^2)) added at a random radius r0."""

    def __init__(self, keys=IMAGE, prob: float = 0.5, radius=(0.05, 0.95), sigma=(0.01, 0.1),
                 fov_key: str = FOV, fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, prob, fov_key, fov_threshold, allow_missing_keys)
        self.radius = _range(radius, "haze.radius", 0.0)
        # sigma 0 would divide by zero on the arc itself.
        self.sigma = _range(sigma, "haze.sigma", 1e-3)

    def _sample(self, height, width, fov):
        self._radius = float(self.R.uniform(*self.radius))
        self._sigma = float(self.R.uniform(*self.sigma))
        self._noise = self.R.uniform(0.0, 1.0, size=(height, width)).astype(np.float32)

    def _apply(self, image, fov):
        r = probe_distance(*image.shape[-2:])
        return image + 0.5 * self._noise * np.exp(-((r - self._radius) ** 2) / (2 * self._sigma**2))


def bilateral_filter(image: np.ndarray, sigma_spatial: float, sigma_intensity: float, window: int = 5) -> np.ndarray:
    """Bilateral filter of an (..., H, W) float image over a window x window neighbourhood.

    Each output pixel is the average of its neighbours weighted by
    exp(-dist^2 / (2 sigma_spatial^2)) * exp(-(I_n - I)^2 / (2 sigma_intensity^2)):
    smooth within a tissue, edges kept. Borders are reflected.
    """
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"speckle_reduction.window = {window} must be an odd number >= 1.")
    r = window // 2
    arr = np.asarray(image, dtype=np.float32)
    pad = [(0, 0)] * (arr.ndim - 2) + [(r, r), (r, r)]
    padded = np.pad(arr, pad, mode="reflect")
    h, w = arr.shape[-2:]
    num = np.zeros_like(arr)
    den = np.zeros_like(arr)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = padded[..., r + dy:r + dy + h, r + dx:r + dx + w]
            wgt = np.exp(-(dy * dy + dx * dx) / (2 * sigma_spatial**2) - (shifted - arr) ** 2 / (2 * sigma_intensity**2))
            num += wgt * shifted
            den += wgt
    # The centre weight is 1, so den >= 1: no division by zero.
    return num / den


class RandSpeckleReductiond(_FanIntensityTransform):
    """Speckle reduction: a bilateral filter with random spatial and intensity sigmas."""

    def __init__(self, keys=IMAGE, prob: float = 0.5, sigma_spatial=(0.1, 2.0), sigma_intensity=(0.05, 1.0),
                 window: int = 5, fov_key: str = FOV, fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, prob, fov_key, fov_threshold, allow_missing_keys)
        self.sigma_spatial = _range(sigma_spatial, "speckle_reduction.sigma_spatial", 1e-3)
        self.sigma_intensity = _range(sigma_intensity, "speckle_reduction.sigma_intensity", 1e-3)
        if int(window) < 1 or int(window) % 2 == 0:
            raise ConfigError(f"speckle_reduction.window = {window} must be an odd number >= 1.")
        self.window = int(window)

    def _sample(self, height, width, fov):
        self._ss = float(self.R.uniform(*self.sigma_spatial))
        self._si = float(self.R.uniform(*self.sigma_intensity))

    def _apply(self, image, fov):
        return bilateral_filter(image, self._ss, self._si, self.window)


class RandSpeckleNoised(_FanIntensityTransform):
    """Multiplicative speckle: gain ~ Gamma(looks, 1/looks) per pixel (mean 1, variance 1/looks)."""

    def __init__(self, keys=IMAGE, prob: float = 0.5, looks=(4.0, 16.0), fov_key: str = FOV,
                 fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, prob, fov_key, fov_threshold, allow_missing_keys)
        self.looks = _range(looks, "speckle_noise.looks", 1.0)

    def _sample(self, height, width, fov):
        looks = float(self.R.uniform(*self.looks))
        self._gain = self.R.gamma(looks, 1.0 / looks, size=(height, width)).astype(np.float32)

    def _apply(self, image, fov):
        return image * self._gain


# ----------------------------------------------------------------------------- pipelines

# Defaults of each ultrasound transform (Tupper et al.'s ranges; sigma lower bounds
# raised from 0 to keep the formulas finite). The remedy spec overrides them.
ULTRASOUND_TRANSFORMS = {
    "depth_attenuation": RandDepthAttenuationd,
    "acoustic_shadow": RandAcousticShadowd,
    "haze": RandHazed,
    "speckle_reduction": RandSpeckleReductiond,
    "speckle_noise": RandSpeckleNoised,
}


def ultrasound_transforms(settings: Mapping[str, Mapping], image_key: str = IMAGE, fov_key: str = FOV,
                          fov_threshold: int = 12) -> list:
    """One transform per entry of `settings` ({name: {prob: ..., <range>: ...}}), in ULTRASOUND_TRANSFORMS order."""
    unknown = sorted(set(settings) - set(ULTRASOUND_TRANSFORMS))
    if unknown:
        raise ConfigError(
            f"augmentation.ultrasound: unknown transform(s) {', '.join(unknown)}; "
            f"use {', '.join(ULTRASOUND_TRANSFORMS)}."
        )
    out = []
    for name, cls in ULTRASOUND_TRANSFORMS.items():
        if name in settings:
            kwargs = dict(settings[name])
            try:
                out.append(cls(keys=image_key, fov_key=fov_key, fov_threshold=fov_threshold, **kwargs))
            except TypeError as exc:
                raise ConfigError(f"augmentation.ultrasound.{name}: {exc}") from None
    return out


def generic_strong_transforms(image_size: Sequence[int], num_operations: int = 2, magnitude: float = 1.0,
                              image_key: str = IMAGE, label_key: str = LABEL) -> list:
    """A TrivialAugment-style generic augmentation: `num_operations` times, one operation drawn uniformly.

    The operations and their ranges (at magnitude 1) follow the generic set
    Tupper et al. compare against: left-right flip, rotation up to 30 degrees,
    translation up to 6.25 %, zoom up to 10 %, brightness and contrast up to 20 %,
    gamma 0.8-1.2, Gaussian noise (sd 0.15). Left out: vertical flips (depth runs
    down the image), random crops (images are already resized to image_size) and
    the identity. Geometric operations warp image and label together (label by
    nearest neighbour, zero padding); intensity operations touch the image only.
    `magnitude` scales every range.
    """
    if int(num_operations) < 1:
        raise ConfigError(f"augmentation.generic.num_operations = {num_operations} must be >= 1.")
    if not 0 < float(magnitude) <= 2:
        raise ConfigError(f"augmentation.generic.magnitude = {magnitude} must lie in (0, 2].")
    m = float(magnitude)
    h, w = (int(s) for s in image_size)
    both = [image_key, label_key]
    geo = {"keys": both, "prob": 1.0, "mode": ("bilinear", "nearest"), "padding_mode": "zeros"}

    def ops():
        return [
            RandFlipd(keys=both, prob=1.0, spatial_axis=1),
            RandAffined(rotate_range=(np.deg2rad(30.0) * m,), **geo),
            # RandAffined translates in pixels: 6.25 % of each side.
            RandAffined(translate_range=(0.0625 * m * h, 0.0625 * m * w), **geo),
            RandAffined(scale_range=(0.1 * m, 0.1 * m), **geo),
            RandShiftIntensityd(keys=image_key, offsets=0.2 * m, prob=1.0),
            RandScaleIntensityd(keys=image_key, factors=0.2 * m, prob=1.0),
            RandAdjustContrastd(keys=image_key, gamma=(1 - 0.2 * m, 1 + 0.2 * m), prob=1.0),
            RandGaussianNoised(keys=image_key, std=0.15 * m, prob=1.0),
        ]

    return [OneOf(ops()) for _ in range(int(num_operations))] + [ClipIntensityd(keys=image_key)]


class ClipIntensityd(MapTransform):
    """Clip images to [0, 1] (after noise, brightness and contrast operations)."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            d[key] = convert_to_dst_type(np.clip(convert_to_numpy(img), 0.0, 1.0).astype(np.float32), img)[0]
        return d
