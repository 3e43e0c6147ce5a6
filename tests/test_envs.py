"""The conda environment for `snakemake --sdm conda` (envs/) and the one install recipe it shares with make.

Conda itself is not available here (its channels are out of reach), so the
environment is never created in the suite. What is tested: the env file and
its post-deploy script, run with a stand-in `python` that records what it is
asked to install, and that every rule names the environment (`snakemake
--lint` is clean: tests/test_style.py). The real pip install behind both is
what `make test` runs on a fresh clone.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import yaml

from conftest import REPO

ENV_FILE = REPO / "envs" / "usseg.yaml"
POST_DEPLOY = REPO / "envs" / "usseg.post-deploy.sh"


def fake_python(tmp_path: Path) -> tuple[dict, Path]:
    """A `python` on PATH that appends its arguments to a log instead of installing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    shim = bin_dir / "python"
    shim.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env, log


def test_env_file_holds_only_the_interpreter():
    """Package versions have one source of truth, pyproject.toml: the env file pins none of them."""
    spec = yaml.safe_load(ENV_FILE.read_text())
    assert "conda-forge" in spec["channels"]
    deps = spec["dependencies"]
    assert any(re.fullmatch(r"python=3\.\d+", d) for d in deps if isinstance(d, str)), deps
    assert "pip" in deps
    assert not any(isinstance(d, dict) for d in deps), "no pip: section, the post-deploy script installs"


def test_every_rule_uses_the_env_file():
    texts = [path.read_text() for path in sorted((REPO / "rules").glob("*.smk"))]
    # Any indentation: rules defined in a loop (rules/gap.smk) sit deeper.
    scripts = sum(len(re.findall(r"^\s+script:$", text, re.M)) for text in texts)
    condas = sum(len(re.findall(r"^\s+conda:\n\s+USSEG_ENV$", text, re.M)) for text in texts)
    assert scripts and condas == scripts
    common = (REPO / "rules" / "common.smk").read_text()
    relative = re.search(r'^USSEG_ENV = "(.+)"', common, re.M).group(1)
    # a conda: path is relative to the .smk file that names it
    assert (REPO / "rules" / relative).resolve() == ENV_FILE


def test_post_deploy_installs_torch_then_this_checkout(tmp_path):
    env, log = fake_python(tmp_path)
    env["TORCH_PIP_ARGS"] = "--index-url https://example.invalid/cu128"
    proc = subprocess.run(["bash", str(POST_DEPLOY)], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "-m pip install --quiet --index-url https://example.invalid/cu128 torch==2.13.0",
        f"-m pip install --quiet -e {REPO}",
    ]


def test_make_installs_the_dev_extras_with_the_same_script(tmp_path):
    env, log = fake_python(tmp_path)
    env["TORCH_SPEC"] = "torch==2.13.0+cu128"
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "pip-install.sh"), "python", "[dev]"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == [
        "-m pip install --quiet torch==2.13.0+cu128",
        f"-m pip install --quiet -e {REPO}[dev]",
    ]
    makefile = (REPO / "Makefile").read_text()
    assert "bash tools/pip-install.sh $(BIN)/python '[dev]'" in makefile


def test_post_deploy_outside_the_repository_fails_with_a_clear_message(tmp_path):
    env, log = fake_python(tmp_path)
    proc = subprocess.run(["bash", str(POST_DEPLOY)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert str(tmp_path) in proc.stderr and "Snakefile" in proc.stderr
    assert not log.exists(), "nothing may be installed from the wrong folder"
