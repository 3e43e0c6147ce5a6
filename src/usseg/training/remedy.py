"""An experiment's remedy applied in training and at prediction (docs/remedies.md, "Wiring").

Training (usseg.train) asks `training_transforms` for the transforms the remedy
and the augmentation extras add to the training data (usseg.training.batches);
prediction (usseg.evaluate) asks `prediction_remedy` for the predictor and the
image preparation. The remedy modules themselves are loaded by name, only for
the experiments that use them (usseg.remedies.spec.implementation). The
unlabeled target frames every target-style, test-time or
semi-supervised remedy reads are the rows of split `unlabeled` of the target
modality whose subject is in no test set and that are not original test images
(`target_frame_rows`): no test image, and no frame of a test patient, shapes the
model (except `bn_adapt` with `frames: test`, transductive by choice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from usseg.contracts import UNLABELED, is_test_set
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.remedies import spec, transforms

if TYPE_CHECKING:
    from usseg.data import PreparedData
    from usseg.experiment import Experiment

# Remedies whose training reads the target frames (their ids enter the training hash).
TRAINING_FRAME_REMEDIES = ("histogram_matching", "fda", "pseudo_label", "mean_teacher")


def target_frame_rows(table: pd.DataFrame, dataset: DatasetSpec | Mapping) -> pd.DataFrame:
    """The unlabeled frames of the target modality a remedy may read, sorted by image_id.

    Rows of split `unlabeled` of the target modality, less (a) every frame of a
    subject with images in a test set (test_*): the frames of one patient are
    near copies, so an unlabeled frame of a test patient would show the model
    that patient's anatomy; (b) original test images (orig_split `test`, or
    named in `excluded_from`), e.g. a test image whose mask was set aside.
    """
    target = DatasetSpec.of(dataset).target_modality
    test_subjects = set(table.loc[table["split"].map(is_test_set), "subject_id"])
    keep = (table["modality"] == target) & (table["split"] == UNLABELED) & ~table["subject_id"].isin(test_subjects)
    for column, bad in (("orig_split", lambda v: v == "test"), ("excluded_from", lambda v: v != "")):
        if column in table.columns:
            keep &= ~table[column].fillna("").astype(str).map(bad)
    return table[keep].sort_values("image_id", kind="stable")


def bank_ids(table: pd.DataFrame, dataset: DatasetSpec, max_images: int | None, seed: int, what: str) -> list[str]:
    """image_ids of a remedy's target frames: `target_frame_rows`, a seeded sample of at most `max_images`
    (drawn over the frames in image-path order), in image-path order."""
    rows = target_frame_rows(table, dataset)
    if rows.empty:
        raise DataError(
            f"{what} needs unlabeled frames of the target modality {dataset.target_modality} "
            "(split 'unlabeled' in splits.csv, from subjects in no test set, not original test images) and there "
            "are none; remove this remedy or add unlabeled target images of subjects outside the test sets."
        )
    rows = rows.sort_values("image_path", kind="stable")
    if max_images is not None and len(rows) > int(max_images):
        picked = np.random.default_rng(seed).choice(len(rows), size=int(max_images), replace=False)
        rows = rows.iloc[np.sort(picked)]
    return rows["image_id"].tolist()


def target_bank(exp: Experiment, remedy, prepared: PreparedData):
    """The remedy's bank (usseg.remedies.style.TargetBank) of unlabeled target frames at the experiment's
    image size (a seeded sample), from the prepared arrays."""
    ids = bank_ids(prepared.table, prepared.dataset, remedy.max_target_images, exp.seed,
                   f"experiment {exp.name}: remedy {remedy.name}")
    images = prepared.arrays(exp.image_size).take(ids).images
    return spec.implementation("style").TargetBank.from_images(images, prepared.fan_threshold)


def training_frame_ids(exp: Experiment, table: pd.DataFrame, dataset: DatasetSpec) -> list[str]:
    """image_ids of the target frames the training of `exp` reads (for its training hash)."""
    if exp.remedy.name not in TRAINING_FRAME_REMEDIES:
        return []
    return target_frame_rows(table, dataset)["image_id"].tolist()


def training_transforms(exp: Experiment, prepared: PreparedData) -> tuple[list, list]:
    """(cached, random) transforms the experiment's remedy and augmentation extras add to training.

    The cached ones run once per image at the start of training (the fan mask
    "fov", the normalisation); the random ones run per image and epoch, after
    the batch augmentation (usseg.training.batches). Both take and return dicts
    of (1, H, W) arrays ("image", "label", "fov") and the record's "modality".
    """
    remedy = exp.remedy
    extras = spec.parse_augmentation_extras(exp.augmentation, f"{exp.where}.augmentation")
    bank = None
    if remedy.name in ("histogram_matching", "fda"):
        bank = target_bank(exp, remedy, prepared)
    dataset, fov_threshold = prepared.dataset, prepared.fan_threshold
    sources = dataset.source_modalities
    cached, rand = transforms.train_transforms(remedy, bank, sources, fov_threshold)
    rand = rand + transforms.augmentation_transforms(extras, exp.image_size, fov_threshold)
    return cached, rand


def prediction_remedy(exp: Experiment, predictor, test_set: str, prepared: PreparedData,
                      test_images: Callable[[], np.ndarray]):
    """(predictor, prepare): the predictor to use on `test_set` and the map applied to its
    (N, H, W) images before prediction.

    fov_normalise normalises every test image as the training images were;
    bn_adapt adapts the batch-norm statistics on target frames, for the target
    modality's test set only (`test_images()` gives the test images for `frames: test`).
    """
    remedy = exp.remedy

    def prepare(images: np.ndarray) -> np.ndarray:
        return np.asarray(transforms.prepare_test_images(remedy, images, prepared.fan_threshold), dtype=np.float32)

    if isinstance(remedy, spec.BatchNormAdaptation) and test_set == prepared.dataset.target_test_set:
        if remedy.frames == "test":
            frames = test_images()
        else:
            frames = target_bank(exp, remedy, prepared).images
        predictor = spec.implementation("tta").adapt_predictor(predictor, prepare(frames), remedy.batch_size)
    return predictor, prepare

