"""The MONAI transforms and image maps a remedy's parsed settings (usseg.remedies.spec) stand for.

usseg.remedies.spec only parses and checks the config; this module builds what
training, prediction and the domain check run, from the remedy modules
(normalise, style, us_augment), each loaded by name only when a remedy needs it
(usseg.remedies.spec.implementation), so a job's code is its experiment's families only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from usseg.errors import ConfigError
from usseg.remedies.spec import (
    AugmentationExtras,
    FourierDomainAdaptation,
    FovNormalisation,
    HistogramMatching,
    RemedySpec,
    implementation,
)

# The keys of the training records (the same names as usseg.remedies.us_augment's).
IMAGE, FOV = "image", "fov"


def train_transforms(spec: RemedySpec, bank=None, source_modalities=None,
                     fov_threshold: int = 12) -> tuple[list, list]:
    """(deterministic, random) MONAI transforms a remedy adds to training, after the resize.

    The deterministic ones go into the cached part of the pipeline (the fan mask,
    the normalisation), the random ones run per epoch (restyling towards a random
    target frame of `bank`, applied only to records of `source_modalities`).
    Remedies that act in the training loop or at prediction add none. `bank`: a
    usseg.remedies.style.TargetBank, for histogram matching and FDA.
    """
    if isinstance(spec, FovNormalisation):
        normalise = implementation("normalise")
        fov = normalise.FieldOfViewd(keys=IMAGE, threshold=fov_threshold)
        norm = normalise.NormaliseInFOVd(keys=IMAGE, method=spec.method, low=spec.low, high=spec.high,
                                         threshold=fov_threshold)
        return [fov, norm], []
    if isinstance(spec, HistogramMatching | FourierDomainAdaptation):
        if bank is None:
            raise ConfigError(f"remedy {spec.name} needs target frames (a TargetBank); none were given.")
        style = implementation("style")
        fov = implementation("normalise").FieldOfViewd(keys=IMAGE, threshold=fov_threshold)
        if isinstance(spec, HistogramMatching):
            tf = style.RandHistogramMatchd(keys=IMAGE, bank=bank, prob=spec.prob,
                                           reference=spec.reference, modalities=source_modalities,
                                           fov_threshold=fov_threshold)
        else:
            tf = style.RandFourierDomainAdaptd(keys=IMAGE, bank=bank, beta=spec.beta, prob=spec.prob,
                                               modalities=source_modalities, fov_threshold=fov_threshold)
        return [fov], [tf]
    return [], []


def prepare_test_images(spec: RemedySpec, images, fov_threshold: int = 12):
    """(N, H, W) test images as the remedy's model expects them (normalised for fov_normalise, else as they are)."""
    if isinstance(spec, FovNormalisation):
        return implementation("normalise").normalise_batch(images, spec.method, spec.low, spec.high, fov_threshold)
    return images


def harmonisers(spec: RemedySpec, bank=None, seed: int = 0, fov_threshold: int = 12):
    """(source_fn, target_fn) mapping (N, H, W) images in [0, 1] as the remedy harmonises them, for
    usseg.remedies.domain_check.domain_auc; None where the remedy has no harmonisation.

    fov_normalise changes both domains (z-scores shown as (z + 3) / 6, clipped to [0, 1], so
    they have grey levels to compare); histogram matching and FDA restyle the source only,
    each image towards a random target frame drawn with `seed`.
    """
    if isinstance(spec, FovNormalisation):
        normalise = implementation("normalise")

        def norm(images):
            out = normalise.normalise_batch(images, spec.method, spec.low, spec.high, fov_threshold)
            return out if spec.method == "percentile" else np.clip((out + 3.0) / 6.0, 0.0, 1.0)

        return norm, norm
    if isinstance(spec, HistogramMatching | FourierDomainAdaptation):
        _, (tf,) = train_transforms(spec, bank, None, fov_threshold)
        tf.prob = 1.0  # every source image, as the AUC asks what the restyled images look like

        def restyle(images):
            tf.set_random_state(seed)
            return np.stack([tf({IMAGE: im[None]})[IMAGE][0] for im in images])

        return restyle, None
    return None


def augmentation_transforms(extras: AugmentationExtras, image_size: Sequence[int], fov_threshold: int = 12) -> list:
    """The random transforms of the extras, run per image after the batch augmentation (usseg.training.batches).

    The ultrasound transforms read the fan from d["fov"] when a FieldOfViewd ran in the
    deterministic (cached) part, and compute it otherwise.
    """
    if not extras.ultrasound and extras.generic is None:
        return []
    us_augment = implementation("us_augment")
    out = us_augment.ultrasound_transforms(extras.ultrasound, fov_threshold=fov_threshold)
    if extras.generic is not None:
        out += us_augment.generic_strong_transforms(image_size, extras.generic.num_operations, extras.generic.magnitude)
    return out
