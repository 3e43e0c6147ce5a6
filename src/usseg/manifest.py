"""Inventory of the dataset: which images exist, which have a mask, and which files were set aside.

Every file below the dataset root ends up in exactly one place: it is a
manifest image, the mask of a manifest image, or a row of the issues table
with a reason code and a sentence that names the file and says what to do.
Nothing disappears silently, so a broken download shows up here rather than
as a strange training curve.

Expected layout below the dataset root (names come from the dataset description,
config.yaml's `dataset:` or an overlay's):

    split_folders (the reference):
    {modality folder}/{images_dir}/{orig_split}/{stem}{image_ext}
    {modality folder}/{annotations_dir}/{orig_split}/{stem}{mask_ext}

    flat (no original split; the split step draws test subjects):
    {modality folder}/{images_dir}/{stem}{image_ext}
    {modality folder}/{annotations_dir}/{stem}{mask_ext}

A modality's folder is its name unless `folder` says otherwise ("." for the
dataset root itself: images/ and masks/ directly in it).

Reason codes of the issues table:

    empty_file, system_file, unexpected_location, unexpected_extension,
    not_an_image, unreadable_image, name_mismatch, duplicate_stem,
    orphan_annotation, mask_of_quarantined_image, unreadable_mask,
    mask_size_mismatch, symlink_outside_root, broken_symlink,
    symlinked_directory, not_a_regular_file, unsupported_pixels

Every name the file system allows is listed: bytes that are not UTF-8 (a
Latin-1 name from an old archive) are shown as \\xNN in every table
(usseg.dataset_root.shown_path) and read back through
usseg.dataset_root.dataset_file. An image id too long to be part of a file
name (results/labels/{image_id}.npy, nnU-Net's {image_id}_0000.png) is
shortened to a stable id that keeps its start and adds a hash (`image_id_of`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from usseg.contracts import ISSUE_COLUMNS, MANIFEST_COLUMNS
from usseg.dataset_root import find_dataset_root, shown_path, write_dataset_root
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.images import WIDE_MODES, ReadingRule, bit_depth_for, oriented_size

log = logging.getLogger("usseg.manifest")

# Metadata that file managers and archivers drop next to data; never data itself.
SYSTEM_FILE_NAMES = {".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", ".directory"}
# Snakemake writes this into every directory() output, e.g. the generated demo dataset.
WORKFLOW_FILE_NAMES = {".snakemake_timestamp"}
# Pillow modes a mask may come in: colour modes convert losslessly to RGB; the
# 16-bit greyscale ones may hold class indices (dataset.mask_encoding).
MASK_MODES = {"RGB", "RGBA", "P", "PA", "L", "LA", "1", "RGBX", "I;16", "I;16L", "I;16B", "I;16N", "I"}


# The longest image id, in bytes: it becomes part of file names with a suffix of up to
# 9 bytes (nnU-Net's {case}_0000.png), and some file systems (eCryptfs) allow 143.
MAX_IMAGE_ID_BYTES = 120
_ID_HASH_CHARS = 12


def image_id_of(modality: str, orig_split: str, stem: str) -> str:
    """The image id of a file: {modality}_{orig_split}_{stem} ({modality}_{stem} without an original split).

    An id longer than MAX_IMAGE_ID_BYTES keeps its start and ends in "~" and
    12 hex digits of the sha256 of the whole id: short enough for any derived
    file name, the same in every run, and distinct for distinct names.
    """
    full = f"{modality}_{orig_split}_{stem}" if orig_split else f"{modality}_{stem}"
    encoded = full.encode("utf-8", errors="surrogateescape")
    if len(encoded) <= MAX_IMAGE_ID_BYTES:
        return full
    digest = hashlib.sha256(encoded).hexdigest()[:_ID_HASH_CHARS]
    keep = encoded[: MAX_IMAGE_ID_BYTES - _ID_HASH_CHARS - 1].decode("utf-8", errors="ignore")
    return f"{keep}~{digest}"


# ----------------------------------------------------------------------------- file inspection


@dataclass
class _Inspected:
    ok: bool
    reason: str = ""
    error: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    sha256: str = ""
    value_range: tuple[float, float] | None = None  # (smallest, largest) pixel value beyond 8 bits (modes I, F)


def _inspect(path: Path) -> _Inspected:
    """Hash the file and decode it fully with Pillow (load() catches truncation)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _Inspected(False, "unreadable", f"{type(exc).__name__}: {exc}")
    if not data:
        return _Inspected(False, "empty_file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return _Inspected(
            False,
            "not_an_image",
            "Pillow does not recognise the content as an image",
            sha256=digest,
        )
    except Exception as exc:  # noqa: BLE001 -- Pillow raises many types for malformed headers
        return _Inspected(False, "unreadable", f"{type(exc).__name__}: {exc}", sha256=digest)
    try:
        with im:
            im.load()
            width, height = oriented_size(im)  # as displayed: a rotated photo's EXIF tag applied
            mode = im.mode
            value_range = im.getextrema() if mode in (*WIDE_MODES, "F") else None
    except Exception as exc:  # noqa: BLE001 -- and as many for malformed pixel data
        return _Inspected(False, "unreadable", f"{type(exc).__name__}: {exc}", sha256=digest)
    return _Inspected(True, width=width, height=height, mode=mode, sha256=digest, value_range=value_range)


def _inspect_all(paths: list[Path]) -> list[_Inspected]:
    # Pillow and hashlib release the GIL while decoding and hashing, so threads help.
    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    if workers == 1:
        return [_inspect(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_inspect, paths))


def _pixel_problem(rel: str, info: _Inspected) -> tuple[str, str] | None:
    """(reason, detail) for an image whose pixels have no known grey scale: floating point or negative."""
    if info.mode == "F":
        return "unsupported_pixels", (
            f"{rel} stores floating-point pixels (Pillow mode F), whose intended range is unknown; it is set "
            "aside. Re-export it as an 8- or 16-bit greyscale PNG."
        )
    if info.value_range is not None and info.value_range[0] < 0:
        return "unsupported_pixels", (
            f"{rel} holds negative pixel values (smallest {info.value_range[0]:g}); it is set aside. Re-export it "
            "as an 8- or 16-bit unsigned greyscale PNG."
        )
    return None


# ----------------------------------------------------------------------------- scanning


def _is_system_file(name: str) -> bool:
    return name.lower() in SYSTEM_FILE_NAMES or name.startswith("._")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Scan:
    """One pass over the dataset root; collects manifest rows and issue rows."""

    def __init__(self, root: Path, dataset: DatasetSpec):
        self.root = Path(root)
        self.real_root = os.path.realpath(self.root)
        self.spec = dataset
        self.modalities = dataset.modalities
        self.images_dir = dataset.images_dir
        self.annotations_dir = dataset.annotations_dir
        self.splits = dataset.orig_splits
        self.mask_exts = {e.lower() for e in dataset.mask_extensions}
        self.patterns = {m: re.compile(spec.subject_pattern) for m, spec in self.modalities.items()}
        self.issues: list[dict] = []
        # (modality, split) -> stem -> list of (rel, path) candidates
        self.images: dict[tuple[str, str], dict[str, list[tuple[str, Path]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.masks: dict[tuple[str, str], dict[str, list[tuple[str, Path]]]] = defaultdict(
            lambda: defaultdict(list)
        )

    def issue(self, rel: str, reason: str, detail: str) -> None:
        self.issues.append({"path": rel, "reason": reason, "detail": detail})

    def layout_hint(self) -> str:
        return self.spec.layout_hint()

    # -- walking

    def walk(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames.sort()
            here = Path(dirpath)
            for d in list(dirnames):
                p = here / d
                if p.is_symlink():
                    dirnames.remove(d)
                    self._symlinked_dir(p)
            for name in sorted(filenames):
                self._classify(here / name)

    def rel(self, path: Path) -> str:
        """The path below the root as text: bytes that are not UTF-8 shown as \\xNN (shown_path)."""
        return shown_path(path.relative_to(self.root).as_posix())

    def _symlinked_dir(self, p: Path) -> None:
        rel = self.rel(p)
        target = os.path.realpath(p)
        shown, root = shown_path(target), shown_path(str(self.root))
        if not os.path.exists(target):
            self.issue(
                rel,
                "broken_symlink",
                f"{rel}/ is a symbolic link to {shown_path(os.readlink(p))}, which does not exist; remove the link.",
            )
        elif not _within(target, self.real_root):
            self.issue(
                rel,
                "symlink_outside_root",
                f"{rel}/ is a symbolic link to the folder {shown}, outside the dataset folder {root}; "
                "it is not followed. Copy that folder into the dataset instead of linking it.",
            )
        else:
            self.issue(
                rel,
                "symlinked_directory",
                f"{rel}/ is a symbolic link to {shown}, a folder inside the dataset; it is not followed, so "
                "its files are counted once at their real location. Remove the link if it is not needed.",
            )

    def _classify(self, path: Path) -> None:
        """Record the file at `path` as an image or mask candidate, or as an issue."""
        rel = self.rel(path)
        name = rel.rsplit("/", 1)[-1]
        if self._not_data(path, rel, name):
            return
        place = self.spec.locate(rel)
        if place is None:
            self.issue(
                rel,
                "unexpected_location",
                f"{rel} is not where the dataset layout expects files ({self.layout_hint()}); it is ignored. "
                "Move it into place, move it out of the dataset folder, or describe the layout in your "
                "dataset description (dataset.layout, dataset.modalities and their folder, dataset.orig_splits; "
                "docs/own-data.md).",
            )
            return
        modality, kind, split, _ = place
        suffix = os.path.splitext(name)[1]
        stem = name[: len(name) - len(suffix)]
        suffix = suffix.lower()
        if kind == self.images_dir:
            allowed = [e.lower() for e in self.modalities[modality].image_extensions]
            if suffix not in allowed:
                self.issue(
                    rel,
                    "unexpected_extension",
                    f"{rel}: extension '{suffix}' is not an image extension of {modality} "
                    f"({', '.join(allowed)}); it is ignored. Move it out of the dataset or add the extension "
                    f"to dataset.modalities.{modality}.image_extensions.",
                )
                return
            self.images[(modality, split)][stem].append((rel, path))
        else:
            if suffix not in self.mask_exts:
                self.issue(
                    rel,
                    "unexpected_extension",
                    f"{rel}: extension '{suffix}' is not a mask extension ({', '.join(sorted(self.mask_exts))}); "
                    "it is ignored. Move it out of the dataset or add the extension to dataset.mask_extensions.",
                )
                return
            self.masks[(modality, split)][stem].append((rel, path))

    def _not_data(self, path: Path, rel: str, name: str) -> bool:
        """Whether the file is no candidate at all, whatever its place (a marker, metadata, a link that is not
        followed, a pipe or device); records its issue when it is."""
        if name in WORKFLOW_FILE_NAMES:
            self.issue(
                rel,
                "workflow_file",
                f"{rel} is Snakemake's marker of a folder it generated, not data; it is ignored.",
            )
            return True
        if _is_system_file(name):
            self.issue(
                rel,
                "system_file",
                f"{rel} is operating-system metadata, not data; it is ignored and can be deleted.",
            )
            return True
        if path.is_symlink():
            target = os.path.realpath(path)
            if not os.path.exists(target):
                self.issue(
                    rel,
                    "broken_symlink",
                    f"{rel} is a symbolic link to {shown_path(os.readlink(path))}, which does not exist; "
                    "replace it with the real file or remove it.",
                )
                return True
            if not _within(target, self.real_root):
                self.issue(
                    rel,
                    "symlink_outside_root",
                    f"{rel} is a symbolic link to {shown_path(target)}, outside the dataset folder "
                    f"{shown_path(str(self.root))}; it is not followed. Copy the file into the dataset instead of "
                    "linking it.",
                )
                return True
        if not path.is_file():  # a FIFO or device would block or mislead the reader
            self.issue(
                rel,
                "not_a_regular_file",
                f"{rel} is not a regular file (a pipe, socket or device); it is ignored. Remove it from the "
                "dataset folder.",
            )
            return True
        return False

    # -- pairing and reading

    @staticmethod
    def _split_duplicates(groups, issue, what):
        """Keep stems with one file; set aside every file of an ambiguous stem."""
        unique = {}
        for stem, files in sorted(groups.items()):
            if len(files) == 1:
                unique[stem] = files[0]
                continue
            names = ", ".join(Path(r).name for r, _ in files)
            for rel, _ in files:
                issue(
                    rel,
                    "duplicate_stem",
                    f"{rel} shares the name stem '{stem}' with another {what} in the same folder ({names}); which "
                    f"one pairs with the {'mask' if what == 'image' else 'image'} is ambiguous, so all of them are "
                    "set aside. Keep one of these files and delete the others.",
                )
        return unique

    def build(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(manifest, issues) of the dataset root: walk it, pair the images with their masks, read each file
        once. Sets `reading` (the dataset's reading rule) and `large` (the images read down-sampled)."""
        self.walk()
        keys = sorted(set(self.images) | set(self.masks))
        # image key (modality, split, stem) -> (its file or files, reason it was set aside)
        set_aside: dict[tuple[str, str, str], tuple[str, str]] = {}
        image_jobs = self._named_images(keys, set_aside)
        usable, wide = self._readable_images(image_jobs, set_aside)
        self._attach_masks(self._paired_masks(keys, usable, set_aside), usable)
        self.reading = self.decide_reading(wide)
        rows = self._sizes_as_read(sorted(usable.values(), key=lambda r: r["image_id"]))
        manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
        manifest["has_mask"] = manifest["has_mask"].astype(bool)
        manifest["width"] = manifest["width"].astype("int64")
        manifest["height"] = manifest["height"].astype("int64")
        issues = pd.DataFrame(self.issues, columns=ISSUE_COLUMNS)
        issues = issues.sort_values(["path", "reason"], kind="stable").reset_index(drop=True)
        return manifest, issues

    def _named_images(self, keys, set_aside) -> list[tuple[str, str, str, str, Path]]:
        """(modality, split, stem, rel, path) of each image file alone with its stem whose name matches its
        modality's subject pattern; the others are set aside (an issue, and their key in `set_aside`)."""
        image_jobs: list[tuple[str, str, str, str, Path]] = []
        for modality, split in keys:
            groups = self.images.get((modality, split), {})
            images = self._split_duplicates(groups, self.issue, "image")
            for stem, files in groups.items():
                if len(files) > 1:
                    set_aside[(modality, split, stem)] = (
                        ", ".join(r for r, _ in files),
                        "duplicate_stem",
                    )
            pattern = self.patterns[modality]
            for stem, (rel, path) in images.items():
                if not pattern.match(stem):
                    set_aside[(modality, split, stem)] = (rel, "name_mismatch")
                    self.issue(
                        rel,
                        "name_mismatch",
                        f"{rel}: the name stem '{stem}' does not match "
                        f"dataset.modalities.{modality}.subject_pattern '{pattern.pattern}', so its subject is "
                        "unknown and it is set aside. Rename the file to the dataset's naming scheme or fix "
                        "the pattern in your dataset description.",
                    )
                    continue
                image_jobs.append((modality, split, stem, rel, path))
        return image_jobs

    def _readable_images(self, image_jobs, set_aside) -> tuple[dict[tuple[str, str, str], dict], dict[str, int]]:
        """Read every named image: (key -> manifest row without a mask yet, for the images that decode and have a
        known grey scale; image path -> largest pixel value, for those beyond 8 bits). The others are set aside."""
        inspected = _inspect_all([job[4] for job in image_jobs])
        usable: dict[tuple[str, str, str], dict] = {}
        wide: dict[str, int] = {}  # image path -> its largest pixel value, for images beyond 8 bits
        for (modality, split, stem, rel, _path), info in zip(image_jobs, inspected):
            key = (modality, split, stem)
            problem = self._image_problem(rel, info) if not info.ok else _pixel_problem(rel, info)
            if problem is not None:
                self.issue(rel, *problem)
                set_aside[key] = (rel, problem[0])
                continue
            if info.value_range is not None:
                wide[rel] = int(info.value_range[1])
            usable[key] = {
                "image_id": image_id_of(modality, split, stem),
                "subject_id": self.patterns[modality].match(stem).group(1),
                "modality": modality,
                "domain": self.modalities[modality].domain,
                "orig_split": split,
                "image_path": rel,
                "mask_path": "",
                "has_mask": False,
                "width": info.width,
                "height": info.height,
                "sha256": info.sha256,
                "mask_sha256": "",
            }
        return usable, wide

    def _paired_masks(self, keys, usable, set_aside) -> list[tuple[tuple[str, str, str], str, Path]]:
        """(image key, rel, path) of each mask file alone with its stem whose image is usable; a mask of an image
        set aside, or of none, is an issue."""
        mask_jobs: list[tuple[tuple[str, str, str], str, Path]] = []
        for modality, split in keys:
            masks = self._split_duplicates(
                self.masks.get((modality, split), {}), self.issue, "mask"
            )
            for stem, (rel, path) in masks.items():
                key = (modality, split, stem)
                if key in usable:
                    mask_jobs.append((key, rel, path))
                elif key in set_aside:
                    img_rel, img_reason = set_aside[key]
                    self.issue(
                        rel,
                        "mask_of_quarantined_image",
                        f"{rel} belongs to {img_rel}, which was set aside ({img_reason}); the mask is unused "
                        "until that image is fixed (see the image's row in this table).",
                    )
                else:
                    self.issue(
                        rel,
                        "orphan_annotation",
                        f"{rel} has no image named '{stem}' with an image extension in "
                        f"{self.spec.folder_of(modality, self.images_dir, split)}/, so it cannot be paired and is "
                        "set aside. Add the missing image, fix the mask's name, or delete the mask.",
                    )
        return mask_jobs

    def _attach_masks(self, mask_jobs, usable) -> None:
        """Read every paired mask; one that decodes, in a mask mode, at its image's size goes into its image's
        row in `usable`; any other is an issue, and its image stays without a mask."""
        mask_info = _inspect_all([job[2] for job in mask_jobs])
        for (key, rel, _path), info in zip(mask_jobs, mask_info):
            row = usable[key]
            if not info.ok:
                what = {
                    "empty_file": "is empty (0 bytes)",
                    "not_an_image": "is not an image Pillow recognises",
                }.get(info.reason, "could not be decoded")
                reason = "empty_file" if info.reason == "empty_file" else "unreadable_mask"
                self.issue(
                    rel,
                    reason,
                    f"{rel} {what}{' (' + info.error + ')' if info.error else ''}; the image "
                    f"{row['image_path']} is kept without a mask. Re-export or re-download the mask.",
                )
                continue
            if info.mode not in MASK_MODES:
                self.issue(
                    rel,
                    "unreadable_mask",
                    f"{rel} has Pillow mode {info.mode}, which is not a colour-coded mask "
                    f"(expected one of {', '.join(sorted(MASK_MODES))}); the image {row['image_path']} is "
                    "kept without a mask. Re-export the mask as an 8-bit RGB PNG.",
                )
                continue
            if (info.width, info.height) != (row["width"], row["height"]):
                self.issue(
                    rel,
                    "mask_size_mismatch",
                    f"{rel} is {info.width}x{info.height} pixels but its image {row['image_path']} is "
                    f"{row['width']}x{row['height']} (width x height); the mask cannot be aligned, so the "
                    "image is kept without a mask. Re-export the mask at the image's size.",
                )
                continue
            row.update(mask_path=rel, has_mask=True, mask_sha256=info.sha256)

    def _sizes_as_read(self, rows: list[dict]) -> list[dict]:
        """`rows` with the sizes as every later stage reads them (by `reading`); records the images read
        down-sampled in `large` and their number in `reading`."""
        self.large = []  # (path, width, height) of images read down-sampled
        for row in rows:
            size = self.reading.size(row["width"], row["height"])
            if size != (row["width"], row["height"]):
                self.large.append((row["image_path"], row["width"], row["height"]))
            row["width"], row["height"] = size
        self.reading = dataclasses.replace(self.reading, downsampled=len(self.large))
        return rows

    def decide_reading(self, wide: dict[str, int]) -> ReadingRule:
        """The dataset's reading rule (usseg.images): the declared bit depth, or the one the largest value of
        any image beyond 8 bits needs; the size limit. DataError when an image exceeds a declared depth."""
        declared = self.spec.bit_depth
        max_side = self.spec.max_image_side
        if not wide:
            return ReadingRule(8 if declared == "auto" else int(declared), max_side,
                               "no image stores more than 8 bits per pixel: read as stored")
        top_path, top = max(wide.items(), key=lambda kv: (kv[1], kv[0]))
        if declared == "auto":
            bits = bit_depth_for(top)
            return ReadingRule(bits, max_side, (
                f"{len(wide)} image(s) store more than 8 bits per pixel; the largest value of any of them is "
                f"{top} ({top_path}), so all are read as {bits}-bit: value v becomes round(v x 255 / "
                f"{2**bits - 1}), the same in every frame (inferred from the whole dataset; dataset.bit_depth "
                "declares it)"))
        bits = int(declared)
        beyond = sorted(p for p, v in wide.items() if v > 2**bits - 1)
        if beyond:
            raise DataError(
                f"dataset.bit_depth is {bits}, but {len(beyond)} image(s) hold larger values (e.g. {beyond[0]}: "
                f"{wide[beyond[0]]} > {2**bits - 1}). Declare the bit depth the scanner really uses, or set "
                "dataset.bit_depth: auto to infer it from the whole dataset."
            )
        return ReadingRule(bits, max_side, (
            f"{len(wide)} image(s) store more than 8 bits per pixel; all are read as {bits}-bit, as "
            f"dataset.bit_depth declares: value v becomes round(v x 255 / {2**bits - 1})"))

    def warn_large(self, manifest: pd.DataFrame) -> None:
        """Log the images read down-sampled, with their size and what reading them whole would cost."""
        if not self.large:
            return
        median = float(np.median(manifest["width"].to_numpy() * manifest["height"].to_numpy()))
        path, width, height = max(self.large, key=lambda x: x[1] * x[2])
        w, h = self.reading.size(width, height)
        log.warning(
            "%d image(s) are larger than dataset.max_image_side = %d px and are read down-sampled by a whole "
            "factor (the largest, %s, is %dx%d = %.1f Mpx, read as %dx%d). Read whole, that one image would "
            "cost as much memory and time as %.0f images of the dataset's median size (%.2f Mpx as read): "
            "about %.0f MB per float copy in every stage. Raise or remove the limit (dataset.max_image_side: "
            "null) to read them whole.",
            len(self.large), self.reading.max_side, path, width, height, width * height / 1e6, w, h,
            width * height / max(median, 1.0), median / 1e6, width * height * 4 / 1e6,
        )

    def _image_problem(self, rel: str, info: _Inspected) -> tuple[str, str]:
        if info.reason == "empty_file":
            return (
                "empty_file",
                f"{rel} is empty (0 bytes); re-download or re-export it, or delete it.",
            )
        if info.reason == "not_an_image":
            return "not_an_image", (
                f"{rel} has an image extension but its content is not an image ({info.error}); it may be a "
                "renamed or partially downloaded file. Replace it with the real image or delete it."
            )
        return "unreadable_image", (
            f"{rel} could not be decoded ({info.error}); it is probably truncated or corrupt. Re-download it."
        )

    def check_modalities(self, manifest: pd.DataFrame, issues_hint: str) -> None:
        problems = []
        for modality in self.modalities:
            if (manifest["modality"] == modality).any():
                continue
            images = "/".join(p for p in (self.modalities[modality].folder_path, self.images_dir) if p)
            folder = shown_path(str(self.root / images))
            exts = ", ".join(self.modalities[modality].image_extensions)
            n_set_aside = sum(1 for i in self.issues if i["path"].startswith(f"{images}/"))
            if not (self.root / images).is_dir():
                found = "that folder does not exist"
            elif n_set_aside:
                found = f"{n_set_aside} file(s) there were all set aside ({issues_hint})"
            else:
                found = "it holds no image files"
            where = f"{images}/<name>" if self.spec.is_flat else f"{images}/{{{','.join(self.splits)}}}/<name>"
            problems.append(
                f"modality {modality} has no usable images in {folder} ({found}). Expected "
                f"{where}{{{exts}}}. Put the images there, or remove {modality} from dataset.modalities in "
                "your dataset description."
            )
        if problems:
            raise DataError(" ".join(problems))


# ----------------------------------------------------------------------------- public API


def _scan(data_root, dataset: DatasetSpec | Mapping) -> _Scan:
    dataset = DatasetSpec.of(dataset)
    root = find_dataset_root(data_root, dataset.root_entries)
    return _Scan(root, dataset)


def build_manifest(data_root, dataset: DatasetSpec | Mapping) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, issues) for the dataset found at or below `data_root`.

    Raises DataError when the dataset root cannot be found or a configured
    modality has no usable image.
    """
    scan = _scan(data_root, dataset)
    manifest, issues = scan.build()
    scan.check_modalities(manifest, "see the issues table")
    return manifest, issues


def write_manifest(data_root, dataset: DatasetSpec | Mapping, strict: bool, manifest_csv, issues_csv, root_json=None,
                   kept_issues_csv=None) -> None:
    """Build the manifest and write both CSVs; under `strict`, any issue raises DataError.

    The issues CSV is written before any error so the user can read it; a
    failed job's outputs are deleted by Snakemake, issues_csv among them, so
    the errors name `kept_issues_csv` (a copy outside the rule's outputs,
    beside its log) when it is given.
    `root_json`, when given, records the dataset root found below data_root
    for the later stages (usseg.dataset_root.read_dataset_root).
    """
    scan = _scan(data_root, dataset)
    manifest, issues = scan.build()
    scan.warn_large(manifest)
    if root_json is not None:
        write_dataset_root(data_root, scan.root, root_json, scan.reading)
    for path in (issues_csv, kept_issues_csv):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            issues.to_csv(path, index=False)
    issues_csv = Path(kept_issues_csv if kept_issues_csv is not None else issues_csv)
    scan.check_modalities(manifest, f"see {issues_csv}")
    manifest_csv = Path(manifest_csv)
    manifest_csv.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(manifest_csv, index=False)
    set_aside = issues[issues["reason"] != "workflow_file"]
    if strict and len(set_aside):
        issues = set_aside
        shown = 20
        lines = [f"  {r.path}: {r.reason}" for r in issues.head(shown).itertuples()]
        more = f"\n  ... and {len(issues) - shown} more" if len(issues) > shown else ""
        raise DataError(
            f"strict mode: {len(issues)} file(s) below {scan.root} were set aside (details in {issues_csv}):\n"
            + "\n".join(lines)
            + more
            + "\nFix or remove these files, or set strict: false in config.yaml to continue without them."
        )
