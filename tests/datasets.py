"""The tests' one builder of synthetic data, its palette and layout read from config.yaml.

Reusable by any test module (`from datasets import make_dataset, dataset_cfg`;
tests/ is on sys.path under pytest's default rootdir-based import mode).
Nothing here depends on the demo generator: every file is built from a few
numpy lines, so a failing test points at the code under test, not at the data.

- `make_dataset`: a raw dataset in the reference layout (images and colour
  masks only), for the manifest and mask-decoding stages.
- `Frame` and `write_frames`: frames a test drew (an image and its colour
  mask, `colour(labels)`), written as the stages after the manifest read
  them: the dataset root, manifest.csv, manifest_issues.csv, labels/*.npy,
  labels/decode_report.csv and splits.csv, in the contract formats.
- `fan_mask` and `fan_frame`: in-memory ultrasound-like frames (the remedies).

Layout written by `make_dataset` (sizes 20x16 unless told otherwise):

    AUS/images/train      ct1-1 ct1-2 ct2-1 ct2-2 ct3-1 ct5-1 .png   (all annotated)
    AUS/images/test       ct4-1 ct4-2 .png                           (all annotated)
    RUS/images/train      a1 a2 b1 .jpg                              (no annotations)
    RUS/images/test       c1 c2 d1 .jpg                              (c1: RGBA mask, d1: P mask)
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from usseg.config import load_config
from usseg.contracts import DECODE_REPORT_COLUMNS, SPLIT_COLUMNS

# config.yaml's dataset section (palette, layout, subject patterns), read, not
# written out again: the test data follow whatever the default run uses.
DATASET_CFG = load_config(Path(__file__).resolve().parents[1] / "config.yaml")["dataset"]

PALETTE = np.array([c["rgb"] for c in DATASET_CFG["classes"]], dtype=np.uint8)
NAMES = [c["name"] for c in DATASET_CFG["classes"]]
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


def make_dataset(base, nested: bool = True, size=SIZE, modalities=("AUS", "RUS")) -> Path:
    """Write the tiny dataset below `base`; return the dataset root (the folder holding AUS/ and RUS/).

    nested=True mimics the Kaggle download: base/abdominal_US/abdominal_US/{AUS,RUS}.
    modalities=("RUS",) writes the real images only, the reference dataset's real part: every
    label is in the test split, so nothing can be trained on it.
    """
    base = Path(base)
    root = base / "abdominal_US" / "abdominal_US" if nested else base
    for split, stems in (("train", AUS_TRAIN), ("test", AUS_TEST)) if "AUS" in modalities else ():
        for stem in stems:
            write_image(root / "AUS" / "images" / split / f"{stem}.png", size=size)
            write_mask(root / "AUS" / "annotations" / split / f"{stem}.png", size=size)
    if "RUS" not in modalities:
        return root
    for stem in RUS_TRAIN:
        write_image(root / "RUS" / "images" / "train" / f"{stem}.jpg", size=size)
    for stem in RUS_TEST:
        write_image(root / "RUS" / "images" / "test" / f"{stem}.jpg", size=size)
    for stem, mode in RUS_TEST_MASKS.items():
        write_mask(root / "RUS" / "annotations" / "test" / f"{stem}.png", mode=mode, size=size)
    return root


# ----------------------------------------------------------------------------- other layouts (own data)

# The palette of the own-data datasets: not config.yaml's, so nothing of the reference carries over.
OWN_PALETTE = {"background": (0, 0, 0), "organ": (220, 40, 40), "lesion": (40, 200, 60)}


def soft_disk_mask(name: str, size=(48, 40), classes=("organ", "lesion"), index: bool = False) -> np.ndarray:
    """An (H, W, 3) colour mask in OWN_PALETTE with anti-aliased borders (blended colours between a class
    and the background), or with `index` an (H, W) uint8 map of class indices; placed by `name`."""
    w, h = size
    rng = np.random.default_rng(_seed(name))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    labels = np.zeros((h, w), np.uint8)
    rgb = np.zeros((h, w, 3), np.float64)
    for k, cls in enumerate(classes, start=1):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        radius = (0.28 if k == 1 else 0.12) * min(w, h)
        alpha = np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1)  # one blended pixel round the edge
        labels[alpha >= 0.5] = k
        rgb = rgb * (1 - alpha[..., None]) + alpha[..., None] * np.array(OWN_PALETTE[cls], np.float64)
    return labels if index else np.rint(rgb).astype(np.uint8)


def _own_frame(image_path: Path, mask_path: Path | None, name: str, size, index: bool) -> None:
    labels = soft_disk_mask(name, size, index=True)
    rng = np.random.default_rng(_seed(name) + 1)
    image = (60 + 80 * labels + rng.normal(0, 12, labels.shape)).clip(0, 255).astype(np.uint8)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path)
    if mask_path is not None:
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        mask = labels if index else soft_disk_mask(name, size)
        Image.fromarray(mask).save(mask_path)


def make_own_dataset(base, kind: str, size=(48, 40)) -> Path:
    """A dataset in another layout than the reference's, below `base` (returned: the folder to describe).

    renamed: hospital_export/{sim,clinic}/{images,masks}/{train,test}/; sim s01_1.png.. all labeled,
        clinic p1-1.jpg.. labeled only in test (as the reference's real images), colour masks in
        OWN_PALETTE with anti-aliased borders.
    flat_index: images/ and labels/ directly in the folder (one modality, no split folders),
        case01_frame1.png..; class-index masks (0 background, 1 organ, 2 lesion).
    """
    base = Path(base)
    if kind == "renamed":
        root = base / "hospital_export"
        for split, subjects in (("train", range(1, 7)), ("test", range(7, 9))):
            for s in subjects:
                for f in range(1, 4 if split == "train" else 3):
                    name = f"s{s:02d}_{f}"
                    _own_frame(root / "sim/images" / split / f"{name}.png", root / "sim/masks" / split / f"{name}.png",
                               name, size, index=False)
        for split, subjects in (("train", range(1, 4)), ("test", range(4, 8))):
            for s in subjects:
                for f in range(1, 3):
                    name = f"p{s}-{f}"
                    mask = root / "clinic/masks" / split / f"{name}.png" if split == "test" else None
                    _own_frame(root / "clinic/images" / split / f"{name}.jpg", mask, name, size, index=False)
        return base
    if kind == "flat_index":
        root = base / "ultrasound_study"
        for s in range(1, 9):
            for f in range(1, 4):
                name = f"case{s:02d}_frame{f}"
                _own_frame(root / "images" / f"{name}.png", root / "labels" / f"{name}.png", name, size, index=True)
        return root
    raise ValueError(f"unknown layout kind {kind!r}")


def confirmed(description: str) -> str:
    """A description from usseg.describe with its guesses confirmed as they are: the lines of
    dataset.guesses_to_confirm deleted, as a user does once every GUESS is checked."""
    out, skipping = [], False
    for line in description.splitlines():
        if line.strip() == "guesses_to_confirm:":
            skipping = True
            continue
        if skipping and line.startswith("    - "):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out) + "\n"


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


# ----------------------------------------------------------------------------- frames in the contract formats


def colour(labels: np.ndarray) -> np.ndarray:
    """The (H, W, 3) colour mask of a label map, in config.yaml's palette."""
    return PALETTE[labels]


@dataclass
class Frame:
    """One image of a subject, with its colour mask (None: unlabeled) and its split."""

    modality: str
    orig_split: str
    subject: str
    number: int
    image: np.ndarray  # uint8 (H, W)
    mask: np.ndarray | None  # uint8 (H, W, 3) or None
    split: str = ""
    jpg: bool = False
    extra: dict = field(default_factory=dict)  # image_bytes: the image file's bytes as they are

    @property
    def stem(self) -> str:
        return f"{self.subject}-{self.number}" if self.modality == "AUS" else f"{self.subject}{self.number}"

    @property
    def image_id(self) -> str:
        return f"{self.modality}_{self.orig_split}_{self.stem}"


@dataclass
class Written:
    """Where `write_frames` put the dataset and the files the stages after the manifest read."""

    root: Path
    results: Path
    manifest_csv: Path
    issues_csv: Path
    labels_dir: Path
    splits_csv: Path

    def paths(self) -> dict:
        """The data stages' files (see `prepared`)."""
        return {"data_root": self.root, "manifest_csv": self.manifest_csv, "splits_csv": self.splits_csv,
                "labels_dir": self.labels_dir}


def prepared(config: dict, paths: dict, splits_csv=None, labels_dir=None):
    """The prepared data (usseg.data.PreparedData) that training, evaluation and the checks read, of a
    test dataset's `paths` (Written.paths()), optionally under another split or labels folder."""
    from usseg.data import PreparedData

    return PreparedData(
        config["dataset"], Path(paths["data_root"]), Path(paths["manifest_csv"]),
        Path(splits_csv or paths["splits_csv"]), Path(labels_dir or paths["labels_dir"]),
        int(config["diagnostics"]["fov_threshold"]),
    )


def decode(rgb: np.ndarray, max_distance: float = 60.0) -> tuple[np.ndarray, dict]:
    """Nearest palette colour per pixel (ties to the lower index) and the decode-report statistics."""
    flat = rgb.reshape(-1, 3).astype(np.int64)
    d2 = ((flat[:, None, :] - PALETTE[None].astype(np.int64)) ** 2).sum(-1)
    labels = d2.argmin(axis=1).astype(np.uint8)
    best = d2.min(axis=1)
    present = np.flatnonzero(np.bincount(labels, minlength=len(NAMES)))
    return labels.reshape(rgb.shape[:2]), {
        "off_palette_fraction": float(np.count_nonzero(best)) / best.size,
        "far_fraction": float(np.count_nonzero(best > max_distance**2)) / best.size,
        "max_distance": float(np.sqrt(best.max())),
        "classes_present": ";".join(NAMES[i] for i in present),
    }


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_frames(tmp, frames: list[Frame], issues=(), splits_override: dict | None = None) -> Written:
    """Write `frames` below `tmp`: the dataset root (data/abdominal_US) and results/ with the manifest,
    its issues, the decoded labels with their report, and the splits (`splits_override`: image_id -> split)."""
    tmp = Path(tmp)
    root = tmp / "data" / "abdominal_US"
    results = tmp / "results"
    labels_dir = results / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    manifest, report, splits = [], [], []
    for f in frames:
        ext = ".jpg" if f.jpg else ".png"
        image_path = f"{f.modality}/images/{f.orig_split}/{f.stem}{ext}"
        data = f.extra.get("image_bytes") or (_jpg_bytes(f.image) if f.jpg else _png_bytes(f.image))
        (root / image_path).parent.mkdir(parents=True, exist_ok=True)
        (root / image_path).write_bytes(data)
        mask_path, mask_sha = "", ""
        if f.mask is not None:
            mask_path = f"{f.modality}/annotations/{f.orig_split}/{f.stem}.png"
            mdata = _png_bytes(f.mask)
            (root / mask_path).parent.mkdir(parents=True, exist_ok=True)
            (root / mask_path).write_bytes(mdata)
            mask_sha = hashlib.sha256(mdata).hexdigest()
            labels, stats = decode(f.mask, DATASET_CFG["off_palette_distance"])
            np.save(labels_dir / f"{f.image_id}.npy", labels)
            flagged = stats["far_fraction"] > DATASET_CFG["max_off_palette_fraction"]
            report.append({
                "image_id": f.image_id, "mask_path": mask_path, **stats, "flagged": flagged,
                "flag_reason": "far from the palette" if flagged else "",
                # Decoded by nearest colour, as decode: nearest does.
                "encoding": "palette", "relabelled_fraction": 0.0, "decode": "nearest", "usable": True,
            })
        manifest.append({
            "image_id": f.image_id, "subject_id": f.subject, "modality": f.modality,
            "domain": DATASET_CFG["modalities"][f.modality]["domain"], "orig_split": f.orig_split,
            "image_path": image_path, "mask_path": mask_path, "has_mask": f.mask is not None,
            "width": f.image.shape[1], "height": f.image.shape[0],
            "sha256": hashlib.sha256(data).hexdigest(), "mask_sha256": mask_sha,
        })
        split = (splits_override or {}).get(f.image_id, f.split)
        splits.append({"image_id": f.image_id, "subject_id": f.subject, "split": split, "note": "",
                       "excluded_from": ""})
    pd.DataFrame(manifest).to_csv(results / "manifest.csv", index=False)
    pd.DataFrame(list(issues), columns=["path", "reason", "detail"]).to_csv(
        results / "manifest_issues.csv", index=False)
    pd.DataFrame(report, columns=DECODE_REPORT_COLUMNS).to_csv(labels_dir / "decode_report.csv", index=False)
    pd.DataFrame(splits, columns=SPLIT_COLUMNS).to_csv(results / "splits.csv", index=False)
    return Written(root, results, results / "manifest.csv", results / "manifest_issues.csv", labels_dir,
                   results / "splits.csv")


def eval_summary(per_subject: dict | None = None, classes=(), experiment: str = "e", test_set: str = "test_aus",
                 **extra) -> dict:
    """An evaluation's summary.json with every key its readers rely on (usseg.contracts.SUMMARY_KEYS):
    `per_subject` (subject -> class -> Dice) and `classes` (mean_foreground.classes)."""
    per_subject = per_subject or {}
    return {"experiment": experiment, "test_set": test_set, "n_images": 2 * len(per_subject),
            "n_subjects": len(per_subject), "dice": dict.fromkeys(classes), "dice_mean_foreground": None,
            "mean_foreground": {"classes": list(classes)}, "per_subject": per_subject, **extra}


# ----------------------------------------------------------------------------- in-memory frames


def fan_mask(size: int = 64) -> np.ndarray:
    """A sector (apex at the top centre, +-40 degrees, radius 0.95 * size) as an (H, W) bool mask."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = x - (size - 1) / 2, y + 2.0
    r = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dx, dy))
    return (r < 0.95 * size) & (np.abs(angle) < 40)


def fan_frame(size: int = 64, seed: int = 0, gain: float = 0.5, contrast: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, H, W) float32 in [0, 1], label (1, H, W) float32 classes 0-2) of a speckled fan with two organs."""
    rng = np.random.default_rng(seed)
    fan = fan_mask(size)
    y, x = np.mgrid[0:size, 0:size]
    label = np.zeros((size, size), np.float32)
    label[fan & ((y - size * 0.45) ** 2 + (x - size * 0.4) ** 2 < (size * 0.15) ** 2)] = 1
    label[fan & ((y - size * 0.7) ** 2 + (x - size * 0.6) ** 2 < (size * 0.1) ** 2)] = 2
    base = gain + contrast * np.where(label == 1, 1.0, np.where(label == 2, -1.0, 0.0))
    speckle = rng.gamma(6.0, 1 / 6.0, size=(size, size))
    image = np.where(fan, np.clip(base * speckle, 0.06, 1.0), 0.0).astype(np.float32)
    return image[None], label[None]
