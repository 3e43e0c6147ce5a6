"""The files one stage writes and another reads: their columns, JSON keys and split names.

This module is the one owner of those facts; docs/contracts.md describes them
for people. Writers order their columns from here and readers check them here,
so a file written by another version of usseg (or edited by hand) stops the
reading stage with a message that names the file, the missing column or key,
and the step to re-run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from usseg.errors import DataError, UssegError
from usseg.training import history

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

# results/labels/decode_report.csv columns that are not text.
DECODE_REPORT_BOOL_COLUMNS = ("flagged", "usable")
DECODE_REPORT_FLOAT_COLUMNS = ("off_palette_fraction", "far_fraction", "max_distance", "relabelled_fraction")

# results/splits.csv: one row per manifest image.
# excluded_from: the test set an image was left out of (its reason in note), else empty.
SPLIT_COLUMNS = ["image_id", "subject_id", "split", "note", "excluded_from"]

# results/experiments/{experiment}/eval/{test_set}/per_subject.csv (and the gap study's
# evaluations): one row per test subject; then dice_{class} and surface_dice_{class} per
# output class (empty where the subject's images never show the class).
PER_SUBJECT_KEY_COLUMNS = ["subject_id", "n_images"]

# The files one training writes (usseg.train; the rule `train` names them, usseg.gap.files and
# TrainingOutputs.in_folder place them in a folder): output name -> file name.
TRAINING_FILES = {
    "model": "model.safetensors",
    "history": "history.csv",
    "timing": "timing.csv",
    "curves": "curves.png",
}

# The files one evaluation writes (usseg.evaluate; the rules name them from here:
# rules/common.smk `evaluation_outputs`): output name -> file name.
EVALUATION_FILES = {
    "per_image": "per_image.csv",
    "per_subject": "per_subject.csv",
    "summary": "summary.json",
    "overlays": "overlays.png",
    "confusion": "confusion.csv",
    "confusion_png": "confusion.png",
}

# results/experiments/{experiment}/timing.csv: one row per training epoch. Owned by the module that writes
# it, which every job's bridge (usseg.step) imports: owned here, an edit of this file would make every job stale.
TIMING_COLUMNS = history.TIMING_COLUMNS

# results/gap/loso.csv: one row per held-out labeled real subject (scores averaged over the fold's seeds).
LOSO_COLUMNS = ["held_out_subject", "n_images", "dice", "surface_dice", "n_seeds", "dice_seed_sd",
                "surface_dice_seed_sd"]
# results/gap/gap_closure.csv: one row per remedy, test set and metric (subject-level interval, seeds included).
GAP_CLOSURE_COLUMNS = ["remedy", "test_set", "metric", "baseline", "value", "delta", "ci_lo", "ci_hi", "n_subjects",
                       "n_seeds", "seed_sd"]
# results/gap/seed_effects.csv: one row per remedy, test set, metric and seed offset (the effect of that seed).
SEED_EFFECT_COLUMNS = ["remedy", "test_set", "metric", "seed", "baseline", "value", "delta"]
# results/gap/learning_curve.csv: per test set and metric, one row per share of the simulator subjects.
LEARNING_CURVE_COLUMNS = [
    "level", "mean", "ci_lo", "ci_hi", "n_subjects", "step_delta", "step_ci_lo", "step_ci_hi", "step_n_subjects",
    "n_seeds", "seed_sd", "step_seed_sd",
]
CURVE_COLUMNS = ["test_set", "metric", *LEARNING_CURVE_COLUMNS]

# ----------------------------------------------------------------------------- split names

TRAIN = "train"
VAL = "val"
UNLABELED = "unlabeled"
# splits.csv rows of image files the manifest set aside (no manifest row) that would have
# been in a test set: listed only so that `excluded_from` counts them.
SET_ASIDE = "set_aside"
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
    if split == SET_ASIDE:
        return (5, "")
    return (6, split)


# ----------------------------------------------------------------------------- JSON keys

# results/diagnostics/checklist.json
CHECKLIST_KEYS = ("overall", "checks")
CHECK_KEYS = ("id", "title", "status", "value", "threshold", "reason")
STATUSES = ("PASS", "WARN", "FAIL")
# results/experiments/{experiment}/eval/{test_set}/summary.json: the keys every
# reader may rely on (writers may add more; readers ignore what they do not know).
SUMMARY_KEYS = ("experiment", "test_set", "n_images", "n_subjects", "dice", "dice_mean_foreground")
# results/sanity/{experiment}.json and results/sanity/label_round_trip.json
SANITY_KEYS = ("experiment", "status", "overfit", "shuffled_label")
ROUND_TRIP_KEYS = ("status", "message", "images", "subjects", "worst_mismatch", "max_mismatch", "failures")
# results/nnunet/reference.json: the keys the report relies on (the reference's schedule and size).
NNUNET_REFERENCE_KEYS = ("device", "epochs", "iterations_per_epoch", "patch_size", "batch_size", "parameters")
# results/gap/when_to_stop.json: the keys of the file, and of each entry of its `kinds`
# ("remedy": a change to the training; "real_subjects": adding labeled real subjects).
WHEN_TO_STOP_KEYS = ("test_set", "metric", "n_subjects", "n_seeds", "alpha", "power", "change", "kinds", "text")
WHEN_TO_STOP_KIND_KEYS = (
    "estimable", "why", "n_subjects", "n_seeds", "sd_subject", "sd_subject_ci95", "df_subject", "sd_seed",
    "minimum_detectable_change", "minimum_detectable_change_range", "subjects_needed", "subjects_needed_range",
    "seed_floor", "sd_source", "text",
)
# results/gap/domain/{experiment}.json
DOMAIN_AUC_KEYS = ("remedy", "harmonises")
# results/provenance/**.json
PROVENANCE_KEYS = ("rule", "wildcards", "finished_utc", "inputs", "outputs", "params", "code", "versions")

# ----------------------------------------------------------------------------- named outputs


class _NamedOutputs:
    """One path per output name of the class's FILES (output name -> file name): where a step writes.

    A rule's job takes the paths from its named outputs (`from_rule`), so the
    rule is the one place they are named; a job that trains or evaluates many
    models (the gap study's arms, a semi-supervised teacher, the sanity checks,
    benchmarks and tests) puts them in a folder under the usual names (`in_folder`).
    """

    FILES: dict[str, str] = {}

    @classmethod
    def from_rule(cls, output):
        """From a rule's named outputs (snakemake.output, or any mapping of output name -> path)."""
        def named(name):
            return output.get(name) if isinstance(output, Mapping) else getattr(output, name, None)

        missing = [name for name in cls.FILES if named(name) is None]
        if missing:
            raise UssegError(f"the rule names no output {', '.join(missing)}: its job writes usseg.contracts."
                             f"{cls.__name__}, so its output section must name each of {', '.join(cls.FILES)}.")
        return cls(**{name: Path(str(named(name))) for name in cls.FILES})

    @classmethod
    def in_folder(cls, folder):
        """The files under their usual names (FILES) in `folder`."""
        return cls(**{name: Path(folder) / file for name, file in cls.FILES.items()})

    def make_folders(self) -> None:
        """Create the folder of every output (a rule's outputs may lie in different folders)."""
        for f in dataclasses.fields(self):
            getattr(self, f.name).parent.mkdir(parents=True, exist_ok=True)


def _outputs_class(name: str, files: dict[str, str], doc: str) -> type:
    """A frozen dataclass with one Path field per output name of `files` (the field list is not kept twice)."""
    return dataclasses.make_dataclass(name, [(n, Path) for n in files], bases=(_NamedOutputs,), frozen=True,
                                      namespace={"FILES": files, "__doc__": doc, "__module__": __name__})


TrainingOutputs = _outputs_class(
    "TrainingOutputs", TRAINING_FILES,
    "Where one training writes (usseg.train.train_experiment): model, history, timing, curves (TRAINING_FILES).")
EvaluationOutputs = _outputs_class(
    "EvaluationOutputs", EVALUATION_FILES,
    "Where one evaluation writes (usseg.evaluate.evaluate_experiment): per_image, per_subject, summary, "
    "overlays, confusion, confusion_png (EVALUATION_FILES).")

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


def parse_bool(value) -> bool:
    """A boolean CSV cell ("True", "false", "1", ...) as a bool; DataError for anything else."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "1", "yes"):
            return True
        if v in ("false", "0", "no", ""):
            return False
        raise DataError(f"expected a boolean (True/False) in a CSV column, got {value!r}.")
    return bool(value)


def _typed(df: pd.DataFrame, path, bools=(), ints=(), floats=()) -> pd.DataFrame:
    for col in bools:
        try:
            df[col] = df[col].map(parse_bool)
        except DataError as err:
            raise DataError(f"{path}, column {col}: {err}") from None
    for col in ints:
        try:
            df[col] = df[col].astype("int64")
        except ValueError:
            raise DataError(f"{path}, column {col}: expected whole numbers; the file is damaged. "
                            "Delete it and re-run the step that wrote it.") from None
    for col in floats:
        try:
            df[col] = pd.to_numeric(df[col].replace("", "nan")).astype("float64")
        except ValueError:
            raise DataError(f"{path}, column {col}: expected numbers; the file is damaged. "
                            "Delete it and re-run the step that wrote it.") from None
    return df


def read_manifest(path) -> pd.DataFrame:
    """results/manifest.csv, its columns checked and typed (has_mask bool, width/height int)."""
    df = read_table(path, MANIFEST_COLUMNS, "manifest")
    return _typed(df, path, MANIFEST_BOOL_COLUMNS, MANIFEST_INT_COLUMNS)


def read_decode_report(path) -> pd.DataFrame:
    """results/labels/decode_report.csv, its columns checked and typed (flagged, usable bool; fractions and
    distances float)."""
    df = read_table(path, DECODE_REPORT_COLUMNS, "decode_masks")
    return _typed(df, path, DECODE_REPORT_BOOL_COLUMNS, floats=DECODE_REPORT_FLOAT_COLUMNS)


def read_numbers(path, columns, step: str, *, text=()) -> pd.DataFrame:
    """A CSV contract file of numbers (empty cells are NaN) with `text` columns kept as text."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist: run the {step} step first.")
    try:
        df = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; delete it and re-run the {step} step.") from None
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path} is not a readable CSV ({err}); delete it and re-run the {step} step.") from None
    require_columns(df, columns, path, step)
    for col in text:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    bad = [c for c in columns if c not in text and not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{path}: column(s) {', '.join(bad)} hold text where numbers belong; delete the file "
                        f"and re-run the {step} step.")
    return df


def read_per_subject(path) -> pd.DataFrame:
    """An evaluation's per_subject.csv: subject_id (text), n_images, then numbers per class."""
    return read_numbers(path, PER_SUBJECT_KEY_COLUMNS, "evaluate", text=("subject_id",))


def read_timing(path) -> pd.DataFrame:
    """A training's timing.csv."""
    return read_numbers(path, TIMING_COLUMNS, "train")


def read_gap_closure(path) -> pd.DataFrame:
    """results/gap/gap_closure.csv."""
    return read_numbers(path, GAP_CLOSURE_COLUMNS, "gap_summary", text=("remedy", "test_set", "metric"))


def read_seed_effects(path) -> pd.DataFrame:
    """results/gap/seed_effects.csv."""
    return read_numbers(path, SEED_EFFECT_COLUMNS, "gap_summary", text=("remedy", "test_set", "metric"))


def read_loso(path) -> pd.DataFrame:
    """results/gap/loso.csv (no rows when gap_study.loso is off)."""
    return read_numbers(path, LOSO_COLUMNS, "gap_summary", text=("held_out_subject",))


def read_learning_curve(path) -> pd.DataFrame:
    """results/gap/learning_curve.csv (no rows when the learning curve is off)."""
    return read_numbers(path, CURVE_COLUMNS, "gap_summary", text=("test_set", "metric"))


def read_when_to_stop(path) -> dict:
    """results/gap/when_to_stop.json (each of its `kinds` checked too)."""
    data = read_json(path, WHEN_TO_STOP_KEYS, "gap_summary")
    kinds = data["kinds"]
    if not isinstance(kinds, dict):
        raise DataError(f"{path}: `kinds` must map each kind of change to its numbers; delete the file and re-run "
                        "the gap_summary step.")
    for kind, entry in kinds.items():
        missing = [k for k in WHEN_TO_STOP_KIND_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise DataError(f"{path}: kinds.{kind} lacks the key(s) {', '.join(missing)}; delete the file and "
                            "re-run the gap_summary step.")
    return data


def read_sanity(path) -> dict:
    """results/sanity/{experiment}.json (the training checks of one experiment)."""
    return read_json(path, SANITY_KEYS, "sanity_training")


def read_round_trip(path) -> dict:
    """results/sanity/label_round_trip.json."""
    return read_json(path, ROUND_TRIP_KEYS, "label_round_trip")


def read_nnunet_reference(path) -> dict:
    """results/nnunet/reference.json."""
    return read_json(path, NNUNET_REFERENCE_KEYS, "nnunet_train_predict")


def read_domain_auc(path) -> dict:
    """results/gap/domain/{experiment}.json."""
    return read_json(path, DOMAIN_AUC_KEYS, "gap_domain")


def read_split_table(manifest_csv, splits_csv) -> pd.DataFrame:
    """splits.csv joined with manifest.csv on image_id (one row per split row), both checked.

    subject_id comes from splits.csv (the split step owns it).
    """
    manifest = read_manifest(manifest_csv)
    splits = read_splits(splits_csv)
    # Files the manifest set aside have no manifest row: counted in excluded_from, never read.
    counted_only = ~splits["image_id"].isin(manifest["image_id"]) & (splits["excluded_from"].astype(str) != "")
    splits = splits[~counted_only]
    cols = [c for c in manifest.columns if c != "subject_id"]
    table = splits.merge(manifest[cols], on="image_id", how="left", validate="one_to_one", indicator=True)
    missing = table.loc[table["_merge"] != "both", "image_id"].tolist()
    if missing:
        raise DataError(
            f"{splits_csv}: {len(missing)} image ids are not in {manifest_csv} (e.g. {missing[0]!r}); "
            "re-run the manifest and split steps."
        )
    return table.drop(columns="_merge")
