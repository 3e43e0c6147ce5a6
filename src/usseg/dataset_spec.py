"""The dataset description (config.yaml's `dataset:` section), typed.

Every stage that needs the palette, the class names, the modalities or the
folder layout reads them here instead of indexing the raw mapping under a
local name of its own (nnU-Net's `dataset.json` plays this part there). The
layout (`split_folders` or `flat`, each modality's `folder`, the images and
masks folders, the test split) has one reader of paths: `locate`. The
mapping stays the single source (`spec.section`): rules pass it as a param, so
a change to it re-runs exactly the stages that read it.

Defaults come from the config schema (config.schema.yaml), the same place the
workflow fills them from, so a test or tool that builds a partial section gets
the values a run would.

This module sits at the bottom of the import graph (it imports only the
errors and the contracts' naming), so any module may use it without pulling
the rest of the library in.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from usseg.contracts import test_set_name
from usseg.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
SYNTHETIC = "synthetic"
REAL = "real"
# dataset.layout: the reference's original train/test folders, or none (the split is made by subject).
SPLIT_FOLDERS = "split_folders"
FLAT = "flat"
LAYOUTS = (SPLIT_FOLDERS, FLAT)
# The original split of every image of a flat layout (manifest column orig_split).
FLAT_SPLIT = "all"
# The original split whose labeled images form a modality's test set (dataset.test_split's default).
ORIG_TEST = "test"
# dataset.modalities.*.folder that means the dataset root itself (a single modality: images/ + masks/).
ROOT_FOLDER = "."


@functools.cache
def _section_defaults() -> dict:
    """The schema's defaults of the dataset section's keys (images_dir, decode, ...)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    props = schema["properties"]["dataset"]["properties"]
    return {key: sub["default"] for key, sub in props.items() if "default" in sub}


@dataclass(frozen=True)
class Modality:
    """One entry of dataset.modalities: a folder of images of one kind."""

    name: str
    domain: str  # synthetic | real
    image_extensions: tuple[str, ...]
    subject_pattern: str
    folder: str = ""  # below the dataset root; "" = the name; "." = the root itself

    @property
    def test_set(self) -> str:
        return test_set_name(self.name)

    @property
    def folder_path(self) -> str:
        """The modality's folder below the dataset root, as a POSIX path ("" for the root itself)."""
        folder = (self.folder or self.name).strip("/")
        return "" if folder == ROOT_FOLDER else folder


@dataclass(frozen=True)
class DatasetSpec:
    """config.yaml's `dataset:` section with the schema's defaults, read through typed properties."""

    section: Mapping = field(repr=False)

    def __post_init__(self):
        if not isinstance(self.section, Mapping):
            raise ConfigError(f"dataset: expected a mapping (config.yaml's dataset section), got {self.section!r}.")
        missing = [k for k in ("classes", "modalities", "target_modality") if k not in self.section]
        if missing:
            raise ConfigError(f"dataset: missing {', '.join(missing)} (see config.yaml's dataset section).")
        # A private deep copy with the defaults filled: a caller changing its mapping later changes nothing here.
        object.__setattr__(self, "section", {**copy.deepcopy(_section_defaults()), **copy.deepcopy(dict(self.section))})

    @classmethod
    def of(cls, dataset: DatasetSpec | Mapping) -> DatasetSpec:
        """A DatasetSpec from a spec (returned as is) or from the raw section (a rule's `dataset` param)."""
        return dataset if isinstance(dataset, DatasetSpec) else cls(dataset)

    @classmethod
    def from_config(cls, config: Mapping) -> DatasetSpec:
        return cls(config["dataset"])

    # ------------------------------------------------------------------ classes

    @property
    def class_names(self) -> list[str]:
        """Class names in class-index order (index 0 is background)."""
        return [str(c["name"]) for c in self.section["classes"]]

    @property
    def n_classes(self) -> int:
        return len(self.section["classes"])

    @property
    def palette(self) -> np.ndarray:
        """(n_classes, 3) uint8 array, row i = colour of class i."""
        return np.array([c["rgb"] for c in self.section["classes"]], dtype=np.uint8)

    # ------------------------------------------------------------------ modalities

    @property
    def modalities(self) -> dict[str, Modality]:
        """Modality name -> its settings, in config order."""
        return {
            str(name): Modality(str(name), str(m["domain"]), tuple(str(e) for e in m["image_extensions"]),
                                str(m["subject_pattern"]), str(m.get("folder") or name))
            for name, m in self.section["modalities"].items()
        }

    @property
    def modality_names(self) -> list[str]:
        return [str(m) for m in self.section["modalities"]]

    @property
    def target_modality(self) -> str:
        """The modality a model is meant to work on (the real scanner images)."""
        return str(self.section["target_modality"])

    @property
    def source_modalities(self) -> list[str]:
        """Every modality but the target, in config order."""
        return [m for m in self.modality_names if m != self.target_modality]

    @property
    def default_train_modalities(self) -> list[str]:
        """train_modalities: auto: every modality but the target (the target itself when it is the only one)."""
        return self.source_modalities or [self.target_modality]

    @property
    def target_test_set(self) -> str:
        return test_set_name(self.target_modality)

    def domain(self, modality: str) -> str | None:
        m = self.section["modalities"].get(modality)
        return None if m is None else str(m["domain"])

    # ------------------------------------------------------------------ layout

    @property
    def layout(self) -> str:
        """split_folders ({modality}/{images_dir}/{split}/FILE) or flat ({modality}/{images_dir}/FILE)."""
        return str(self.section.get("layout") or SPLIT_FOLDERS)

    @property
    def is_flat(self) -> bool:
        return self.layout == FLAT

    @property
    def images_dir(self) -> str:
        return str(self.section["images_dir"])

    @property
    def annotations_dir(self) -> str:
        return str(self.section["annotations_dir"])

    @property
    def orig_splits(self) -> list[str]:
        """The original split folders; a flat layout has one original split, FLAT_SPLIT ("all")."""
        if self.is_flat:
            return [FLAT_SPLIT]
        return [str(s) for s in self.section["orig_splits"]]

    @property
    def test_split(self) -> str:
        """The original split whose labeled images form each modality's test set (dataset.test_split); every
        other original split's labeled images are split by subject into train and val."""
        return str(self.section.get("test_split") or ORIG_TEST)

    @property
    def root_entries(self) -> list[str]:
        """What the dataset root holds: each modality's folder (its images folder for the root itself).

        The dataset root is the folder at or below data_root where all of them are (usseg.dataset_root).
        """
        return [m.folder_path or self.images_dir for m in self.modalities.values()]

    def folder_of(self, modality: str, kind: str, orig_split: str = "") -> str:
        """The folder (POSIX, below the dataset root) of a modality's images or masks (`kind`: images_dir
        or annotations_dir) in one original split, e.g. AUS/images/train."""
        parts = [self.modalities[modality].folder_path, kind]
        if not self.is_flat:
            parts.append(orig_split)
        return "/".join(p for p in parts if p)

    def locate(self, rel: str) -> tuple[str, str, str, str] | None:
        """(modality, kind, orig_split, file name) of a path below the dataset root, or None when the
        layout has no place for it. `kind` is images_dir or annotations_dir."""
        parts = rel.split("/")
        depth = 2 if self.is_flat else 3
        # The deepest modality folder first: "data/sim" before ".".
        for mod in sorted(self.modalities.values(), key=lambda m: -len(m.folder_path)):
            prefix = mod.folder_path.split("/") if mod.folder_path else []
            if parts[: len(prefix)] != prefix or len(parts) != len(prefix) + depth:
                continue
            rest = parts[len(prefix):]
            if rest[0] not in (self.images_dir, self.annotations_dir):
                continue
            if self.is_flat:
                return mod.name, rest[0], FLAT_SPLIT, rest[1]
            if rest[1] in self.orig_splits:
                return mod.name, rest[0], rest[1], rest[2]
        return None

    def layout_hint(self) -> str:
        """The expected places of files, for messages."""
        split = "" if self.is_flat else "{split}/"
        folders = ", ".join(f"{m.folder_path or '.'}/ ({m.name})" for m in self.modalities.values())
        splits = "" if self.is_flat else f"; splits: {', '.join(self.orig_splits)}"
        return (
            f"{{modality folder}}/{self.images_dir}/{split}FILE or {{modality folder}}/{self.annotations_dir}/"
            f"{split}FILE (modality folders: {folders}{splits})"
        )

    @property
    def mask_extensions(self) -> list[str]:
        return [str(e) for e in self.section["mask_extensions"]]

    # ------------------------------------------------------------------ reading pixels

    @property
    def bit_depth(self) -> str | int:
        """dataset.bit_depth: "auto" (inferred from the whole dataset by the manifest) or the declared depth
        of images stored with more than 8 bits per pixel (usseg.images.ReadingRule)."""
        value = self.section.get("bit_depth", "auto")
        return "auto" if value in (None, "auto") else int(value)

    @property
    def max_image_side(self) -> int | None:
        """dataset.max_image_side: images with a longer side are read down-sampled; None = no limit."""
        value = self.section.get("max_image_side")
        return None if value is None else int(value)

    # ------------------------------------------------------------------ decoding

    @property
    def decode(self) -> str:
        return str(self.section["decode"])

    @property
    def mask_encoding(self) -> str:
        return str(self.section["mask_encoding"])

    @property
    def blend_window(self) -> int:
        return int(self.section["blend_window"])

    @property
    def palette_tolerance(self) -> float:
        return float(self.section["palette_tolerance"])

    @property
    def off_palette_distance(self) -> float:
        return float(self.section["off_palette_distance"])

    @property
    def max_off_palette_fraction(self) -> float:
        return float(self.section["max_off_palette_fraction"])
