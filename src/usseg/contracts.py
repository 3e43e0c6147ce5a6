"""The files one stage writes and another reads: their columns, JSON keys and split names.

This module is the one owner of those facts; docs/contracts.md describes them
for people. Writers order their columns from here and readers check them here,
so a file written by another version of usseg (or edited by hand) stops the
reading stage with a message that names the file, the missing column or key,
and the step to re-run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from usseg.errors import DataError

# ----------------------------------------------------------------------------- tables

# results/manifest.csv: one row per image (paths relative to the dataset root).
MANIFEST_COLUMNS = [
    "image_id",
    "subject_id",
    "modality",
    "domain",
    "orig_split",
    "image_path",
    "mask_path",
    "has_mask",
    "width",
    "height",
    "sha256",
    "mask_sha256",
]
# Columns of the manifest that are not text (parsed on reading).
MANIFEST_BOOL_COLUMNS = ("has_mask",)
MANIFEST_INT_COLUMNS = ("width", "height")

# results/manifest_issues.csv: every file below the dataset root that is not a
# manifest image or its mask, with a reason code (usseg.manifest) and a sentence.
ISSUE_COLUMNS = ["path", "reason", "detail"]

# results/labels/decode_report.csv: one row per decoded mask.
DECODE_REPORT_COLUMNS = [
    "image_id",
    "mask_path",
    "off_palette_fraction",
    "far_fraction",
    "max_distance",
    "classes_present",
    "flagged",
    "flag_reason",
    "encoding",
    "relabelled_fraction",
    "decode",
    "usable",
]
DECODE_REPORT = "decode_report.csv"

# results/splits.csv: one row per manifest image.
# excluded_from: the test set an image was left out of (its reason in note), else empty.
SPLIT_COLUMNS = ["image_id", "subject_id", "split", "note", "excluded_from"]

# ----------------------------------------------------------------------------- split names

TRAIN = "train"
VAL = "val"
UNLABELED = "unlabeled"
# Labeled images of a modality's original test split form the test set
# "test_" + the modality in lower case (test_aus, test_rus for the reference data).
TEST_PREFIX = "test_"
# Only the diagnostics use this: an image that splits.csv does not list.
UNASSIGNED = "unassigned"


def test_set_name(modality: str) -> str:
    """The split (and evaluation test set) of a modality's labeled original test images."""
    return TEST_PREFIX + str(modality).lower()


def is_test_set(split: str) -> bool:
    return str(split).startswith(TEST_PREFIX) and len(str(split)) > len(TEST_PREFIX)


def is_evaluation_split(split: str) -> bool:
    """train, val or a test set: the splits that must not share a subject or a file."""
    return split in (TRAIN, VAL) or is_test_set(split)


def split_rank(split: str) -> tuple:
    """Sort key for split names in reading order: train, val, test sets, unlabeled, unassigned, others."""
    if split == TRAIN:
        return (0, "")
    if split == VAL:
        return (1, "")
    if is_test_set(split):
        return (2, split)
    if split == UNLABELED:
        return (3, "")
    if split == UNASSIGNED:
        return (4, "")
    return (5, split)


# ----------------------------------------------------------------------------- JSON keys

# results/diagnostics/checklist.json
CHECKLIST_KEYS = ("overall", "checks")
CHECK_KEYS = ("id", "title", "status", "value", "threshold", "reason")
STATUSES = ("PASS", "WARN", "FAIL")
# results/experiments/{experiment}/eval/{test_set}/summary.json: the keys every
# reader may rely on (writers may add more; readers ignore what they do not know).
SUMMARY_KEYS = ("experiment", "test_set", "n_images", "n_subjects", "dice", "dice_mean_foreground")
# results/provenance/**.json
PROVENANCE_KEYS = ("rule", "wildcards", "finished_utc", "inputs", "outputs", "params", "code", "versions")

# ----------------------------------------------------------------------------- readers and writers


def missing_columns(df: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c not in df.columns]


def require_columns(df: pd.DataFrame, columns, path, step: str) -> pd.DataFrame:
    """DataError naming the file, the missing columns and the step to re-run, if any is missing."""
    missing = missing_columns(df, columns)
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)} (docs/contracts.md); it was not written by "
            f"this version of usseg. Delete it and re-run the {step} step."
        )
    return df


def read_table(path, columns, step: str, *, optional: bool = False) -> pd.DataFrame:
    """A CSV contract file as text columns (empty cells stay ""), its columns checked.

    `optional`: a missing or empty file reads as an empty table with the columns.
    """
    path = Path(path)
    if not path.exists():
        if optional:
            return pd.DataFrame(columns=list(columns))
        raise DataError(f"{path} does not exist: run the {step} step first.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        if optional:
            return pd.DataFrame(columns=list(columns))
        raise DataError(f"{path} is empty; delete it and re-run the {step} step.") from None
    return require_columns(df, columns, path, step)


def write_table(df: pd.DataFrame, path, columns) -> None:
    """Write a contract CSV with exactly `columns`, in that order (extra columns are a bug)."""
    require_columns(df, columns, path, "writing")
    extra = [c for c in df.columns if c not in columns]
    if extra:
        raise ValueError(f"{path}: columns {extra} are not in the contract (docs/contracts.md)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df[list(columns)].to_csv(path, index=False)


def read_splits(path) -> pd.DataFrame:
    """results/splits.csv, its columns checked."""
    return read_table(path, SPLIT_COLUMNS, "split")


def read_issues(path, *, optional: bool = False) -> pd.DataFrame:
    """results/manifest_issues.csv, its columns checked."""
    return read_table(path, ISSUE_COLUMNS, "manifest", optional=optional)


def read_json(path, keys, step: str) -> dict:
    """A JSON contract file whose top level must hold `keys`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: run the {step} step first.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and re-run the {step} step.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, not an object; re-run the {step} step.")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(
            f"{path} lacks the key(s) {', '.join(missing)} (docs/contracts.md); delete it and re-run the "
            f"{step} step."
        )
    return data


def read_checklist(path) -> dict:
    """results/diagnostics/checklist.json, its keys and statuses checked."""
    data = read_json(path, CHECKLIST_KEYS, "diagnostics")
    for check in data["checks"]:
        missing = [k for k in CHECK_KEYS if k not in check]
        if missing:
            raise DataError(f"{path}: check {check.get('id', '?')!r} lacks the key(s) {', '.join(missing)}.")
    if data["overall"] not in STATUSES:
        raise DataError(f"{path}: overall = {data['overall']!r} is not one of {', '.join(STATUSES)}.")
    return data


def read_summary(path) -> dict:
    """An evaluation summary.json, the keys every reader relies on checked."""
    return read_json(path, SUMMARY_KEYS, "evaluate")
