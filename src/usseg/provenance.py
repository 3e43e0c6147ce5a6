"""What made a file: the rule, the hashes of its inputs, its parameters, the code and library versions.

Every workflow step writes one provenance record (results/provenance/...json)
when it finishes, so the report can tell, for any figure or table, exactly
what produced it. A record holds no clock time, so two identical runs write
identical records; when a job ran is in its log and results/benchmarks/.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Outputs that hold clock times (seconds per epoch): listed in a record but not
# hashed, so that two identical runs write identical records.
TIMING_OUTPUTS = ("timing",)

TRACKED_PACKAGES = ("usseg", "torch", "monai", "snakemake", "numpy", "pandas", "scikit-learn", "pillow")

# Snakemake's marker in every directory() output: it writes the empty file
# after the rule finished (after the rule's record), and its time is how
# Snakemake dates the folder. Not the rule's output, so never part of a
# folder's digest: the record and the folder would otherwise never match.
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def folder_files(path: Path) -> list[Path]:
    """The files of a folder output, sorted, without Snakemake's timestamp marker."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != SNAKEMAKE_TIMESTAMP)


def describe_path(path: str | Path) -> dict:
    """sha256 of a file; for a folder, one digest over its files' relative names and digests
    (Snakemake's timestamp marker left out)."""
    path = Path(path)
    if path.is_file():
        return {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.is_dir():
        digest = hashlib.sha256()
        n_files = 0
        for f in folder_files(path):
            # os.fsencode: a name that is not UTF-8 (Latin-1 bytes) is hashed as its bytes.
            digest.update(os.fsencode(f.relative_to(path).as_posix()))
            digest.update(sha256_file(f).encode())
            n_files += 1
        return {"sha256": digest.hexdigest(), "files": n_files}
    return {"sha256": None, "missing": True}


def code_version(repo_dir: str | Path = ".") -> dict:
    """Git commit of the workflow and whether tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "dirty": None, "note": "not a git checkout"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "dirty": bool(status)}


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def provenance_record(
    rule: str,
    inputs: dict[str, list[str]],
    outputs: dict[str, list[str]],
    params: dict,
    wildcards: dict | None = None,
    repo_dir: str | Path = ".",
) -> dict:
    return {
        "rule": rule,
        "wildcards": _jsonable(wildcards or {}),
        "inputs": {name: {p: describe_path(p) for p in paths} for name, paths in inputs.items()},
        "outputs": {
            name: {p: {"timing": True} if name in TIMING_OUTPUTS else describe_path(p) for p in paths}
            for name, paths in outputs.items()
        },
        "params": _jsonable(params),
        "code": code_version(repo_dir),
        "versions": library_versions(),
    }


def write_provenance(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
