"""The plan: every file of the demo dataset as a task (sizes, subjects, views),
and the run that draws the tasks, in parallel or not, to the same bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from usseg.demo.anatomy import (
    ORGANS,
    ORPHAN_SUBJECT,
    REAL_LABELED,
    _rng,
    frame_pose,
    subject_anatomy,
)
from usseg.demo.quirks import (
    AUS_MASK_MODES,
    MASK_SUPERSAMPLING,
    RUS_MASK_MODES,
    TINT_RGB,
    _palette_colours,
    _save_image,
    _save_mask,
    real_mask,
    simulator_mask,
)
from usseg.demo.rendering import _fan, label_map, render_image

# Real test subjects with annotations and their labeled frame counts (the reference's).
RUS_TEST_LABELED = {"h": 26, "a": 16, "g": 10, "b": 8}
RUS_TRAIN_SUBJECTS = ("c", "d", "e", "f", "i", "j", "k")
TINTED_SUBJECT = "g"


@dataclass(frozen=True)
class SizeSpec:
    width: int
    height: int
    aus_train: tuple[int, ...]  # frames per subject ct1.., in order
    aus_test: tuple[int, ...]  # frames per test subject ct10..
    rus_train: tuple[int, ...]  # frames per subject c, d, e, ...
    rus_test_labeled: dict  # subject -> labeled frames
    rus_test_unlabeled: dict  # subject -> unlabeled frames


SIZES = {
    # Reference counts: AUS 633 + 293, RUS 404 + 213 (60 labeled + 153 not), 450 x 460.
    "full": SizeSpec(
        width=450,
        height=460,
        aus_train=(74, 69, 78, 62, 71, 75, 66, 64, 74),
        aus_test=(76, 71, 72, 74),
        rus_train=(61, 55, 60, 57, 58, 54, 59),
        rus_test_labeled=RUS_TEST_LABELED,
        rus_test_unlabeled={"h": 38, "a": 36, "g": 42, "b": 37},
    ),
    "small": SizeSpec(
        width=160,
        height=160,
        aus_train=(16, 14, 18, 15, 17, 14, 16, 18, 15),
        aus_test=(10, 10, 9, 11),
        rus_train=(6, 5, 7, 6, 6, 5, 7),
        rus_test_labeled=RUS_TEST_LABELED,
        rus_test_unlabeled={"h": 4, "a": 3, "g": 3, "b": 2},
    ),
    "tiny": SizeSpec(
        width=64,
        height=64,
        aus_train=(3, 3, 3, 3, 3),
        aus_test=(2, 2),
        rus_train=(2, 2),
        rus_test_labeled={"h": 3, "a": 2, "g": 2, "b": 1},
        rus_test_unlabeled={"h": 1, "a": 0, "g": 0, "b": 0},
    ),
}

AUS_TEST_FIRST_ID = 10  # simulator test subjects are ct10, ct11, ...
# Views: most subjects are right-upper-quadrant scans (liver, gallbladder, kidney);
# some are left-side scans (spleen, kidney and the tip of the liver).
AUS_LEFT_VIEW = {("train", 3), ("train", 7), ("test", 2)}
RUS_LEFT_VIEW = {"e", "j", "g"}


# ----------------------------------------------------------------------------- plan and run


@dataclass(frozen=True)
class FrameTask:
    modality: str
    split: str  # train | test
    subject: str
    frame: int
    n_frames: int
    left_view: bool
    image: bool  # write the image
    mask: str | None  # None, or the mask file mode: RGB | RGBA | P
    tinted: bool = False


def plan(size: str) -> list[FrameTask]:
    """Every file of the dataset as a task, in a fixed order."""
    spec = SIZES[size]
    tasks = []
    for split, counts in (("train", spec.aus_train), ("test", spec.aus_test)):
        first = 1 if split == "train" else AUS_TEST_FIRST_ID
        for i, n in enumerate(counts):
            subject = f"ct{first + i}"
            mode = AUS_MASK_MODES.get((split, i), "RGB")
            for k in range(1, n + 1):
                tasks.append(
                    FrameTask("AUS", split, subject, k, n, (split, i) in AUS_LEFT_VIEW, True, mode)
                )
    for subject, n in zip(RUS_TRAIN_SUBJECTS, spec.rus_train):
        for k in range(1, n + 1):
            tasks.append(
                FrameTask("RUS", "train", subject, k, n, subject in RUS_LEFT_VIEW, True, None)
            )
    for subject, n_lab in spec.rus_test_labeled.items():
        n = n_lab + spec.rus_test_unlabeled[subject]
        labeled = _labeled_frames(n, n_lab)
        mode = RUS_MASK_MODES.get(subject, "RGB")
        for k in range(1, n + 1):
            has = k in labeled
            tasks.append(
                FrameTask(
                    "RUS",
                    "test",
                    subject,
                    k,
                    n,
                    subject in RUS_LEFT_VIEW,
                    True,
                    mode if has else None,
                    tinted=has and subject == TINTED_SUBJECT and k == min(labeled),
                )
            )
        if subject == ORPHAN_SUBJECT:
            # An annotation whose image is missing from the download.
            tasks.append(
                FrameTask("RUS", "test", subject, n + 1, n, subject in RUS_LEFT_VIEW, False, "RGB")
            )
    return tasks


def _labeled_frames(n: int, n_labeled: int) -> set[int]:
    """Annotated frames of a real test subject: spread evenly over its recording."""
    if n_labeled >= n:
        return set(range(1, n + 1))
    if n_labeled == 1:
        return {1 + (n - 1) // 2}
    return {round(1 + i * (n - 1) / (n_labeled - 1)) for i in range(n_labeled)}


def frame_labels(task: FrameTask, size: str, seed: int) -> np.ndarray:
    """Organ codes (indices into ORGANS) of a task's frame, without drawing the image."""
    spec = SIZES[size]
    anatomy = _anatomy(seed, task.modality, task.subject, task.left_view)
    pose = frame_pose(anatomy, seed, task.modality, task.subject, task.frame, task.n_frames)
    return label_map(anatomy, pose, spec.width, spec.height, 1, _fan(task.modality, spec.height))


def _render_task(args) -> dict:
    task, root, size, seed, colours = args
    spec = SIZES[size]
    real = task.modality == "RUS"
    fan = _fan(task.modality, spec.height)
    anatomy = _anatomy(seed, task.modality, task.subject, task.left_view)
    pose = frame_pose(anatomy, seed, task.modality, task.subject, task.frame, task.n_frames)
    stem = (
        f"{task.subject}-{task.frame}" if task.modality == "AUS" else f"{task.subject}{task.frame}"
    )
    base = Path(root) / task.modality
    result = {
        "modality": task.modality,
        "split": task.split,
        "subject": task.subject,
        "stem": stem,
        "image": task.image,
        "mask": task.mask,
    }
    labels = None
    if task.image:
        rng = _rng(seed, task.modality, task.subject, task.frame, "pixels")
        grey, labels = render_image(anatomy, pose, spec.width, spec.height, fan, real, rng)
        ext = ".jpg" if real else ".png"
        _save_image(grey, base / "images" / task.split / f"{stem}{ext}", real)
    if task.mask:
        if real:
            fine = label_map(anatomy, pose, spec.width, spec.height, MASK_SUPERSAMPLING, fan)
            rgb = real_mask(fine, MASK_SUPERSAMPLING, colours)
            if task.tinted:
                rgb[(rgb == 0).all(-1)] = TINT_RGB
            present = _present(fine, REAL_LABELED)
        else:
            rgb = simulator_mask(labels, colours)
            present = _present(labels, range(1, len(ORGANS)))
        _save_mask(rgb, base / "annotations" / task.split / f"{stem}.png", task.mask, colours)
        result["classes"] = present
    return result


def _present(labels: np.ndarray, codes) -> list[str]:
    found = np.bincount(labels.ravel(), minlength=len(ORGANS)) > 0
    return sorted(ORGANS[k] for k in codes if found[k])


@lru_cache(maxsize=64)
def _anatomy(seed: int, modality: str, subject: str, left_view: bool) -> dict:
    return subject_anatomy(seed, modality, subject, left_view)


def generate_demo_dataset(
    out_dir, size: str = "small", seed: int = 0, classes=None, workers: int | None = None
) -> dict:
    """Write the demo dataset to `out_dir`/abdominal_US (replacing what is there) and return a summary.

    `classes` is config.yaml's dataset.classes (None: the reference palette); colours
    are looked up by class name. `workers`: processes to draw with (default: up to 2,
    one for the tiny size); the files are the same for any number.
    """
    if size not in SIZES:
        raise ValueError(f"demo size {size!r} is not one of {', '.join(SIZES)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"demo seed must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    colours = _palette_colours(classes)
    root = Path(out_dir) / "abdominal_US"
    if root.exists():
        shutil.rmtree(root)
    for modality, split, kind in (
        ("AUS", "train", "images"),
        ("AUS", "test", "images"),
        ("AUS", "train", "annotations"),
        ("AUS", "test", "annotations"),
        ("RUS", "train", "images"),
        ("RUS", "test", "images"),
        ("RUS", "test", "annotations"),
    ):
        (root / modality / kind / split).mkdir(parents=True, exist_ok=True)

    tasks = plan(size)
    jobs = [(t, str(root), size, seed, colours) for t in tasks]
    if workers is None:
        workers = 1 if size == "tiny" else min(2, os.cpu_count() or 1)
    # Forked workers: spawn would re-run the caller's main module (a Snakemake script).
    # Each file depends on its task alone, so the number of workers does not change a byte.
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_render_task, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
    else:
        results = [_render_task(j) for j in jobs]
    return _summary(results, size, seed, root)


def _summary(results, size, seed, root) -> dict:
    spec = SIZES[size]
    counts: dict = {}
    subjects: dict = {}
    class_frames: dict = {"AUS": {}, "RUS": {}}
    for r in results:
        mod = counts.setdefault(r["modality"], {})
        if r["image"]:
            key = f"images/{r['split']}"
            mod[key] = mod.get(key, 0) + 1
            subjects.setdefault(r["modality"], {}).setdefault(r["split"], [])
            if r["subject"] not in subjects[r["modality"]][r["split"]]:
                subjects[r["modality"]][r["split"]].append(r["subject"])
        if r["mask"]:
            key = f"annotations/{r['split']}"
            mod[key] = mod.get(key, 0) + 1
            if r["image"]:
                for c in r["classes"]:
                    class_frames[r["modality"]][c] = class_frames[r["modality"]].get(c, 0) + 1
    orphans = [
        f"RUS/annotations/{r['split']}/{r['stem']}.png"
        for r in results
        if r["mask"] and not r["image"]
    ]
    return {
        "root": str(root),
        "size": size,
        "seed": seed,
        "image_size": {"width": spec.width, "height": spec.height},
        "counts": counts,
        "subjects": subjects,
        "labeled_real_frames": {s: n for s, n in spec.rus_test_labeled.items()},
        "orphan_annotations": orphans,
        "labeled_frames_with_class": class_frames,
        "n_images": sum(1 for r in results if r["image"]),
        "n_masks": sum(1 for r in results if r["mask"]),
    }
