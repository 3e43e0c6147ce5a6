"""Tiny hand-made datasets in the reference layout, written to a test's tmp_path.

Reusable by any test module (`from datasets import make_dataset, dataset_cfg`;
tests/ is on sys.path under pytest's default rootdir-based import mode).
Nothing here depends on the demo generator: every file is built from a few
numpy lines, so a failing test points at the code under test, not at the data.

Layout written by `make_dataset` (sizes 20x16 unless told otherwise):

    AUS/images/train      ct1-1 ct1-2 ct2-1 ct2-2 ct3-1 ct5-1 .png   (all annotated)
    AUS/images/test       ct4-1 ct4-2 .png                           (all annotated)
    RUS/images/train      a1 a2 b1 .jpg                              (no annotations)
    RUS/images/test       c1 c2 d1 .jpg                              (c1: RGBA mask, d1: P mask)
"""

from __future__ import annotations

import copy
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from usseg.config import load_config

# config.yaml's dataset section (palette, layout, subject patterns), read, not
# written out again: the test data follow whatever the default run uses.
DATASET_CFG = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["dataset"]

PALETTE = np.array([c["rgb"] for c in DATASET_CFG["classes"]], dtype=np.uint8)
SIZE = (20, 16)  # width, height

AUS_TRAIN = ["ct1-1", "ct1-2", "ct2-1", "ct2-2", "ct3-1", "ct5-1"]
AUS_TEST = ["ct4-1", "ct4-2"]
RUS_TRAIN = ["a1", "a2", "b1"]
RUS_TEST = ["c1", "c2", "d1"]
RUS_TEST_MASKS = {"c1": "RGBA", "d1": "P"}


def dataset_cfg(**overrides) -> dict:
    """A fresh copy of the dataset config, top-level keys overridden."""
    cfg = copy.deepcopy(DATASET_CFG)
    cfg.update(copy.deepcopy(overrides))
    return cfg


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def grey_image(name: str, size=SIZE) -> np.ndarray:
    """A (H, W) uint8 image whose content depends on `name` (distinct names -> distinct files)."""
    rng = np.random.default_rng(_seed(name))
    return rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8)


def label_map(name: str, size=SIZE) -> np.ndarray:
    """A (H, W) label map: background with a liver block and a smaller kidney block, placed by `name`."""
    w, h = size
    rng = np.random.default_rng(_seed(name))
    labels = np.zeros((h, w), dtype=np.uint8)
    x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
    labels[y : y + h // 2, x : x + w // 2] = 1
    labels[y : y + 3, x : x + 3] = 4
    return labels


def write_image(path, name: str | None = None, size=SIZE) -> Path:
    """Write a grey image (PNG or JPEG by extension) with content keyed by `name` (default: the stem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey_image(name or path.stem, size)).save(path)
    return path


def write_mask(
    path,
    labels: np.ndarray | None = None,
    mode: str = "RGB",
    size=SIZE,
    rgb: np.ndarray | None = None,
) -> Path:
    """Write a colour-coded mask PNG in Pillow `mode` (RGB, RGBA, P or L) from labels or an RGB array."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb is None:
        labels = label_map(path.stem, size) if labels is None else labels
        rgb = PALETTE[labels]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    im = Image.fromarray(rgb)
    if mode == "RGBA":
        im = im.convert("RGBA")
    elif mode == "P":
        # An exact palette image (no dithering): every colour of the mask is in the PNG palette.
        colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
        if len(colours) > 256:
            raise ValueError("a P-mode mask holds at most 256 colours")
        im = Image.fromarray(inverse.reshape(rgb.shape[:2]).astype(np.uint8))
        im.putpalette(colours.ravel().tolist())  # an L image with a palette becomes P
    elif mode == "L":
        im = im.convert("L")
    elif mode != "RGB":
        raise ValueError(f"unsupported mode {mode}")
    im.save(path)
    return path


def make_dataset(base, nested: bool = True, size=SIZE) -> Path:
    """Write the tiny dataset below `base`; return the dataset root (the folder holding AUS/ and RUS/).

    nested=True mimics the Kaggle download: base/abdominal_US/abdominal_US/{AUS,RUS}.
    """
    base = Path(base)
    root = base / "abdominal_US" / "abdominal_US" if nested else base
    for split, stems in (("train", AUS_TRAIN), ("test", AUS_TEST)):
        for stem in stems:
            write_image(root / "AUS" / "images" / split / f"{stem}.png", size=size)
            write_mask(root / "AUS" / "annotations" / split / f"{stem}.png", size=size)
    for stem in RUS_TRAIN:
        write_image(root / "RUS" / "images" / "train" / f"{stem}.jpg", size=size)
    for stem in RUS_TEST:
        write_image(root / "RUS" / "images" / "test" / f"{stem}.jpg", size=size)
    for stem, mode in RUS_TEST_MASKS.items():
        write_mask(root / "RUS" / "annotations" / "test" / f"{stem}.png", mode=mode, size=size)
    return root


def all_entries(root) -> set[str]:
    """Every file below `root` (symlinks included, not followed) and every symlinked folder, relative, POSIX."""
    root = Path(root)
    found = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            found.add((Path(dirpath) / name).relative_to(root).as_posix())
        for name in dirnames:
            p = Path(dirpath) / name
            if p.is_symlink():
                found.add(p.relative_to(root).as_posix())
    return found
