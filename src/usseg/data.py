"""Datasets and transforms for training and evaluation.

Images are read as grayscale float in [0, 1]; labels come from the cached
``results/labels/{image_id}.npy`` arrays (palette indices at the original
size, never re-decoded from colour masks) and are mapped to an experiment's
output classes with `Experiment.label_lookup` (usseg.experiment).

As in the MONAI tutorials, the deterministic transforms (load, map, resize)
are kept apart from the random ones (flip, noise, contrast) so that a
`CacheDataset` computes the first once and only the second runs per epoch.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.data import CacheDataset
from monai.transforms import (
    Compose,
    EnsureTyped,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    Resized,
)

from usseg import contracts
from usseg.dataset_root import dataset_file
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.images import load_grayscale

IMAGE = "image"
LABEL = "label"


# ----------------------------------------------------------------------------- files and tables


def load_labels(path: str | Path, lut: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """A cached palette-index array mapped through `lut` to output classes (uint8, (H, W)).

    `shape`, when given, is the (H, W) of the image the labels belong to.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label array missing; run the decode_masks step first.")
    labels = np.load(path, allow_pickle=False)
    if labels.ndim != 2:
        raise DataError(
            f"{path}: expected a 2-D label array, got shape {labels.shape}; the label cache is stale or "
            "was written by another tool. Delete results/labels/ and re-run the decode_masks step."
        )
    if labels.dtype != np.uint8:
        raise DataError(
            f"{path}: expected uint8 class indices, got dtype {labels.dtype}; the label cache is stale or "
            "was written by another tool. Delete results/labels/ and re-run the decode_masks step."
        )
    if shape is not None and tuple(labels.shape) != tuple(shape):
        raise DataError(
            f"{path}: the label array is {labels.shape[0]}x{labels.shape[1]} (height x width) but its image is "
            f"{shape[0]}x{shape[1]}; the label cache is stale. Delete results/labels/ and re-run the "
            "decode_masks step."
        )
    if labels.size and int(labels.max()) >= len(lut):
        raise DataError(
            f"{path}: label value {int(labels.max())} is not a palette index (the palette has {len(lut)} classes)."
        )
    return lut[labels]


def resize_nearest(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map, sampling pixel centres (torch's 'nearest-exact')."""
    h, w = labels.shape
    H, W = int(shape[0]), int(shape[1])
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


@dataclass(frozen=True)
class PreparedData:
    """The prepared dataset that training, evaluation and the checks read (the data stages' outputs).

    dataset: config.yaml's dataset section (typed); root: the dataset root the manifest found and recorded
    (results/dataset_root.json); manifest_csv, splits_csv, labels_dir: results/manifest.csv, the
    split (results/splits.csv or a gap-study split), results/labels/; fov_threshold:
    diagnostics.fov_threshold, the grey level that bounds the fan for the remedies that act inside it.
    """

    dataset: DatasetSpec
    root: Path
    manifest_csv: Path
    splits_csv: Path
    labels_dir: Path | None  # None for a stage that reads no label (the domain check)
    fov_threshold: int | None = None  # None for a stage that runs no remedy

    def __post_init__(self):
        # The raw section (a rule's `dataset` param, a test's dict) is read through its typed view.
        object.__setattr__(self, "dataset", DatasetSpec.of(self.dataset))

    @classmethod
    def from_rule(cls, inputs, params) -> PreparedData:
        """From a rule's named inputs root (the manifest's record of the dataset root), manifest, splits and,
        when it reads labels, labels; and its params dataset and, when it runs remedies, fov_threshold:
        `PreparedData.from_rule(snakemake.input, snakemake.params)`."""
        from usseg.dataset_root import read_dataset_root

        labels = getattr(inputs, "labels", None)
        fov_threshold = getattr(params, "fov_threshold", None)
        return cls(params.dataset, read_dataset_root(inputs.root), Path(inputs.manifest), Path(inputs.splits),
                   None if labels is None else Path(labels), None if fov_threshold is None else int(fov_threshold))

    @property
    def fan_threshold(self) -> int:
        """diagnostics.fov_threshold, for the remedies that act inside the fan."""
        if self.fov_threshold is None:
            raise ValueError("this stage was given no diagnostics.fov_threshold (params fov_threshold), which the "
                             "experiment's remedy needs")
        return self.fov_threshold

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """splits.csv joined with manifest.csv (usseg.contracts.read_split_table), read once."""
        return contracts.read_split_table(self.manifest_csv, self.splits_csv)

    def records(self, split: str, modalities: Sequence[str] | None = None) -> list[dict]:
        """Records (dicts for the MONAI transforms) of one split, optionally of some modalities only."""
        if self.labels_dir is None:
            raise ValueError("PreparedData without labels_dir has no records to train or score on")
        return split_records(self.table, split, modalities, self.root, self.labels_dir)


def split_records(
    table: pd.DataFrame,
    split: str,
    modalities: Sequence[str] | None,
    root: Path,
    labels_dir,
) -> list[dict]:
    """Records (dicts for the MONAI transforms) of one split, optionally restricted to modalities."""
    rows = table[table["split"] == split]
    if modalities is not None:
        rows = rows[rows["modality"].isin(list(modalities))]
    labels_dir = Path(labels_dir)
    return [
        {
            IMAGE: str(dataset_file(root, r.image_path)),
            LABEL: str(labels_dir / f"{r.image_id}.npy"),
            "image_id": r.image_id,
            "subject_id": r.subject_id,
            "modality": r.modality,
        }
        for r in rows.itertuples(index=False)
    ]


def describe_split_counts(table: pd.DataFrame, modalities: Sequence[str]) -> str:
    """'AUS: train 120, val 30, test_aus 60; RUS: unlabeled 40' — for error messages."""
    parts = []
    for mod in modalities:
        counts = table[table["modality"] == mod]["split"].value_counts()
        inner = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rows"
        parts.append(f"{mod}: {inner}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- transforms


class LoadGrayscaled(MapTransform):
    """Path -> (1, H, W) float32 array in [0, 1]."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = load_grayscale(d[key])[None]
        return d


class LoadLabelsd(MapTransform):
    """Path of a cached palette-index .npy -> (1, H, W) float32 output-class indices."""

    def __init__(self, keys, lut: np.ndarray, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.lut = np.asarray(lut, dtype=np.uint8)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image = d.get(IMAGE)
        shape = image.shape[-2:] if isinstance(image, np.ndarray) else None  # loaded first
        for key in self.key_iterator(d):
            # float: MONAI's resize works on floats; nearest-exact keeps the values integral.
            d[key] = load_labels(d[key], self.lut, shape)[None].astype(np.float32)
        return d


def deterministic_transforms(image_size: Sequence[int], lut: np.ndarray | None, with_label: bool = True) -> list:
    """Load, map labels, resize image (bilinear, anti-aliased) and label (nearest) to image_size (H, W)."""
    size = tuple(int(s) for s in image_size)
    tf = [LoadGrayscaled(keys=IMAGE)]
    if with_label:
        tf.append(LoadLabelsd(keys=LABEL, lut=lut))
    tf.append(Resized(keys=IMAGE, spatial_size=size, mode="bilinear", anti_aliasing=True))
    if with_label:
        tf.append(Resized(keys=LABEL, spatial_size=size, mode="nearest-exact"))
    return tf


def random_transforms(aug: Mapping) -> list:
    """Augmentation from an experiment's augmentation block. Flips are left-right only: depth runs
    down the image and an upside-down ultrasound frame is not a plausible input."""
    keys = [IMAGE, LABEL]
    tf = []
    if aug.get("flip_prob", 0) > 0:
        tf.append(RandFlipd(keys=keys, prob=aug["flip_prob"], spatial_axis=1))
    if aug.get("noise_prob", 0) > 0 and aug.get("noise_std", 0) > 0:
        tf.append(RandGaussianNoised(keys=IMAGE, prob=aug["noise_prob"], std=aug["noise_std"]))
    if aug.get("contrast_prob", 0) > 0:
        tf.append(RandAdjustContrastd(keys=IMAGE, prob=aug["contrast_prob"], gamma=tuple(aug["contrast_gamma"])))
    return tf


def _to_plain_tensors(keys) -> EnsureTyped:
    # Plain tensors, not MetaTensors: the training loop needs no affine metadata
    # and collating metadata costs time on every batch.
    return EnsureTyped(keys=keys, track_meta=False, dtype=torch.float32)


def build_dataset(
    records: list[dict], image_size: Sequence[int], augmentation: Mapping, lut: np.ndarray, augment: bool,
    cache_workers: int | None = None, remedy: tuple[list, list] = ([], []),
) -> CacheDataset:
    """CacheDataset: deterministic transforms cached once, random ones (if `augment`) per access.

    image_size, augmentation: the experiment's (Experiment.image_size, .augmentation).

    `remedy`: (cached, random) transforms of the experiment's remedy
    (usseg.remedies.wiring.training_transforms), after the resize and after the augmentation.
    """
    tf = deterministic_transforms(image_size, lut) + list(remedy[0])
    if augment:
        tf += random_transforms(augmentation) + list(remedy[1])
    tf.append(_to_plain_tensors([IMAGE, LABEL]))
    return CacheDataset(
        data=records,
        transform=Compose(tf),
        cache_rate=1.0,
        num_workers=cache_workers,  # threads; None = one per CPU
        progress=False,
    )
