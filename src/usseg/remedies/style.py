"""Target style without labels (remedy 3): simulator images restyled towards unlabeled real frames.

Two methods, both using only the target domain's images (never its labels):

- Histogram matching: the grey levels inside the source fan are mapped
  through the source's empirical CDF onto the target's quantile function, so
  the source fan takes the target's grey-level distribution while keeping its
  own ordering of pixels (its anatomy). The reference is one random target
  frame per call (``reference: random_frame``) or the pooled fans of all
  target frames (``reference: pooled``).
- Fourier domain adaptation (FDA; Yang & Soatto, "FDA: Fourier Domain
  Adaptation for Semantic Segmentation", CVPR 2020): the centred
  low-frequency square of the source's amplitude spectrum, of half-width
  ``b = floor(beta * min(H, W))`` (a (2b + 1)^2 window), is replaced by the
  target's, and the image is rebuilt with the source's phase:
  ``x = F^-1([M_beta * |F(x_t)| + (1 - M_beta) * |F(x_s)|] * exp(i * angle(F(x_s))))``.
  Overall brightness, gain and slow shading come from the target; edges and
  anatomy (phase and high frequencies) stay the source's. b = 0 swaps the mean
  only, so at 96-pixel images a beta below 1/96 acts as brightness matching.

Both keep the image outside the fan as it was (black border stays black),
clip to [0, 1] and never touch the label. `TargetBank` holds the target frames
at the training image size with their fans.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from monai.transforms import MapTransform, RandomizableTransform, Resize
from monai.utils import convert_to_dst_type, convert_to_numpy

from usseg.errors import ConfigError, DataError
from usseg.images import load_grayscale
from usseg.remedies.normalise import fov_mask

REFERENCES = ("random_frame", "pooled")
# Quantiles kept of the pooled target histogram: finer than 8-bit grey levels need.
POOLED_QUANTILES = 1024


@dataclass(frozen=True)
class TargetBank:
    """Unlabeled target frames, (N, H, W) float32 in [0, 1], with their (N, H, W) fans."""

    images: np.ndarray
    fovs: np.ndarray

    def __post_init__(self):
        if self.images.ndim != 3 or not len(self.images):
            raise DataError(
                f"target style: no target frames (got an array of shape {self.images.shape}); the target modality "
                "needs at least one image (labeled or not) for histogram matching or FDA."
            )
        if self.fovs.shape != self.images.shape:
            raise ValueError(f"TargetBank: fan masks {self.fovs.shape} do not match images {self.images.shape}.")

    @classmethod
    def from_images(cls, images, fov_threshold: int = 12) -> TargetBank:
        arr = np.asarray(images, dtype=np.float32)
        if arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 3 or not len(arr):
            return cls(arr, np.zeros(arr.shape, bool))  # __post_init__ names the problem
        return cls(arr, np.stack([fov_mask(im, fov_threshold) for im in arr]))

    @classmethod
    def from_files(cls, paths: Sequence, image_size: Sequence[int], fov_threshold: int = 12,
                   max_images: int | None = None, seed: int = 0) -> TargetBank:
        """Frames read as training reads them (grey in [0, 1], usseg.images) and resized like the training images.

        max_images: a deterministic random sample (seeded) of that many paths; None keeps all.
        """
        paths = sorted(str(p) for p in paths)
        if max_images is not None and len(paths) > int(max_images):
            rng = np.random.default_rng(seed)
            paths = sorted(rng.choice(paths, size=int(max_images), replace=False).tolist())
        # The same resize as usseg.prepared_arrays.resize_image (bilinear, anti-aliased).
        resize = Resize(spatial_size=tuple(int(s) for s in image_size), mode="bilinear", anti_aliasing=True)
        images = [convert_to_numpy(resize(load_grayscale(p)[None]))[0] for p in paths]
        return cls.from_images(np.stack(images) if images else np.zeros((0, *image_size), np.float32), fov_threshold)

    def pooled_values(self, n: int = POOLED_QUANTILES) -> np.ndarray:
        """n quantiles of all target fan pixels together (the pooled reference)."""
        pixels = self.images[self.fovs] if self.fovs.any() else self.images.ravel()
        return np.quantile(pixels, (np.arange(n) + 0.5) / n).astype(np.float32)


# ----------------------------------------------------------------------------- histogram matching


def match_histogram(image: np.ndarray, reference: np.ndarray, fov: np.ndarray | None = None,
                    threshold: int = 12) -> np.ndarray:
    """`image` ((H, W) or (1, H, W)) with the grey levels of its fan mapped onto `reference`'s distribution.

    reference: the target's fan pixels (any shape; only their values count).
    Ties keep one value: the mapping uses the mid-rank CDF of each distinct grey level.
    """
    arr = np.asarray(image, dtype=np.float32)
    if fov is None:
        fov = fov_mask(arr, threshold)
    fov = np.asarray(fov, dtype=bool).reshape(arr.shape[-2:])
    ref = np.sort(np.asarray(reference, dtype=np.float32).ravel())
    if not ref.size:
        raise DataError("match_histogram: the reference has no pixels (an empty target fan).")
    src = arr[..., fov]
    if not src.size:
        return arr.copy()
    values, inverse, counts = np.unique(src, return_inverse=True, return_counts=True)
    src_cdf = (np.cumsum(counts) - 0.5 * counts) / src.size
    ref_cdf = (np.arange(ref.size) + 0.5) / ref.size
    mapped = np.interp(src_cdf, ref_cdf, ref).astype(np.float32)
    out = arr.copy()
    out[..., fov] = mapped[inverse.reshape(src.shape)]
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- Fourier domain adaptation


def check_beta(beta: float, where: str = "remedy.beta") -> float:
    if not 0.0 <= float(beta) <= 0.5:
        raise ConfigError(f"{where} = {beta} must lie in [0, 0.5] (the share of the spectrum swapped).")
    return float(beta)


def fda_transfer(source: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """Yang & Soatto's FDA of one (H, W) image: low-frequency amplitude from `target`, phase from `source`.

    Not clipped: callers clip to their range.
    """
    src = np.asarray(source, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    if src.shape != tgt.shape or src.ndim != 2:
        raise ValueError(f"fda_transfer: source {src.shape} and target {tgt.shape} must be (H, W) images of one size.")
    check_beta(beta, "fda_transfer: beta")
    f_src = np.fft.fftshift(np.fft.fft2(src))
    f_tgt = np.fft.fftshift(np.fft.fft2(tgt))
    amp, phase = np.abs(f_src), np.angle(f_src)
    h, w = src.shape
    b = int(np.floor(min(h, w) * beta))
    ch, cw = h // 2, w // 2
    window = (slice(max(ch - b, 0), ch + b + 1), slice(max(cw - b, 0), cw + b + 1))
    amp[window] = np.abs(f_tgt)[window]
    out = np.fft.ifft2(np.fft.ifftshift(amp * np.exp(1j * phase)))
    return np.real(out).astype(np.float32)


# ----------------------------------------------------------------------------- transforms


class _TargetStyled(RandomizableTransform, MapTransform):
    """Base: restyle the image keys towards a random frame of `bank`.

    modalities: when given, only records whose d["modality"] is one of them
    are restyled (the simulator's), so real training images stay as they are.
    """

    def __init__(self, keys, bank: TargetBank, prob: float, modalities, fov_key: str, fov_threshold: int,
                 allow_missing_keys: bool):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.bank = bank
        self.modalities = None if modalities is None else {str(m) for m in modalities}
        self.fov_key = fov_key
        self.fov_threshold = int(fov_threshold)

    def _restyle(self, image: np.ndarray, fov: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        if self.modalities is not None and str(d.get("modality")) not in self.modalities:
            return d
        self._index = int(self.R.randint(len(self.bank.images)))
        for key in self.key_iterator(d):
            img = d[key]
            arr = convert_to_numpy(img).astype(np.float32)
            if arr.shape[-2:] != self.bank.images.shape[-2:]:
                raise DataError(
                    f"target style: image size {arr.shape[-2:]} differs from the target frames' "
                    f"{self.bank.images.shape[-2:]}; build the TargetBank at the experiment's image_size."
                )
            if self.fov_key in d:
                fov = convert_to_numpy(d[self.fov_key]).astype(bool).reshape(arr.shape[-2:])
            else:
                fov = fov_mask(arr, self.fov_threshold)
            out = np.where(fov, self._restyle(arr, fov), arr)
            d[key] = convert_to_dst_type(np.clip(out, 0.0, 1.0).astype(np.float32), img)[0]
        return d


class RandHistogramMatchd(_TargetStyled):
    """Histogram matching of the fan towards a random target frame's fan, or the pooled target fans."""

    def __init__(self, keys, bank: TargetBank, prob: float = 1.0, reference: str = "random_frame",
                 modalities=None, fov_key: str = "fov", fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, bank, prob, modalities, fov_key, fov_threshold, allow_missing_keys)
        if reference not in REFERENCES:
            raise ConfigError(f"remedy.reference = {reference!r}; use one of {', '.join(REFERENCES)}.")
        self.reference = reference
        self._pooled = bank.pooled_values() if reference == "pooled" else None

    def _restyle(self, image, fov):
        if self._pooled is not None:
            ref = self._pooled
        else:
            frame, frame_fov = self.bank.images[self._index], self.bank.fovs[self._index]
            ref = frame[frame_fov] if frame_fov.any() else frame
        return match_histogram(image, ref, fov)


class RandFourierDomainAdaptd(_TargetStyled):
    """FDA towards a random target frame; beta a number or a [low, high] range sampled per call."""

    def __init__(self, keys, bank: TargetBank, beta=0.05, prob: float = 1.0, modalities=None,
                 fov_key: str = "fov", fov_threshold: int = 12, allow_missing_keys: bool = False):
        super().__init__(keys, bank, prob, modalities, fov_key, fov_threshold, allow_missing_keys)
        pair = (beta, beta) if np.isscalar(beta) else tuple(beta)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"remedy.beta = {beta!r} must be a number or a pair [low, high] with low <= high.")
        self.beta = (check_beta(pair[0]), check_beta(pair[1]))

    def _restyle(self, image, fov):
        beta = float(self.R.uniform(*self.beta)) if self.beta[0] < self.beta[1] else self.beta[0]
        target = self.bank.images[self._index]
        channels = image.reshape(-1, *image.shape[-2:])
        return np.stack([fda_transfer(c, target, beta) for c in channels]).reshape(image.shape)
