"""Subject-grouped train/val split, the original test sets, and the leakage check.

Frames of one subject are near copies of each other, so a split by image
would put the same anatomy in train and val and make validation scores
meaningless. Labeled training images are split by subject; labeled test
images keep their original test set, one per modality; everything without a
usable mask is `unlabeled`, with a note saying why.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from usseg.contracts import SPLIT_COLUMNS, UNLABELED
from usseg.errors import DataError, LeakageError
from usseg.manifest import parse_bool, read_manifest
from usseg.masks import read_decode_report


def _flag_reasons(decode_report: pd.DataFrame | None) -> dict[str, str]:
    if decode_report is None or not len(decode_report):
        return {}
    flagged = decode_report["flagged"].map(parse_bool)
    reasons = decode_report.get("flag_reason", pd.Series("", index=decode_report.index)).fillna("")
    return {str(i): str(r) for i, r, f in zip(decode_report["image_id"], reasons, flagged) if f}


def subject_grouped_split(
    manifest: pd.DataFrame, decode_report: pd.DataFrame | None, val_fraction: float, seed: int
) -> pd.DataFrame:
    """One row per manifest row: image_id, subject_id, split, note.

    Labeled images (a mask that decode_report does not flag) from the original
    train split go to train or val with GroupShuffleSplit grouped by subject;
    labeled original test images go to test_{modality}; the rest is unlabeled.
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
    has_mask = manifest["has_mask"].map(parse_bool)
    image_ids = manifest["image_id"].astype(str)

    out = pd.DataFrame(
        {
            "image_id": image_ids,
            "subject_id": manifest["subject_id"].astype(str),
            "split": UNLABELED,
            "note": "",
        }
    )
    out.loc[~has_mask.values, "note"] = "no annotation"
    is_flagged = image_ids.isin(list(flagged)) & has_mask
    out.loc[is_flagged.values, "note"] = [
        f"mask flagged: {flagged[i]}" for i in image_ids[is_flagged]
    ]
    labeled = (has_mask & ~is_flagged).values
    orig = manifest["orig_split"].astype(str).values

    is_test = labeled & (orig == "test")
    out.loc[is_test, "split"] = [
        "test_" + str(m).lower() for m in manifest["modality"].values[is_test]
    ]
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
    manifest_csv, decode_report_csv, val_fraction: float, seed: int, splits_csv
) -> None:
    """Split, check for leakage, and write splits_csv. `decode_report_csv` may be None (no masks decoded)."""
    manifest = read_manifest(manifest_csv)
    report = None
    if decode_report_csv is not None:
        report = read_decode_report(decode_report_csv)
    splits = subject_grouped_split(manifest, report, val_fraction, seed)
    check_no_leakage(splits, manifest)
    splits_csv = Path(splits_csv)
    splits_csv.parent.mkdir(parents=True, exist_ok=True)
    splits.to_csv(splits_csv, index=False)
