"""`python -m usseg.describe FOLDER`: look at a dataset folder and write a dataset description to confirm.

A new user's data rarely has the reference's layout. This looks at the folder
once and writes an overlay (`--configfile`) with what it found, every line
commented: the modality folders and their images and masks folders, the
layout (original split folders or none), the file extensions, a subject
pattern that parses every image name (with the subjects it gives), the mask
encoding and the colours or class indices actually present with their pixel
and mask counts, and which colours look like anti-aliasing (a blend of two
classes on their border) rather than classes.

Nothing runs on a guess: what cannot be read from the files (which modality
is the target, which is simulated, the class names, a subject pattern that
only fits) is marked `GUESS` and listed under `dataset.guesses_to_confirm`,
and the workflow refuses to start until that key is deleted
(usseg.config.check_dataset_layout). Correcting a guess is editing one line.

Only the standard library, numpy and Pillow are used; masks are sampled (at
most MAX_MASKS, evenly over the sorted names) so a large dataset takes seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from usseg import rerun
from usseg.dataset_root import shown_path
from usseg.images import oriented

IMAGE_DIR_NAMES = ("images", "image", "imgs", "img")
MASK_DIR_NAMES = ("masks", "mask", "labels", "label", "annotations", "annotation", "gt", "ground_truth",
                  "groundtruth", "segmentations", "segmentation")
SPLIT_NAMES = ("train", "training", "val", "valid", "validation", "test", "testing")
TEST_NAMES = ("test", "testing")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
SKIPPED = {"__MACOSX", ".git", ".snakemake", ".dvc"}
MAX_DEPTH = 6
MAX_MASKS = 300
# Words in a modality folder's name that suggest simulated or real scanner images.
SYNTHETIC_WORDS = ("sim", "synth", "aus", "phantom", "render", "artificial", "ct")
REAL_WORDS = ("real", "clinic", "rus", "patient", "scan", "vivo", "hospital", "human")
# Subject patterns tried in order; the first that parses every name (and groups frames) is proposed.
SUBJECT_PATTERNS = (
    (r"^(.+?)[-_ ](?:frame|img|image|slice|f)?[-_ ]?\d+$", "the name before its last separator and frame number"),
    (r"^([A-Za-z]+)\d+$", "the letters before the frame number"),
    (r"^(.+?)[-_ .].*$", "the name up to its first separator"),
)
EVERY_IMAGE_ITS_OWN_SUBJECT = r"^(.+)$"
BLEND_TOLERANCE = 6.0  # RGB units: an anti-aliased border colour lies on the segment between two classes


# ----------------------------------------------------------------------------- finding the folders


@dataclass
class ModalityFound:
    """One modality folder: its images folder, masks folder and the files in them."""

    path: Path  # the modality folder (the one holding the images folder)
    images_dir: str
    masks_dir: str | None
    splits: list[str] = field(default_factory=list)  # split folder names; [] = flat
    images: dict[str, list[Path]] = field(default_factory=dict)  # split ("" when flat) -> image files
    masks: dict[str, list[Path]] = field(default_factory=dict)
    other_files: int = 0  # files in the images or masks folder that are not images (by extension)

    @property
    def n_images(self) -> int:
        return sum(len(v) for v in self.images.values())

    @property
    def n_masks(self) -> int:
        return sum(len(v) for v in self.masks.values())


def _is_data_file(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in ("thumbs.db", "desktop.ini")


def _files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly in `folder`, sorted."""
    images, other = [], []
    for p in sorted(folder.iterdir()):
        if p.is_file() and _is_data_file(p.name):
            (images if p.suffix.lower() in IMAGE_EXTENSIONS else other).append(p)
    return images, other


def _read_folder(mod: ModalityFound) -> None:
    """Fill the modality's splits, images and masks from its folders."""
    img_root = mod.path / mod.images_dir
    subdirs = sorted(p for p in img_root.iterdir() if p.is_dir() and p.name.lower() in SPLIT_NAMES)
    loose, other = _files(img_root)
    mod.other_files += len(other)
    if subdirs and len(loose) <= sum(len(_files(d)[0]) for d in subdirs):
        mod.splits = [d.name for d in subdirs]
    for split in mod.splits or [""]:
        files, other = _files(img_root / split)
        mod.images[split] = files
        mod.other_files += len(other)
        if mod.masks_dir and (mod.path / mod.masks_dir / split).is_dir():
            masks, other = _files(mod.path / mod.masks_dir / split)
            mod.masks[split] = masks
            mod.other_files += len(other)


def find_modalities(data_root: Path) -> list[ModalityFound]:
    """Every folder below data_root (at most MAX_DEPTH deep) holding an images folder, with its masks folder."""
    found = []
    for dirpath, dirnames, _ in os.walk(data_root):
        here = Path(dirpath)
        depth = len(here.relative_to(data_root).parts)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED and not d.startswith("."))
        names = {d.lower(): d for d in dirnames}
        image_dir = next((names[n] for n in IMAGE_DIR_NAMES if n in names), None)
        if image_dir is not None:
            mask_dir = next((names[n] for n in MASK_DIR_NAMES if n in names), None)
            mod = ModalityFound(here, image_dir, mask_dir)
            _read_folder(mod)
            if mod.n_images:
                found.append(mod)
            dirnames[:] = []  # a modality's own folders hold no further modalities
        elif depth >= MAX_DEPTH:
            dirnames[:] = []
    return found


# ----------------------------------------------------------------------------- names and subjects


def infer_subject_pattern(stems: list[str]) -> tuple[str, str, bool]:
    """(pattern, what it takes, parses every name) for a modality's image names without extension.

    The first of SUBJECT_PATTERNS that parses every name and gives fewer
    subjects than names (frames grouped); else the first that parses every
    name; else every image its own subject, which is marked as a guess.
    """
    fits = []
    for pattern, what in SUBJECT_PATTERNS:
        regex = re.compile(pattern)
        if stems and all(regex.match(s) for s in stems):
            subjects = {regex.match(s).group(1) for s in stems}
            fits.append((len(subjects) < len(stems), pattern, what))
    grouped = [f for f in fits if f[0]]
    if grouped:
        return grouped[0][1], grouped[0][2], True
    if fits:
        return fits[0][1], fits[0][2], True
    return EVERY_IMAGE_ITS_OWN_SUBJECT, "the whole name (every image its own subject)", False


def modality_name(folder_name: str) -> str:
    """A modality name usable in test set names (test_<name in lower case>) and file names."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", folder_name).strip("_-") or "images"
    return name if name[0].isalnum() else f"m{name}"


def guess_domain(name: str) -> str:
    low = name.lower()
    if any(w in low for w in REAL_WORDS):
        return "real"
    if any(w in low for w in SYNTHETIC_WORDS):
        return "synthetic"
    return "real"


# ----------------------------------------------------------------------------- masks


@dataclass
class MaskSummary:
    """What the sampled masks hold."""

    n_read: int = 0
    unreadable: list[str] = field(default_factory=list)
    single_channel: int = 0
    colour: int = 0
    pixels: Counter = field(default_factory=Counter)  # value (int) or colour (r, g, b) -> pixels
    masks_with: Counter = field(default_factory=Counter)  # value or colour -> masks holding it
    solid: set = field(default_factory=set)  # values or colours seen as a solid 3x3 block

    @property
    def encoding(self) -> str:
        """index when every mask is single-channel with small values; palette otherwise."""
        if self.single_channel and not self.colour and self.pixels and max(self.pixels) < 64:
            return "index"
        return "palette"


def _solid_values(codes: np.ndarray) -> set:
    """The values of `codes` (H, W) that fill a whole 3x3 block somewhere."""
    if codes.shape[0] < 3 or codes.shape[1] < 3:
        return set()
    centre = codes[1:-1, 1:-1]
    same = np.ones(centre.shape, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= codes[1 + dy : codes.shape[0] - 1 + dy, 1 + dx : codes.shape[1] - 1 + dx] == centre
    return {int(v) for v in np.unique(centre[same])}


def _unpack(code) -> tuple[int, int, int]:
    code = int(code)
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def analyse_masks(paths: list[Path]) -> MaskSummary:
    """Values or colours with their pixel and mask counts, over at most MAX_MASKS masks (evenly sampled)."""
    summary = MaskSummary()
    if len(paths) > MAX_MASKS:
        step = len(paths) / MAX_MASKS
        paths = [paths[int(i * step)] for i in range(MAX_MASKS)]
    for path in paths:
        try:
            with Image.open(path) as im:
                im = oriented(im)
                single = im.mode in ("L", "I", "I;16", "I;16L", "I;16B", "I;16N", "1")
                arr = np.asarray(im.convert("L") if im.mode == "1" else im if single else im.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            summary.unreadable.append(f"{shown_path(path.name)} ({type(exc).__name__})")
            continue
        summary.n_read += 1
        if arr.ndim == 2:
            summary.single_channel += 1
            codes = arr.astype(np.int64)
            keys = lambda v: int(v)  # noqa: E731
        else:
            summary.colour += 1
            a = arr.astype(np.int64)
            codes = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
            keys = _unpack
        values, counts = np.unique(codes, return_counts=True)
        for v, c in zip(values, counts):
            summary.pixels[keys(v)] += int(c)
            summary.masks_with[keys(v)] += 1
        summary.solid |= {keys(v) for v in _solid_values(codes)}
    return summary


def _segment_distance(c, a, b) -> float:
    c, a, b = (np.asarray(x, dtype=float) for x in (c, a, b))
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot(c - a, ab) / np.dot(ab, ab), 0, 1))
    return float(np.linalg.norm(c - (a + t * ab)))


def classify_colours(summary: MaskSummary) -> tuple[list, dict, list]:
    """(class colours, blends: colour -> the two classes it lies between, other colours) of colour masks.

    A class colour fills a solid 3x3 block somewhere; any other colour within
    BLEND_TOLERANCE of the segment between two class colours is anti-aliasing;
    the rest is neither (painted, compressed or foreign colours).
    """
    classes = sorted((c for c in summary.pixels if c in summary.solid), key=lambda c: -summary.pixels[c])
    blends, other = {}, []
    for c in sorted(summary.pixels, key=lambda c: -summary.pixels[c]):
        if c in summary.solid:
            continue
        best = min(((_segment_distance(c, a, b), a, b) for i, a in enumerate(classes) for b in classes[i + 1:]),
                   default=None)
        if best is not None and best[0] <= BLEND_TOLERANCE:
            blends[c] = (best[1], best[2])
        else:
            other.append(c)
    return classes, blends, other


# ----------------------------------------------------------------------------- the description


def _q(text: str) -> str:
    """A YAML single-quoted scalar (backslashes stay as they are)."""
    return "'" + str(text).replace("'", "''") + "'"


def _reference_names() -> dict:
    """Colour -> class name of config.yaml's palette (the reference), when config.yaml is beside the package."""
    config = Path(__file__).resolve().parents[2] / "config.yaml"
    try:
        classes = yaml.safe_load(config.read_text())["dataset"]["classes"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    return {tuple(c["rgb"]): str(c["name"]) for c in classes}


DISPLAY_COLOURS = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                   (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
                   (0, 128, 128), (230, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0)]


def _class_lines(summary: MaskSummary, guesses: list[str]) -> list[str]:
    """The classes: section lines (with their counts as comments) and the mask encoding line."""
    lines = []
    if summary.encoding == "index":
        values = sorted(summary.pixels)
        top = max(values)
        lines.append(f"  # Masks are single-channel class indices 0..{top} ({summary.n_read} masks read).")
        lines.append("  classes:")
        for i in range(top + 1):
            rgb = list(DISPLAY_COLOURS[i % len(DISPLAY_COLOURS)]) if i < len(DISPLAY_COLOURS) else [i, i, i]
            name = "background" if i == 0 else f"class_{i}"
            seen = (f"{summary.pixels[i]} pixels in {summary.masks_with[i]} masks" if i in summary.pixels
                    else "never present")
            lines.append(f"    - {{name: {name}, rgb: {rgb}}}  # index {i}: {seen}; GUESS: name")
        guesses.append("class names (indices 1.. are class_1, class_2, ...; index 0 is taken for background)")
        lines.append("  mask_encoding: index")
        return lines
    classes, blends, other = classify_colours(summary)
    reference = _reference_names()
    background = (0, 0, 0) if (0, 0, 0) in classes else (classes[0] if classes else (0, 0, 0))
    ordered = [background] + [c for c in classes if c != background]
    names = {c: "background" if i == 0 else reference.get(c, f"class_{i}") for i, c in enumerate(ordered)}
    grey = summary.single_channel and not summary.colour
    lines.append(f"  # {summary.n_read} masks read; they hold {'grey levels (read as colours)' if grey else 'colours'}. "
                 f"{len(classes)} fill solid areas somewhere: the classes below.")
    if blends:
        pairs: Counter = Counter()
        for c, (a, b) in blends.items():
            pairs[tuple(sorted((names[a], names[b])))] += summary.pixels[c]
        lines.append(f"  # {len(blends)} other colours ({sum(summary.pixels[c] for c in blends)} pixels) lie between two "
                     "classes: anti-aliased borders, each decoded to one of its two classes:")
        lines.append("  #   " + ", ".join(f"{a}/{b} {n} px" for (a, b), n in pairs.most_common()))
    if other:
        n_px = sum(summary.pixels[c] for c in other)
        top = ", ".join(f"{list(c)} {summary.pixels[c]} px" for c in other[:4])
        lines.append(f"  # {len(other)} colours ({n_px} pixels) are neither a class nor a blend of two (corners of three "
                     "classes, painted or compressed colours): a mask with more than "
                     f"dataset.max_off_palette_fraction of them is flagged. Most common: {top}")
    lines.append("  classes:")
    for c in ordered:
        lines.append(f"    - {{name: {names[c]}, rgb: {list(c)}}}  # {summary.pixels[c]} pixels in "
                     f"{summary.masks_with[c]} masks; GUESS: name")
    guesses.append("class names and which class is the background (class index order)")
    lines.append("  mask_encoding: palette")
    return lines


def describe(data_root: str | Path) -> str:
    """The commented dataset description (an overlay) of the dataset in `data_root`, as YAML text."""
    data_root = Path(data_root).resolve()
    found = find_modalities(data_root)
    if not found:
        raise SystemExit(
            f"usseg.describe: no folder named {' or '.join(IMAGE_DIR_NAMES)} with images in it below {data_root} "
            f"(searched {MAX_DEPTH} levels). Put each modality's images in an images/ folder (and masks in "
            "masks/ beside it), or write the description by hand (docs/own-data.md)."
        )
    return _render(data_root, found)


def _common_root(found: list[ModalityFound]) -> Path:
    if len(found) == 1:
        return found[0].path
    return Path(os.path.commonpath([m.path for m in found]))


def _render(data_root: Path, found: list[ModalityFound]) -> str:
    """The overlay's text (see `describe`)."""
    guesses: list[str] = []
    notes: list[str] = []
    root = _common_root(found)
    images_dir = Counter(m.images_dir for m in found).most_common(1)[0][0]
    masks_dir = Counter(m.masks_dir for m in found if m.masks_dir).most_common(1)
    masks_dir = masks_dir[0][0] if masks_dir else "masks"
    for m in found:
        if m.images_dir != images_dir or (m.masks_dir and m.masks_dir != masks_dir):
            notes.append(f"{shown_path(str(m.path))} names its folders {m.images_dir}/ and {m.masks_dir}/, not "
                         f"{images_dir}/ and {masks_dir}/: rename them, or its files are set aside")
    flat = not any(m.splits for m in found)
    splits = sorted({s for m in found for s in m.splits}, key=lambda s: (s.lower() in TEST_NAMES, s))
    test_split = next((s for s in splits if s.lower() in TEST_NAMES), None)
    mods = {}
    for m in found:
        name = modality_name(m.path.name if m.path != root or len(found) > 1 else data_root.name)
        while name in mods:
            name += "_2"
        mods[name] = m
    real = [n for n in mods if guess_domain(n) == "real"]
    target = real[0] if real else list(mods)[-1]
    all_masks = [p for m in found for files in m.masks.values() for p in files]
    summary = analyse_masks(all_masks)
    lines = _header(data_root, found, flat, notes)
    lines += ["dataset:"]
    lines += _class_lines(summary, guesses) if all_masks else [
        "  # No mask found: give classes (name and rgb, background first) by hand.",
        "  classes:", "    - {name: background, rgb: [0, 0, 0]}", "    - {name: class_1, rgb: [255, 255, 255]}",
    ]
    if not all_masks:
        guesses.append("classes (no mask was found to read them from)")
    lines += [f"  layout: {'flat' if flat else 'split_folders'}",
              f"  images_dir: {_q(images_dir)}", f"  annotations_dir: {_q(masks_dir)}"]
    if not flat:
        lines.append(f"  orig_splits: [{', '.join(_q(s) for s in splits)}]")
        if test_split is None:
            guesses.append(f"test_split (no split folder is named test; found {', '.join(splits)})")
            lines.append(f"  test_split: {_q(splits[-1])}  # GUESS: the split whose labeled images are the test set")
        else:
            lines.append(f"  test_split: {_q(test_split)}  # its labeled images form each modality's test set")
    mask_exts = Counter(p.suffix.lower() for p in all_masks)
    lines.append(f"  mask_extensions: [{', '.join(_q(e) for e in sorted(mask_exts) or ['.png'])}]"
                 + (f"  # {', '.join(f'{n} {e}' for e, n in mask_exts.most_common())}" if mask_exts else ""))
    lines.append("  modalities:")
    test_sets = []
    for name, m in mods.items():
        lines += _modality_lines(name, m, root, flat, test_split, guesses)
        labeled_test = sum(len(m.masks.get(s, [])) for s in ([""] if flat else [test_split] if test_split else []))
        if labeled_test:
            test_sets.append(f"test_{name.lower()}")
    lines.append(f"  target_modality: {_q(target)}  # GUESS: the modality a model must work on (real images)")
    guesses.append(f"target_modality: {target}")
    lines += _footer(mods, target, test_sets, guesses)
    return "\n".join(lines) + "\n"


def _modality_lines(name: str, m: ModalityFound, root: Path, flat: bool, test_split, guesses: list[str]) -> list:
    folder = m.path.relative_to(root).as_posix() if m.path != root else "."
    stems = [p.stem for files in m.images.values() for p in files]
    pattern, what, parses = infer_subject_pattern(stems)
    regex = re.compile(pattern)
    subjects = Counter(regex.match(s).group(1) for s in stems if regex.match(s))
    exts = Counter(p.suffix.lower() for files in m.images.values() for p in files)
    domain = guess_domain(name)
    per_split = ", ".join(f"{s or 'all'}: {len(m.images.get(s, []))} images, {len(m.masks.get(s, []))} masks"
                          for s in (m.splits or [""]))
    shown_subjects = ", ".join(f"{s} ({n})" for s, n in subjects.most_common(8))
    more = f", ... {len(subjects) - 8} more" if len(subjects) > 8 else ""
    out = [f"    {name}:  # {shown_path(folder)}/: {per_split}"]
    if folder != name:
        out.append(f"      folder: {_q(shown_path(folder))}")
    out.append(f"      domain: {domain}  # GUESS: synthetic (simulated) or real (scanner) images")
    guesses.append(f"domain of {name}: {domain}")
    out.append(f"      image_extensions: [{', '.join(_q(e) for e in sorted(exts))}]  # "
               + ", ".join(f"{n} {e}" for e, n in exts.most_common()))
    out.append(f"      subject_pattern: {_q(pattern)}")
    out.append(f"      # the subject is {what}: {len(subjects)} subjects from {len(stems)} images: "
               f"{shown_path(shown_subjects)}{more}")
    if not parses or len(subjects) == len(stems):
        out.append("      # GUESS: every image is its own subject here: frames of one patient would then be split "
                   "between train and test. Write the pattern of your file names (first group = subject).")
        guesses.append(f"subject_pattern of {name} (every image its own subject)")
    if not m.n_masks:
        out.append("      # no mask found here: its images can be diagnosed (domain shift, quality) but not trained on "
                   "or scored; keep it out of train_modalities and test_sets")
    if m.other_files:
        out.append(f"      # {m.other_files} file(s) in its folders are not images by their extension: the "
                   "manifest will list them as set aside")
    return out


def _header(data_root: Path, found: list[ModalityFound], flat: bool, notes: list[str]) -> list[str]:
    lines = [
        "# Dataset description written by `python -m usseg.describe` for",
        f"#   {shown_path(str(data_root))}",
        "# Check every line marked GUESS, correct it where it is wrong, then delete",
        "# dataset.guesses_to_confirm (the workflow refuses to run while it is there).",
        f"# Then: {rerun.command('report', '--cores', '8', '--configfile', 'THIS_FILE')}   (docs/own-data.md)",
        "# This dataset: section replaces config.yaml's as a whole; test_sets and the",
        "# experiments' train_modalities follow it (every modality but the target).",
        "",
        f"data_root: {_q(shown_path(str(data_root)))}",
        "",
    ]
    if flat:
        lines.insert(7, "# No train/test folders: the split draws each modality's test subjects (split.test_fraction).")
    for note in notes:
        lines.insert(7, f"# NOTE: {note}")
    return lines


def _footer(mods: dict, target: str, test_sets: list[str], guesses: list[str]) -> list[str]:
    lines = ["  guesses_to_confirm:"]
    lines += [f"    - {_q(g)}" for g in guesses]
    lines.append("")
    if test_sets:
        lines.append("# One test set per modality with labeled test images (found in the folders).")
        lines.append(f"test_sets: [{', '.join(test_sets)}]")
    else:
        lines.append("# No labeled test image was found: give test_sets by hand (test_<modality in lower case>).")
        lines.append(f"test_sets: [test_{target.lower()}]")
        guesses.append("test_sets")
    lines += [
        "",
        "# Experiments for any palette (config.yaml's name the reference's organs): every class, and",
        "# every class with class weights. Add or change experiments here (docs/experiments.md).",
        "experiments:",
        "  multiorgan_unet: {}",
        "  multiorgan_unet_weighted:",
        "    loss: {class_weights: auto}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m usseg.describe",
        description="Look at a dataset folder and write a dataset description (a --configfile overlay) to check.",
    )
    parser.add_argument("folder", help="the folder that holds the dataset (at any depth)")
    parser.add_argument("-o", "--output", help="write the description here (default: print it)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = parser.parse_args(argv)
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        parser.error(f"{folder} is not a folder")
    text = describe(folder)
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        parser.error(f"{out} exists; give another name or --force to overwrite it")
    out.write_text(text)
    n = len(yaml.safe_load(text)["dataset"].get("guesses_to_confirm") or [])
    print(f"usseg.describe: wrote {out}. Check the {n} value(s) marked GUESS, delete guesses_to_confirm, then run:\n"
          f"  {rerun.command('report', '--cores', '8', '--configfile', str(out))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
