"""The style the project promises stays true: snakemake --lint, snakefmt and ruff are clean (make lint)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    proc = run(str(BIN / "snakemake"), "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Lints for" not in out, out[-4000:]


def test_snakefmt_and_ruff_are_clean():
    fmt = run(str(BIN / "snakefmt"), "--check", "Snakefile", "rules/")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    ruff = run(str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "scripts", "tools")
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
