"""The workstation profile (profiles/default/): jobs in parallel, GPU trainings one at a time.

Snakemake loads profiles/default/profile.yaml on its own for this workflow. It
declares one "gpu" token; a training holds it only when it will run on a GPU
(usseg.resources.gpu_token), so on a workstation with one GPU two trainings
never share it, while on a CPU-only machine (like the test machines) trainings
run side by side, each with half the cores. The order of "rule train" /
"Finished jobid" events in Snakemake's output tells which jobs overlapped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY_CONFIG, run_snakemake, sibling_copy
from dry_run import QUIET_KEEPS_JOBS
from usseg.resources import train_threads

pytestmark = pytest.mark.e2e

DEFAULT_PROFILE = REPO / "profiles" / "default" / "profile.yaml"
EVENT = re.compile(r"^(?:local)?rule (\w+):$|^Finished jobid: (\d+) \(Rule: (\w+)\)$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")


def most_concurrent(text: str, rule: str) -> int:
    """The largest number of `rule` jobs running at the same time, from Snakemake's event log."""
    running: set[str] = set()
    most = 0
    starting = None
    for line in text.splitlines():
        if match := EVENT.match(line):
            if match.group(1):
                starting = match.group(1)
            elif match.group(3) == rule:
                running.discard(match.group(2))
        elif starting and (match := JOBID.match(line)):
            if starting == rule:
                running.add(match.group(1))
                most = max(most, len(running))
            starting = None
    return most


def retrain_all(tiny_run: Path, tmp_path_factory, *profile_args: str) -> tuple[str, int]:
    """Retrain every experiment of the tiny run at once with 4 cores (nothing upstream runs)."""
    run = sibling_copy(tiny_run, tmp_path_factory)
    experiments = list(yaml.safe_load(TINY_CONFIG.read_text())["experiments"])
    targets = [f"results/experiments/{e}/model.safetensors" for e in experiments]
    proc = run_snakemake(
        run, "--cores", "4", *QUIET_KEEPS_JOBS, *profile_args, "--forcerun", "train", "--", *targets
    )
    text = proc.stdout + proc.stderr
    started = [m.group(1) for m in map(EVENT.match, text.splitlines()) if m and m.group(1)]
    assert started == ["train"] * len(experiments), text[-3000:]
    return text, most_concurrent(text, "train")


def test_on_a_cpu_only_machine_trainings_share_the_cores(tiny_run, tmp_path_factory):
    """No training asks for the GPU token here, so they run side by side, each with half of the 4
    cores, as far as this machine has CPUs for them (usseg.resources.train_threads)."""
    assert yaml.safe_load(DEFAULT_PROFILE.read_text())["resources"]["gpu"] == 1
    text, most = retrain_all(tiny_run, tmp_path_factory)
    assert f"Using workflow specific profile {DEFAULT_PROFILE.parent}" in text
    assert most > 1, f"trainings waited for each other on a machine without a GPU:\n{text[-3000:]}"
    threads = train_threads(4)
    # Snakemake names a job's threads only when there are more than one.
    assert (f"threads: {threads}" in text) if threads > 1 else ("threads: 2" not in text), text[-3000:]


def test_trainings_that_use_the_gpu_run_one_at_a_time(tiny_run, tmp_path_factory):
    """As on a one-GPU workstation: each training holds the profile's one gpu token."""
    text, most = retrain_all(tiny_run, tmp_path_factory, "--set-resources", "train:gpu=1")
    assert most == 1, f"{most} trainings ran at once on the one GPU:\n{text[-3000:]}"
