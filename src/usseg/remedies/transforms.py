"""The MONAI transforms and image maps a remedy's parsed settings (usseg.remedies.spec) stand for.

usseg.remedies.spec only parses and checks the config; this module builds what
training, prediction and the domain check run, from the remedy modules
(normalise, style, us_augment).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from usseg.errors import ConfigError
from usseg.remedies import normalise, style, us_augment
from usseg.remedies.spec import (
    AugmentationExtras,
    FourierDomainAdaptation,
    FovNormalisation,
    HistogramMatching,
    RemedySpec,
)


def train_transforms(spec: RemedySpec, bank: style.TargetBank | None = None, source_modalities=None,
                     fov_threshold: int = 12) -> tuple[list, list]:
    """(deterministic, random) MONAI transforms a remedy adds to training, after the resize.

    The deterministic ones go into the cached part of the pipeline (the fan mask,
    the normalisation), the random ones run per epoch (restyling towards a random
    target frame of `bank`, applied only to records of `source_modalities`).
    Remedies that act in the training loop or at prediction add none.
    """
    fov = normalise.FieldOfViewd(keys=us_augment.IMAGE, threshold=fov_threshold)
    if isinstance(spec, FovNormalisation):
        norm = normalise.NormaliseInFOVd(keys=us_augment.IMAGE, method=spec.method, low=spec.low, high=spec.high,
                                         threshold=fov_threshold)
        return [fov, norm], []
    if isinstance(spec, HistogramMatching | FourierDomainAdaptation):
        if bank is None:
            raise ConfigError(f"remedy {spec.name} needs target frames (a TargetBank); none were given.")
        if isinstance(spec, HistogramMatching):
            tf = style.RandHistogramMatchd(keys=us_augment.IMAGE, bank=bank, prob=spec.prob,
                                           reference=spec.reference, modalities=source_modalities,
                                           fov_threshold=fov_threshold)
        else:
            tf = style.RandFourierDomainAdaptd(keys=us_augment.IMAGE, bank=bank, beta=spec.beta, prob=spec.prob,
                                               modalities=source_modalities, fov_threshold=fov_threshold)
        return [fov], [tf]
    return [], []


def prepare_test_images(spec: RemedySpec, images, fov_threshold: int = 12):
    """(N, H, W) test images as the remedy's model expects them (normalised for fov_normalise, else as they are)."""
    if isinstance(spec, FovNormalisation):
        return normalise.normalise_batch(images, spec.method, spec.low, spec.high, fov_threshold)
    return images


def harmonisers(spec: RemedySpec, bank: style.TargetBank | None = None, seed: int = 0, fov_threshold: int = 12):
    """(source_fn, target_fn) mapping (N, H, W) images in [0, 1] as the remedy harmonises them, for
    usseg.remedies.domain_check.domain_auc; None where the remedy has no harmonisation.

    fov_normalise changes both domains (z-scores shown as (z + 3) / 6, clipped to [0, 1], so
    they have grey levels to compare); histogram matching and FDA restyle the source only,
    each image towards a random target frame drawn with `seed`.
    """
    if isinstance(spec, FovNormalisation):
        def norm(images):
            out = normalise.normalise_batch(images, spec.method, spec.low, spec.high, fov_threshold)
            return out if spec.method == "percentile" else np.clip((out + 3.0) / 6.0, 0.0, 1.0)

        return norm, norm
    if isinstance(spec, HistogramMatching | FourierDomainAdaptation):
        _, (tf,) = train_transforms(spec, bank, None, fov_threshold)
        tf.prob = 1.0  # every source image, as the AUC asks what the restyled images look like

        def restyle(images):
            tf.set_random_state(seed)
            return np.stack([tf({us_augment.IMAGE: im[None]})[us_augment.IMAGE][0] for im in images])

        return restyle, None
    return None


def augmentation_transforms(extras: AugmentationExtras, image_size: Sequence[int], fov_threshold: int = 12) -> list:
    """The random transforms of the extras, to append after usseg.data.random_transforms.

    The ultrasound transforms read the fan from d["fov"] when a FieldOfViewd ran in the
    deterministic (cached) part, and compute it otherwise.
    """
    out = us_augment.ultrasound_transforms(extras.ultrasound, fov_threshold=fov_threshold)
    if extras.generic is not None:
        out += us_augment.generic_strong_transforms(image_size, extras.generic.num_operations, extras.generic.magnitude)
    return out
