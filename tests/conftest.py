"""Shared fixtures: running the real workflow on the tiny config."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
# What a copy of the workflow needs besides the data: the Snakefile and
# everything its rules name (scripts, code inputs, the conda env file, profiles).
# tiny_run's console output, beside its results.
CONSOLE = "console"
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "scripts", "src", "envs", "configs", "docs", "profiles", "tools"]


def tiny_config() -> dict:
    """configs/tiny.yaml applied over config.yaml as the workflow does (before schema defaults), with
    the keys that follow the dataset (test_sets, train_modalities: auto) resolved as the workflow does.

    configs/tiny.yaml is an overlay holding only what differs from config.yaml;
    this is the whole configuration of the tests' run, e.g. to write as a
    project's config.yaml or to read test_sets from.
    """
    import yaml

    from usseg.config import apply_overlay, derive_dataset_defaults

    return derive_dataset_defaults(apply_overlay(
        yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(TINY_CONFIG.read_text())
    ))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def snakemake_cmd(workdir: Path, *args: str, configfile: Path = TINY_CONFIG) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        *args,
    ]


def run_snakemake(
    workdir: Path, *args: str, configfile: Path = TINY_CONFIG, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's workflow with `workdir` as working directory."""
    env = dict(os.environ)
    # Scripts run with the interpreter found on PATH: make it this one.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        snakemake_cmd(workdir, *args, configfile=configfile),
        cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(autouse=True)
def _no_reading_rule_left_behind():
    """Every test starts and ends with no dataset reading rule installed (usseg.images: read_dataset_root
    installs one process-wide)."""
    from usseg.images import ReadingRule, use_reading_rule

    use_reading_rule(ReadingRule())
    yield
    use_reading_rule(ReadingRule())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A complete `snakemake report` run on configs/tiny.yaml, shared by the end-to-end tests.

    Tests must not modify it; copy it (copy_run) to change anything.
    """
    workdir = tmp_path_factory.mktemp("tiny_run")
    proc = run_snakemake(workdir, "--cores", "2", "report")
    # What the run printed, for the tests of its console (tests/test_console_workflow.py).
    (workdir / CONSOLE).mkdir()
    (workdir / CONSOLE / "stdout.txt").write_text(proc.stdout)
    (workdir / CONSOLE / "stderr.txt").write_text(proc.stderr)
    return workdir


def copy_workflow_files(dst: Path, names=WORKFLOW_FILES) -> None:
    """Copy the named repository files and folders into dst, file times kept, caches left out."""
    for name in names:
        src, target = REPO / name, dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src,
                target,
                symlinks=True,
                copy_function=shutil.copy2,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(src, target)


def tree_digests(root: Path, rel: str) -> dict[str, str]:
    """sha256 of every file below root/rel (or of root/rel itself), by path relative to root."""
    base = root / rel
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    assert files, f"{base} is missing or empty"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def copy_run(src: Path, dst: Path) -> Path:
    """Copy a finished run, keeping file times (Snakemake decides staleness by them)."""
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
    return dst


def sibling_copy(tiny_run: Path, tmp_path_factory, name: str = "run") -> Path:
    """A copy of tiny_run beside it (same parent folder), file times kept.

    The rules name the usseg modules they run by their path relative to the
    working directory, and Snakemake re-runs a job whose recorded set of
    input paths changed (the input trigger). A copy at another depth would see
    every job's inputs "changed"; beside tiny_run the paths are the same.
    """
    dst = tmp_path_factory.mktemp(name)
    dst.rmdir()
    copy_run(tiny_run, dst)
    assert os.path.relpath(REPO, dst) == os.path.relpath(REPO, tiny_run)
    return dst
