"""The dataset root: the folder at or below data_root that holds every modality folder.

Found once, by the manifest stage (usseg.manifest), which records it in
results/dataset_root.json; the later stages read that record instead of
searching again. The download may nest the root (abdominal_US/abdominal_US/).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from usseg import rerun
from usseg.errors import DataError
from usseg.images import ReadingRule, use_reading_rule

# Folders made by macOS zip tools that mirror the dataset with AppleDouble files.
SKIPPED_ROOT_SEARCH_DIRS = {"__MACOSX"}
_MAX_ROOT_SEARCH_DEPTH = 8


def _modality_names(modalities) -> list[str]:
    return list(modalities.keys()) if isinstance(modalities, dict) else list(modalities)


def find_dataset_root(data_root, modalities) -> Path:
    """The folder at or below `data_root` that holds every modality folder (e.g. AUS/ and RUS/).

    `modalities`: the folders it must hold (DatasetSpec.root_entries: each
    modality's folder, or the images folder of a modality that is the root itself).

    The Kaggle download nests it as abdominal_US/abdominal_US/. The shallowest
    match wins, ties broken by sorted path, so the answer never depends on the
    order the file system lists folders in.
    """
    data_root = Path(data_root)
    names = _modality_names(modalities)
    expected = ", ".join(f"{n}/" for n in names)
    if not data_root.exists():
        raise DataError(
            f"data_root {data_root} does not exist. Set data_root to the folder that holds "
            f"{expected} (for example the unzipped abdominal_US/), or set it to null to use the demo dataset."
        )
    if not data_root.is_dir():
        raise DataError(
            f"data_root {data_root} is a file, not a folder. Unzip the download and set data_root to the "
            f"folder that holds {expected}."
        )
    partial: list[str] = []
    seen: set[str] = set()
    level = [data_root]
    for _depth in range(_MAX_ROOT_SEARCH_DEPTH + 1):
        matches = []
        next_level = []
        for folder in level:
            real = os.path.realpath(folder)
            if real in seen:  # a symlink loop or a second link to the same folder
                continue
            seen.add(real)
            try:
                subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            present = [n for n in names if (folder / n).is_dir()]
            if len(present) == len(names):
                matches.append(folder)
            elif present:
                missing = ", ".join(f"{n}/" for n in names if n not in present)
                partial.append(
                    f"{folder} has {', '.join(p + '/' for p in present)} but not {missing}"
                )
            next_level.extend(p for p in subdirs if p.name not in SKIPPED_ROOT_SEARCH_DIRS)
        if matches:
            return min(matches, key=lambda p: p.as_posix())
        level = sorted(next_level, key=lambda p: p.as_posix())
        if not level:
            break
    try:
        top = sorted(p.name + "/" for p in data_root.iterdir() if p.is_dir())
    except OSError:
        top = []
    found = (
        "; ".join(partial)
        if partial
        else (
            f"folders directly in it: {', '.join(top[:20])}{' ...' if len(top) > 20 else ''}"
            if top
            else "it holds no folders"
        )
    )
    raise DataError(
        f"data_root {data_root} holds no folder with all of {expected} (searched {_MAX_ROOT_SEARCH_DEPTH} levels "
        f"deep; found: {found}). Point data_root at the unzipped dataset (the folder that contains {expected}), "
        f"or describe the folders your dataset uses (dataset.modalities and their folder, in an overlay: "
        f"docs/own-data.md; `python -m usseg.describe FOLDER` writes one)."
    )


# ----------------------------------------------------------------------------- the recorded root

ROOT_KEYS = ("data_root", "dataset_root")


def write_dataset_root(data_root, dataset_root, path, reading: ReadingRule | None = None) -> None:
    """Record the root the manifest found (results/dataset_root.json), so later stages read it, not search;
    and the dataset's reading rule (usseg.images: bit depth, size limit), which they install."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = Path(dataset_root).resolve()
    # Inside the working folder (the demo) the path is recorded relative to it, so the
    # record, and every provenance record that hashes it, is the same in any run folder.
    cwd = Path.cwd().resolve()
    shown = root.relative_to(cwd) if root.is_relative_to(cwd) else root
    record = {"data_root": shown_path(str(data_root)), "dataset_root": shown_path(str(shown))}
    if reading is not None:
        record["reading"] = reading.to_json()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_dataset_root(path) -> Path:
    """The dataset root recorded by the manifest stage; an error names the file and what to do.

    Installs the dataset's reading rule recorded beside it (usseg.images.use_reading_rule), so every
    pixel this process reads afterwards is read as the manifest decided.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the recorded dataset root ({err}); re-run the manifest rule "
                        f"(`{rerun.command('report', '--forcerun', 'manifest')}`).") from None
    if not isinstance(record, dict) or not isinstance(record.get("dataset_root"), str):
        raise DataError(f"{path}: expected {{'data_root', 'dataset_root'}}; re-run the manifest rule "
                        f"(`{rerun.command('report', '--forcerun', 'manifest')}`).")
    root = dataset_file("/", record["dataset_root"]) if Path(record["dataset_root"]).is_absolute() \
        else dataset_file(".", record["dataset_root"])
    reading = record.get("reading")
    use_reading_rule(ReadingRule.from_json(reading) if isinstance(reading, dict) else ReadingRule())
    if not root.is_dir():
        raise DataError(f"{path}: the recorded dataset root {root} is no longer a folder (moved or deleted); "
                        f"re-run the manifest rule (`{rerun.command('report', '--forcerun', 'manifest')}`) to find "
                        "it again.")
    return root


# ----------------------------------------------------------------------------- file names as text

# The \xNN escape that `shown_path` writes for a byte that is not UTF-8 (always 0x80 or above).
_ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")


def shown_path(rel: str) -> str:
    """A relative path as text every table can hold: bytes that are not UTF-8 shown as \\xNN.

    Linux allows any bytes in a file name; Python gives the ones that are not
    UTF-8 (Latin-1 names from an old archive) as lone surrogates, which no
    UTF-8 file can hold. The manifest lists such a file under this text and
    `dataset_file` finds the file again from it.
    """
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def dataset_file(root, rel: str) -> Path:
    """The file a manifest path (`shown_path` text, relative to the dataset root) names.

    A path with no escape is the file itself; otherwise the file whose name
    holds the bytes the \\xNN escapes stand for, unless a file is literally
    named with the escape (backslash, x, two digits), which the manifest
    would have listed under the same text and set aside as ambiguous.
    """
    path = Path(root) / rel
    if "\\x" not in rel or os.path.lexists(path):
        return path
    raw = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), rel)
    return Path(root) / os.fsdecode(raw.encode("utf-8", errors="surrogateescape"))
