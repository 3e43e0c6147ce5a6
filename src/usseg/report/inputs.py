"""Reading the report's input files (with errors that name them) and writing the page."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from usseg.errors import UssegError


class ReportInputError(UssegError):
    """A file the report needs is missing or unreadable."""


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{path}: cannot read it as JSON ({err}); re-run the rule that makes it.") from None


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: cannot read it as CSV ({err}); re-run the rule that makes it.") from None


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def required_inputs(config: dict) -> list[tuple[str, str]]:
    """(path relative to results/, rule that makes it) of every file the report reads."""
    diag = [
        "checklist.json", "checklist.md", "composition.png", "composition.csv", "subjects.png", "subjects.csv",
        "frames_per_subject.csv", "class_balance.png", "class_balance.csv", "class_weights.json",
        "domain_shift.png", "domain_shift.json", "intensity_histograms.csv", "label_flags.csv",
        "leakage.json", "near_duplicates.csv", "baselines.csv",
        "label_shift.png", "label_shift.csv", "label_shift.json", "image_quality.png", "image_quality.csv",
    ] + [f"label_gallery_{m}.png" for m in config["dataset"]["modalities"]]
    files = [(f"diagnostics/{name}", "diagnostics") for name in diag]
    files += [("manifest_issues.csv", "manifest"), ("labels/decode_report.csv", "decode_masks")]
    files += [("provenance/diagnostics.json", "diagnostics"), ("provenance/manifest.json", "manifest"),
              ("provenance/decode_masks.json", "decode_masks")]
    for exp in config["experiments"]:
        files += [(f"experiments/{exp}/history.csv", "train"), (f"experiments/{exp}/curves.png", "train"),
                  (f"provenance/train/{exp}.json", "train")]
        for ts in config["test_sets"]:
            base = f"experiments/{exp}/eval/{ts}"
            files += [(f"{base}/summary.json", "evaluate"), (f"{base}/overlays.png", "evaluate"),
                      (f"{base}/confusion.png", "evaluate"), (f"provenance/evaluate/{exp}/{ts}.json", "evaluate")]
    return files
