"""Subject-grouped train/val split, the original test sets, and the leakage check.

Frames of one subject are near copies of each other, so a split by image
would put the same anatomy in train and val and make validation scores
meaningless. Labeled training images are split by subject; labeled test
images keep their original test set, one per modality; everything without a
usable mask is `unlabeled`, with a note saying why.

A test set never shrinks silently. A flagged mask (too many off-palette
pixels) is left out of training, but its image stays in its test set (marked
in `note`) unless `strict` is on or the mask is unusable (it fits no mask
encoding). An original test image left out of its test set for any reason
(flagged under strict, unusable, or its mask set aside by the manifest) has
that test set's name in `excluded_from` and the reason in `note`;
`excluded_images` lists them for the evaluation summary.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from usseg.contracts import (
    SPLIT_COLUMNS,
    UNLABELED,
    parse_bool,
    read_decode_report,
    read_issues,
    read_manifest,
)
from usseg.errors import DataError, LeakageError
from usseg.manifest import image_id_of

KEPT_FLAGGED = "mask flagged, kept in the test set (not used for training): "


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


def _set_aside_masks(manifest: pd.DataFrame, issues: pd.DataFrame | None) -> dict[str, str]:
    """image_id -> why its mask was set aside by the manifest step, for images kept without one.

    An issue row's path ({modality}/{folder}/{split}/{stem}{ext}) names the
    image {modality}_{split}_{stem}; rows about files in the image's own folder are skipped.
    """
    if issues is None or not len(issues):
        return {}
    maskless = manifest[~manifest["has_mask"].map(parse_bool)]
    image_paths = dict(zip(maskless["image_id"].astype(str), maskless["image_path"].astype(str)))
    out: dict[str, str] = {}
    for path, reason, detail in zip(issues["path"], issues["reason"], issues["detail"]):
        parts = str(path).split("/")
        if len(parts) != 4:
            continue
        image_id = image_id_of(parts[0], parts[2], Path(parts[3]).stem)
        image_path = image_paths.get(image_id)
        if image_path is not None and image_path.split("/")[1] != parts[1]:
            out.setdefault(image_id, f"mask set aside by the manifest ({reason}): {detail}")
    return out


def excluded_images(splits: pd.DataFrame, test_set: str) -> list[dict]:
    """[{"image_id", "reason"}] of the images left out of `test_set` (splits.csv's excluded_from)."""
    if "excluded_from" not in splits.columns:
        return []
    rows = splits[splits["excluded_from"].fillna("").astype(str) == test_set]
    rows = rows.sort_values("image_id", kind="stable")
    return [{"image_id": str(i), "reason": str(n)} for i, n in zip(rows["image_id"], rows["note"])]


def subject_grouped_split(
    manifest: pd.DataFrame,
    decode_report: pd.DataFrame | None,
    val_fraction: float,
    seed: int,
    strict: bool = False,
    issues: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per manifest row: image_id, subject_id, split, note, excluded_from.

    Labeled images (a mask that decode_report does not flag) from the original
    train split go to train or val with GroupShuffleSplit grouped by subject;
    original test images with a usable mask go to test_{modality}, flagged
    ones too unless `strict`; the rest is unlabeled. `issues` (the manifest's
    issues table) names masks the manifest set aside.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"split.val_fraction = {val_fraction} must lie strictly between 0 and 1.")
    manifest = manifest.reset_index(drop=True)
    duplicated = manifest["image_id"][manifest["image_id"].duplicated()]
    if len(duplicated):
        raise DataError(
            f"the manifest lists image_id {', '.join(sorted(set(duplicated))[:5])} more than once; image ids must "
            "be unique. Rebuild the manifest with usseg instead of editing or concatenating it."
        )
    flagged = _flag_reasons(decode_report)
    set_aside = _set_aside_masks(manifest, issues)
    has_mask = manifest["has_mask"].map(parse_bool)
    image_ids = manifest["image_id"].astype(str)
    orig = manifest["orig_split"].astype(str).values
    test_names = np.array(["test_" + str(m).lower() for m in manifest["modality"].values], dtype=object)

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
    is_flagged = (image_ids.isin(list(flagged)) & has_mask).values
    usable = np.array([flagged.get(i, ("", True))[1] for i in image_ids], dtype=bool)
    kept_in_test = is_flagged & usable & (orig == "test") & (not strict)
    out.loc[is_flagged, "note"] = [
        (f"mask flagged: {flagged[i][0]}" if flagged[i][1] else f"mask unusable: {flagged[i][0]}")
        for i in image_ids[is_flagged]
    ]
    if strict:
        out.loc[is_flagged & usable, "note"] = [
            f"mask flagged (strict: true): {flagged[i][0]}" for i in image_ids[is_flagged & usable]
        ]
    out.loc[kept_in_test, "note"] = [KEPT_FLAGGED + flagged[i][0] for i in image_ids[kept_in_test]]
    labeled = (has_mask.values & ~is_flagged) | kept_in_test

    is_test = labeled & (orig == "test")
    out.loc[is_test, "split"] = test_names[is_test]
    # Original test images that would have been labeled but were left out, and why (in note).
    left_out = (orig == "test") & ~is_test & (is_flagged | np.isin(image_ids, list(set_aside)))
    out.loc[left_out, "excluded_from"] = test_names[left_out]
    other = labeled & (orig != "test") & (orig != "train")
    out.loc[other, "note"] = [
        f"original split {o!r} is neither train nor test" for o in orig[other]
    ]

    train_rows = labeled & (orig == "train")
    train = out[train_rows]
    subjects = sorted(train["subject_id"].unique())
    if len(subjects) < 2:
        raise DataError(
            f"only {len(subjects)} subject(s) ({', '.join(subjects) or 'none'}) have labeled images in the original "
            "train split; a subject-grouped train/val split needs at least 2. Add annotated training images "
            "(check manifest_issues.csv and decode_report.csv for set-aside or flagged masks)."
        )
    # At least one subject on each side: sklearn would otherwise fail or leave val empty.
    n_val = min(max(math.ceil(val_fraction * len(subjects)), 1), len(subjects) - 1)
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    # Sort first, so the result does not depend on the manifest's row order.
    train = train.sort_values("image_id", kind="stable")
    train_idx, val_idx = next(splitter.split(train, groups=train["subject_id"]))
    out.loc[train.index[train_idx], "split"] = "train"
    out.loc[train.index[val_idx], "split"] = "val"
    return out.sort_values("image_id", kind="stable").reset_index(drop=True)[SPLIT_COLUMNS]


def check_no_leakage(splits: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Raise LeakageError when a subject, or a byte-identical file, sits in two of train, val and test_*."""
    unknown = sorted(set(splits["image_id"]) - set(manifest["image_id"]))
    if unknown:
        raise DataError(
            f"{len(unknown)} image_id(s) of the split table are not in the manifest (e.g. {', '.join(unknown[:5])}); "
            "the split is stale. Re-run the split step."
        )
    used = splits[splits["split"] != UNLABELED]
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
) -> None:
    """Split, check for leakage, and write splits_csv. `decode_report_csv` may be None (no masks
    decoded); `issues_csv` (manifest_issues.csv) may be None (then set-aside masks read "no annotation")."""
    manifest = read_manifest(manifest_csv)
    report = None
    if decode_report_csv is not None:
        report = read_decode_report(decode_report_csv)
    issues = None
    if issues_csv is not None:
        issues = read_issues(issues_csv)
    splits = subject_grouped_split(manifest, report, val_fraction, seed, strict=strict, issues=issues)
    check_no_leakage(splits, manifest)
    splits_csv = Path(splits_csv)
    splits_csv.parent.mkdir(parents=True, exist_ok=True)
    splits.to_csv(splits_csv, index=False)
