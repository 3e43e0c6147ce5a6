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
from usseg.resources import available_cpus, cpu_slots

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
    """No training asks for the GPU token here, so they run side by side: given 4 cores, as many at
    once as this machine has CPUs (at most 4), each declaring its share of the cores
    (usseg.resources.cpu_slots) while computing with its experiment's one thread."""
    assert yaml.safe_load(DEFAULT_PROFILE.read_text())["resources"]["gpu"] == 1
    text, most = retrain_all(tiny_run, tmp_path_factory)
    assert f"Using workflow specific profile {DEFAULT_PROFILE.parent}" in text
    assert most <= min(4, available_cpus()), f"{most} trainings at once:\n{text[-3000:]}"
    assert most > 1 or available_cpus() == 1, f"trainings waited for each other on a CPU-only machine:\n{text[-3000:]}"
    share = cpu_slots(1, 4)
    # Snakemake names a job's threads only when there are more than one.
    assert (f"threads: {share}" in text) if share > 1 else ("threads: 2" not in text), text[-3000:]


def test_trainings_that_use_the_gpu_run_one_at_a_time(tiny_run, tmp_path_factory):
    """As on a one-GPU workstation: each training holds the profile's one gpu token."""
    text, most = retrain_all(tiny_run, tmp_path_factory, "--set-resources", "train:gpu=1")
    assert most == 1, f"{most} trainings ran at once on the one GPU:\n{text[-3000:]}"


SLURM_PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"


def _rules_that_may_hold_the_gpu() -> set[str]:
    """Every rule whose resources ask for the `gpu` token: the rules that train a network. Read from
    rules/*.smk; a rule made in a loop (`for _rule, ... in (("gap_arm", ...), ...)`, `rule: name: _rule`)
    once per name of its loop."""
    found = set()
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        looped = re.findall(r'^\s*\("(\w+)", "\w+",', text, flags=re.M)
        for block in re.split(r"(?m)^\s*rule\b", text)[1:]:
            if "gpu=" not in block.split("script:")[0]:
                continue
            plain = re.match(r" (\w+):", block)
            if plain:
                found.add(plain.group(1))
                continue
            assert re.search(r"name:\s*_rule\b", block), f"{smk}: a looped rule this test cannot name"
            found.update(looped)
    return found


def test_every_training_rule_gets_the_slurm_training_class():
    # One resource class for every rule that trains (issue 22: the gap study's trainings fell to the
    # defaults of 1 CPU, 4 GB and no GPU when the profile named `train` alone). A gap arm trains
    # gap_study.seeds models in one job: the class with a longer runtime.
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    training = profile["set-resources"]["train"]
    rules = _rules_that_may_hold_the_gpu()
    assert {"train", "sanity_training", "gap_arm", "gap_loso_arm", "nnunet_train_predict"} <= rules
    for rule in sorted(rules):
        resources = profile["set-resources"].get(rule) or {}
        assert {k: v for k, v in resources.items() if k != "runtime"} == \
            {k: v for k, v in training.items() if k != "runtime"}, f"{rule} is not in the training class"
        assert resources["runtime"] >= training["runtime"], f"{rule}: a shorter runtime than one training's"
    assert "&training" in SLURM_PROFILE.read_text()  # defined once
    assert "set-threads" not in profile  # a training's threads are its experiment's setting
