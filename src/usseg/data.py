"""The prepared dataset every stage reads: tables, label files and the images at an experiment's size.

Images are read as grayscale float in [0, 1]; labels come from the cached
``results/labels/{image_id}.npy`` arrays (palette indices at the original
size, never re-decoded from colour masks) and are mapped to an experiment's
output classes with `Experiment.label_lookup` (usseg.experiment). The images
and labels at an image size come from the prepared arrays
(usseg.prepared_arrays, rule prepare_arrays), made once per size.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from usseg import contracts
from usseg.dataset_root import dataset_file
from usseg.dataset_spec import DatasetSpec
from usseg.images import load_grayscale
from usseg.prepared_arrays import (
    ImageArrays,
    built_arrays,
    read_arrays,
    read_label_array,
    resize_nearest,
)

log = logging.getLogger("usseg.data")

# load_grayscale and resize_nearest are read as usseg.data's by the evaluation.
__all__ = ["IMAGE", "LABEL", "PreparedData", "load_grayscale", "load_labels", "resize_nearest", "split_records"]

IMAGE = "image"
LABEL = "label"


# ----------------------------------------------------------------------------- files and tables


def load_labels(path: str | Path, lut: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """A cached palette-index array mapped through `lut` to output classes (uint8, (H, W)).

    `shape`, when given, is the (H, W) of the image the labels belong to.
    """
    return np.asarray(lut)[read_label_array(Path(path), shape, len(lut))]


@dataclass(frozen=True)
class PreparedData:
    """The prepared dataset that training, evaluation and the checks read (the data stages' outputs).

    dataset: config.yaml's dataset section (typed); root: the dataset root the manifest found and recorded
    (results/dataset_root.json); manifest_csv, splits_csv, labels_dir: results/manifest.csv, the
    split (results/splits.csv or a gap-study split), results/labels/; fov_threshold:
    diagnostics.fov_threshold, the grey level that bounds the fan for the remedies that act inside it;
    arrays_file: results/prepared/{height}x{width}.safetensors (rule prepare_arrays), the images and labels
    at one size, or None: `arrays` then builds them in memory from the files.
    """

    dataset: DatasetSpec
    root: Path
    manifest_csv: Path
    splits_csv: Path
    labels_dir: Path | None  # None for a stage that reads no label (the domain check)
    fov_threshold: int | None = None  # None for a stage that runs no remedy
    arrays_file: Path | None = None  # the prepared arrays at the experiment's image size, when made

    def __post_init__(self):
        # The raw section (a rule's `dataset` param, a test's dict) is read through its typed view.
        object.__setattr__(self, "dataset", DatasetSpec.of(self.dataset))

    @classmethod
    def from_rule(cls, inputs, params) -> PreparedData:
        """From a rule's named inputs root (the manifest's record of the dataset root), manifest, splits and,
        when it reads labels, labels; when it reads images at an experiment's size, arrays (the prepared
        arrays); and its params dataset and, when it runs remedies, fov_threshold:
        `PreparedData.from_rule(snakemake.input, snakemake.params)`."""
        from usseg.dataset_root import read_dataset_root

        labels = getattr(inputs, "labels", None)
        arrays = getattr(inputs, "arrays", None)
        fov_threshold = getattr(params, "fov_threshold", None)
        return cls(params.dataset, read_dataset_root(inputs.root), Path(inputs.manifest), Path(inputs.splits),
                   None if labels is None else Path(labels), None if fov_threshold is None else int(fov_threshold),
                   None if arrays is None else Path(arrays))

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

    def arrays(self, size: Sequence[int]) -> ImageArrays:
        """Every manifest image (and its palette labels) at `size`: the prepared file when this stage was
        given the one of that size, else built in memory from the files (the same numbers; cached per process)."""
        size = (int(size[0]), int(size[1]))
        if self.arrays_file is not None:
            arrays = read_arrays(self.arrays_file)
            if arrays.size == size:
                return arrays
            log.info("%s holds the images at %dx%d, not %dx%d: reading them from the files", self.arrays_file,
                     *arrays.size, *size)
        return built_arrays(self.root, self.manifest_csv, self.labels_dir, size, len(self.dataset.class_names))

    def records(self, split: str, modalities: Sequence[str] | None = None) -> list[dict]:
        """Records (image and label paths, ids, subject, modality) of one split, optionally of some modalities only."""
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
    """Records (image and label paths, ids, subject, modality) of one split, optionally restricted to modalities."""
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
