"""Subject-grouped train/val split, the test sets, and the leakage check.

Frames of one subject are near copies of each other, so a split by image
would put the same anatomy in train and val and make validation scores
meaningless. Labeled training images are split by subject; labeled test
images form one test set per modality; everything without a usable mask is
`unlabeled`, with a note saying why.

Where the test sets come from depends on the layout (dataset.layout):
`split_folders` (the reference) keeps each modality's original test folder
(dataset.test_split; the labeled images of every other original split are the
train/val pool);
`flat` has none, so each modality's labeled subjects are drawn here, seeded
(split.test_fraction of them, all of a modality that no experiment trains
on). Every configured test set must end up with images: an empty one stops
the split with the key to change.

A test set never shrinks silently. A flagged mask (too many off-palette
pixels) is left out of training, but its image stays in its test set (marked
in `note`) unless `strict` is on or the mask is unusable (it fits no mask
encoding). An image left out of its test set for any reason (flagged under
strict, unusable, its mask set aside by the manifest, or the image file
itself set aside: unreadable, truncated, misnamed) has that test set's name
in `excluded_from` and the reason in `note`; an image file the manifest set
aside has no manifest row, so it gets a row of its own with split
`set_aside`. A subject left with no image in a test set is named in the
note. `excluded_images` lists them for the evaluation summary.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from usseg.contracts import (
    SET_ASIDE,
    SPLIT_COLUMNS,
    TRAIN,
    UNLABELED,
    parse_bool,
    read_decode_report,
    read_issues,
    read_manifest,
    test_set_name,
)
from usseg.dataset_spec import ORIG_TEST, DatasetSpec
from usseg.errors import DataError, LeakageError
from usseg.manifest import image_id_of

log = logging.getLogger(__name__)

KEPT_FLAGGED = "mask flagged, kept in the test set (not used for training): "
# Where an image's original split (or, in a flat layout, its subject) puts it.
TEST_ROLE, TRAIN_ROLE = "test", "train"
# Issue reasons of an image file the manifest set aside (its mask then gets mask_of_quarantined_image).
_IMAGE_SET_ASIDE = "mask_of_quarantined_image"
# The note of a labeled training image when fewer than 2 subjects have one (no train/val split).
NO_TRAIN_SPLIT = ("labeled training image, not used: a subject-grouped train/val split needs labeled "
                  "training images (outside the test sets) of at least 2 subjects")


def _flag_reasons(decode_report: pd.DataFrame | None) -> dict[str, tuple[str, bool]]:
    """image_id -> (flag reason, usable) of every flagged mask."""
    if decode_report is None or not len(decode_report):
        return {}
    flagged = decode_report["flagged"].map(parse_bool)
    reasons = decode_report.get("flag_reason", pd.Series("", index=decode_report.index)).fillna("")
    usable = decode_report.get("usable", pd.Series(True, index=decode_report.index)).map(parse_bool)
    return {
        str(i): (str(r), bool(u))
        for i, r, u, f in zip(decode_report["image_id"], reasons, usable, flagged)
        if f
    }


def _locate(path: str, dataset: DatasetSpec | None) -> tuple[str, str, str, str] | None:
    """(modality, kind, orig_split, file name) of an issue path; without a dataset description the
    reference layout {modality}/{kind}/{split}/{name}."""
    if dataset is not None:
        return dataset.locate(str(path))
    parts = str(path).split("/")
    return tuple(parts) if len(parts) == 4 else None  # type: ignore[return-value]


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def _set_aside_masks(manifest: pd.DataFrame, issues: pd.DataFrame | None,
                     dataset: DatasetSpec | None = None) -> dict[str, str]:
    """image_id -> why its mask was set aside by the manifest step, for images kept without one.

    An issue row's path names the image {modality}_{split}_{stem}; rows about
    files in the image's own folder are skipped.
    """
    if issues is None or not len(issues):
        return {}
    maskless = manifest[~manifest["has_mask"].map(parse_bool)]
    image_paths = dict(zip(maskless["image_id"].astype(str), maskless["image_path"].astype(str)))
    out: dict[str, str] = {}
    for path, reason, detail in zip(issues["path"], issues["reason"], issues["detail"]):
        place = _locate(path, dataset)
        if place is None:
            continue
        modality, kind, split, name = place
        image_id = image_id_of(modality, split, _stem(name))
        image_path = image_paths.get(image_id)
        mask_folder = kind == dataset.annotations_dir if dataset is not None else (
            image_path is not None and image_path.split("/")[1] != kind
        )
        if image_path is not None and mask_folder:
            out.setdefault(image_id, f"mask set aside by the manifest ({reason}): {detail}")
    return out


def _set_aside_images(issues: pd.DataFrame | None, dataset: DatasetSpec | None) -> list[dict]:
    """The image files the manifest set aside although they had a mask: one record each
    (modality, orig_split, stem, subject, reason, detail), from the issues table."""
    if issues is None or not len(issues):
        return []
    by_place: dict[tuple[str, str, str], tuple[str, str]] = {}
    masked: list[tuple[str, str, str]] = []
    for path, reason, detail in zip(issues["path"], issues["reason"], issues["detail"]):
        place = _locate(path, dataset)
        if place is None:
            continue
        modality, kind, split, name = place
        key = (modality, split, _stem(name))
        if reason == _IMAGE_SET_ASIDE:
            masked.append(key)
        elif dataset is None or kind == dataset.images_dir:
            by_place.setdefault(key, (str(reason), str(detail)))
    patterns = {}
    if dataset is not None:
        patterns = {m: re.compile(spec.subject_pattern) for m, spec in dataset.modalities.items()}
    out = []
    for modality, split, stem in sorted(set(masked)):
        reason, detail = by_place.get((modality, split, stem), ("set aside", "see manifest_issues.csv"))
        match = patterns[modality].match(stem) if modality in patterns else None
        out.append({"modality": modality, "orig_split": split, "stem": stem,
                    "subject_id": match.group(1) if match else "", "reason": reason, "detail": detail})
    return out


def excluded_images(splits: pd.DataFrame, test_set: str) -> list[dict]:
    """[{"image_id", "subject_id", "reason"}] of the images left out of `test_set` (splits.csv's excluded_from)."""
    if "excluded_from" not in splits.columns:
        return []
    rows = splits[splits["excluded_from"].fillna("").astype(str) == test_set]
    rows = rows.sort_values("image_id", kind="stable")
    return [{"image_id": str(i), "subject_id": str(s), "reason": str(n)}
            for i, s, n in zip(rows["image_id"], rows["subject_id"], rows["note"])]


def subjects_left_out(splits: pd.DataFrame, test_set: str) -> list[str]:
    """Subjects with images left out of `test_set` and none left in it: the test set lost them whole."""
    if "excluded_from" not in splits.columns:
        return []
    left_out = set(splits.loc[splits["excluded_from"].fillna("").astype(str) == test_set, "subject_id"].astype(str))
    kept = set(splits.loc[splits["split"].astype(str) == test_set, "subject_id"].astype(str))
    return sorted(s for s in left_out - kept if s)


def _subject_seed(seed: int, modality: str) -> int:
    """A seed per modality: one modality's draw does not depend on the others."""
    return (int(seed) * 1_000_003 + zlib.crc32(modality.encode("utf-8", errors="surrogateescape"))) % 2**32


def draw_test_subjects(
    manifest: pd.DataFrame, test_fraction: float, seed: int, trained_modalities: Sequence[str] | None
) -> dict[str, set[str]]:
    """Flat layout: modality -> the labeled subjects that form its test set.

    A modality no experiment trains on (`trained_modalities`; None = all are
    trained) gives all its labeled subjects. Otherwise ceil(test_fraction x
    subjects) of them, at least one, leaving at least two for training and
    validation where there are three or more (one of two; none of one),
    drawn seeded from the sorted subject ids.
    """
    has_mask = manifest["has_mask"].map(parse_bool)
    out: dict[str, set[str]] = {}
    for modality, rows in manifest[has_mask].groupby("modality", sort=True):
        subjects = sorted(set(rows["subject_id"].astype(str)))
        if trained_modalities is not None and modality not in trained_modalities:
            out[str(modality)] = set(subjects)
            continue
        n = len(subjects)
        n_test = 0 if n < 2 else 1 if n == 2 else min(max(math.ceil(test_fraction * n), 1), n - 2)
        rng = np.random.default_rng(_subject_seed(seed, str(modality)))
        out[str(modality)] = {subjects[i] for i in rng.permutation(n)[:n_test]}
    return out


def _original_splits(manifest: pd.DataFrame, test_subjects: dict[str, set[str]] | None,
                     test_split: str) -> np.ndarray:
    """Each row's role: TEST_ROLE (its modality's test set) or TRAIN_ROLE (the train/val pool), by its original
    split (`test_split` is the test one) or, in a flat layout, by its subject (drawn test subjects)."""
    orig = manifest["orig_split"].astype(str).to_numpy(dtype=object)
    if test_subjects is not None:
        in_test = np.array([s in test_subjects.get(m, ()) for m, s in
                            zip(manifest["modality"].astype(str), manifest["subject_id"].astype(str))], dtype=bool)
    else:
        in_test = orig == test_split
    return np.where(in_test, TEST_ROLE, TRAIN_ROLE).astype(object)


def subject_grouped_split(
    manifest: pd.DataFrame,
    decode_report: pd.DataFrame | None,
    val_fraction: float,
    seed: int,
    strict: bool = False,
    issues: pd.DataFrame | None = None,
    dataset: DatasetSpec | Mapping | None = None,
    test_sets: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    trained_modalities: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per manifest row (and per image file set aside in a test set): image_id, subject_id,
    split, note, excluded_from.

    Labeled images (a mask that decode_report does not flag) from the original
    train split go to train or val with GroupShuffleSplit grouped by subject;
    original test images with a usable mask go to test_{modality}, flagged
    ones too unless `strict`; the rest is unlabeled. `issues` (the manifest's
    issues table) names masks and images the manifest set aside; `dataset`
    (the dataset description) locates their files; in a flat layout the test
    subjects are drawn with `test_fraction` (draw_test_subjects). Every name in
    `test_sets` must get an image, else DataError naming the key.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"split.val_fraction = {val_fraction} must lie strictly between 0 and 1.")
    spec = None if dataset is None else DatasetSpec.of(dataset)
    manifest = manifest.reset_index(drop=True)
    _check_unique_ids(manifest)
    test_subjects = None
    if spec is not None and spec.is_flat:
        test_subjects = draw_test_subjects(manifest, test_fraction, seed, trained_modalities)
    flagged = _flag_reasons(decode_report)
    set_aside = _set_aside_masks(manifest, issues, spec)
    has_mask = manifest["has_mask"].map(parse_bool)
    image_ids = manifest["image_id"].astype(str)
    test_split = spec.test_split if spec is not None else ORIG_TEST
    orig = _original_splits(manifest, test_subjects, test_split)
    test_names = np.array([test_set_name(m) for m in manifest["modality"].values], dtype=object)

    out = pd.DataFrame(
        {
            "image_id": image_ids,
            "subject_id": manifest["subject_id"].astype(str),
            "split": UNLABELED,
            "note": "",
            "excluded_from": "",
        }
    )
    out.loc[~has_mask.values, "note"] = [set_aside.get(i, "no annotation") for i in image_ids[~has_mask]]
    is_flagged, kept_in_test = _note_flagged(out, image_ids, has_mask, flagged, orig, strict)
    labeled = (has_mask.values & ~is_flagged) | kept_in_test

    is_test = labeled & (orig == TEST_ROLE)
    out.loc[is_test, "split"] = test_names[is_test]
    # Original test images that would have been labeled but were left out, and why (in note).
    left_out = (orig == TEST_ROLE) & ~is_test & (is_flagged | np.isin(image_ids, list(set_aside)))
    out.loc[left_out, "excluded_from"] = test_names[left_out]
    out = pd.concat([out, _set_aside_rows(issues, spec, test_subjects, set(image_ids), test_split)],
                    ignore_index=True)

    _divide_train_val(out, np.flatnonzero(labeled & (orig == TRAIN_ROLE)), val_fraction, seed)
    _name_lost_subjects(out)
    if test_sets is not None:
        check_test_sets(out, manifest, test_sets, spec)
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)[SPLIT_COLUMNS]


def _check_unique_ids(manifest: pd.DataFrame) -> None:
    duplicated = manifest["image_id"][manifest["image_id"].duplicated()]
    if len(duplicated):
        raise DataError(
            f"the manifest lists image_id {', '.join(sorted(set(duplicated))[:5])} more than once; image ids must "
            "be unique. Rebuild the manifest with usseg instead of editing or concatenating it."
        )


def _note_flagged(out: pd.DataFrame, image_ids: pd.Series, has_mask: pd.Series,
                  flagged: dict[str, tuple[str, bool]], orig: np.ndarray,
                  strict: bool) -> tuple[np.ndarray, np.ndarray]:
    """Note why each row with a flagged mask is flagged (in `out`, in place); per row, whether its mask
    is flagged and whether it is kept in its test set all the same (usable, and not `strict`)."""
    is_flagged = (image_ids.isin(list(flagged)) & has_mask).values
    usable = np.array([flagged.get(i, ("", True))[1] for i in image_ids], dtype=bool)
    kept_in_test = is_flagged & usable & (orig == TEST_ROLE) & (not strict)
    out.loc[is_flagged, "note"] = [
        (f"mask flagged: {flagged[i][0]}" if flagged[i][1] else f"mask unusable: {flagged[i][0]}")
        for i in image_ids[is_flagged]
    ]
    if strict:
        out.loc[is_flagged & usable, "note"] = [
            f"mask flagged (strict: true): {flagged[i][0]}" for i in image_ids[is_flagged & usable]
        ]
    out.loc[kept_in_test, "note"] = [KEPT_FLAGGED + flagged[i][0] for i in image_ids[kept_in_test]]
    return is_flagged, kept_in_test


def _divide_train_val(out: pd.DataFrame, pool: np.ndarray, val_fraction: float, seed: int) -> None:
    """Put the rows `pool` (labeled, outside the test sets) in train or val, grouped by subject, in place."""
    train = out.iloc[pool]
    subjects = sorted(train["subject_id"].unique())
    if len(subjects) < 2:
        # No subject-grouped train/val split, so nothing trains (usseg.trainability says which
        # experiments and why); the data checks and the report still run on the test sets.
        out.loc[train.index, "note"] = NO_TRAIN_SPLIT
        return
    # At least one subject on each side: sklearn would otherwise fail or leave val empty.
    n_val = min(max(math.ceil(val_fraction * len(subjects)), 1), len(subjects) - 1)
    # Late: scikit-learn costs most of a second to import, and only the split step needs it here
    # (the evaluations read splits' helpers too).
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    # Sort first, so the result does not depend on the manifest's row order.
    train = train.sort_values("image_id", kind="stable")
    train_idx, val_idx = next(splitter.split(train, groups=train["subject_id"]))
    out.loc[train.index[train_idx], "split"] = "train"
    out.loc[train.index[val_idx], "split"] = "val"


def _set_aside_rows(issues, spec: DatasetSpec | None, test_subjects, manifest_ids: set[str],
                    test_split: str) -> pd.DataFrame:
    """Rows (split set_aside) for the image files the manifest set aside that would have been in a test set."""
    rows = []
    for rec in _set_aside_images(issues, spec):
        modality, subject = rec["modality"], rec["subject_id"]
        if test_subjects is None:
            in_test = rec["orig_split"] == test_split
        else:
            in_test = subject in test_subjects.get(modality, ())
        image_id = image_id_of(modality, rec["orig_split"], rec["stem"])
        if not in_test or image_id in manifest_ids:
            continue
        rows.append({
            "image_id": image_id, "subject_id": subject, "split": SET_ASIDE,
            "note": f"image set aside by the manifest ({rec['reason']}): {rec['detail']}",
            "excluded_from": test_set_name(modality),
        })
    return pd.DataFrame(rows, columns=SPLIT_COLUMNS)


def _name_lost_subjects(out: pd.DataFrame) -> None:
    """Append to the notes of a subject's left-out images that the test set lost the subject whole; log it."""
    for test_set in sorted(set(out["excluded_from"]) - {""}):
        for subject in subjects_left_out(out, test_set):
            rows = (out["excluded_from"] == test_set) & (out["subject_id"] == subject)
            out.loc[rows, "note"] = out.loc[rows, "note"].str.rstrip() + (
                f" [subject {subject} has no image left in {test_set}: the test set lost it]"
            )
            log.warning("%s lost subject %s: all %d of its images were left out (see splits.csv, excluded_from)",
                        test_set, subject, int(rows.sum()))


def check_test_sets(splits: pd.DataFrame, manifest: pd.DataFrame, test_sets: Sequence[str],
                    dataset: DatasetSpec | None) -> None:
    """DataError naming test_sets when a configured test set has no image after the split."""
    counts = splits["split"].value_counts()
    empty = [t for t in test_sets if not counts.get(t, 0)]
    if not empty:
        return
    having = [t for t in test_sets if counts.get(t, 0)]
    details = []
    for test_set in empty:
        rows = manifest[[test_set_name(m) == test_set for m in manifest["modality"]]]
        labeled = int(rows["has_mask"].map(parse_bool).sum())
        if dataset is not None and dataset.is_flat:
            why = (f"{labeled} labeled image(s) of {rows['subject_id'].nunique()} subject(s); a test set needs "
                   "a labeled subject the split can hold out (split.test_fraction)")
        else:
            test_split = dataset.test_split if dataset is not None else ORIG_TEST
            n_test = int((rows["orig_split"] == test_split).sum())
            labeled_test = int(((rows["orig_split"] == test_split) & rows["has_mask"].map(parse_bool)).sum())
            why = f"{n_test} image(s) in its original test folder, {labeled_test} with a usable mask"
        details.append(f"{test_set} ({why})")
    fix = f"test_sets: [{', '.join(having)}]" if having else "labeled test images"
    raise DataError(
        f"test_sets names {', '.join(empty)}, but no labeled image ends up there: {'; '.join(details)}. "
        f"Set {fix} in your config overlay, or add annotated test images (see manifest_issues.csv and "
        "decode_report.csv for set-aside or flagged masks)."
    )


def check_no_leakage(splits: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Raise LeakageError when a subject, or a byte-identical file, sits in two of train, val and test_*."""
    listed = splits[splits["split"] != SET_ASIDE]  # set-aside files have no manifest row
    unknown = sorted(set(listed["image_id"]) - set(manifest["image_id"]))
    if unknown:
        raise DataError(
            f"{len(unknown)} image_id(s) of the split table are not in the manifest (e.g. {', '.join(unknown[:5])}); "
            "the split is stale. Re-run the split step."
        )
    used = splits[~splits["split"].isin([UNLABELED, SET_ASIDE])]
    problems = []

    per_subject = used.groupby("subject_id")["split"].agg(lambda s: sorted(set(s)))
    for subject, names in per_subject.items():
        if len(names) > 1:
            counts = used[used["subject_id"] == subject]["split"].value_counts().sort_index()
            problems.append(
                f"subject {subject!r} is in {', '.join(f'{k} ({v} images)' for k, v in counts.items())}"
            )

    hashed = used.merge(manifest[["image_id", "sha256", "image_path"]], on="image_id", how="left")
    hashed = hashed[hashed["sha256"].astype(str) != ""]
    for digest, group in hashed.groupby("sha256"):
        if group["split"].nunique() > 1:
            files = ", ".join(f"{p} ({s})" for p, s in zip(group["image_path"], group["split"]))
            problems.append(
                f"identical files (sha256 {str(digest)[:12]}...) in different splits: {files}"
            )

    if problems:
        raise LeakageError(
            "data leakage between train, val and the test sets: "
            + "; ".join(problems)
            + ". Scores on a test set that shares subjects or files with training are inflated. Remove the "
            "duplicates from the dataset, or fix the subject names / subject_pattern so each subject sits in "
            "one original split."
        )


def write_splits(
    manifest_csv,
    decode_report_csv,
    val_fraction: float,
    seed: int,
    splits_csv,
    strict: bool = False,
    issues_csv=None,
    dataset: DatasetSpec | Mapping | None = None,
    test_sets: Sequence[str] | None = None,
    flat: Mapping | None = None,
) -> None:
    """Split, check for leakage, and write splits_csv. `decode_report_csv` may be None (no masks
    decoded); `issues_csv` (manifest_issues.csv) may be None (then set-aside masks read "no annotation").
    `flat`: a flat layout's {test_fraction, trained_modalities} (config.flat_split_settings)."""
    manifest = read_manifest(manifest_csv)
    report = None
    if decode_report_csv is not None:
        report = read_decode_report(decode_report_csv)
    issues = None
    if issues_csv is not None:
        issues = read_issues(issues_csv)
    flat = dict(flat or {})
    splits = subject_grouped_split(
        manifest, report, val_fraction, seed, strict=strict, issues=issues, dataset=dataset, test_sets=test_sets,
        test_fraction=float(flat.get("test_fraction", 0.2)), trained_modalities=flat.get("trained_modalities"),
    )
    check_no_leakage(splits, manifest)
    if not (splits["split"] == TRAIN).any():
        subjects = sorted(set(splits.loc[splits["note"] == NO_TRAIN_SPLIT, "subject_id"]))
        log.warning(
            "no train/val split: %s labeled images outside the test sets (a subject-grouped split needs 2 "
            "subjects; manifest_issues.csv and decode_report.csv list set-aside and flagged masks), so no "
            "experiment can be trained; the data checks still run and the report says what could not", f"{len(subjects)} subject(s) ({', '.join(subjects)}) have" if subjects
            else "no subject has",
        )
    splits_csv = Path(splits_csv)
    splits_csv.parent.mkdir(parents=True, exist_ok=True)
    splits.to_csv(splits_csv, index=False)
