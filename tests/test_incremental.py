"""Incremental re-runs: after a complete run, a change re-runs exactly the jobs it affects.

Dry runs on copies of the shared tiny run (tiny_run). Snakemake 9 re-runs a
job when one of its default rerun triggers fires: mtime (an input is newer
than an output), params (a `params:` value differs from the one recorded in
.snakemake/metadata), input (the set of input files changed), software-env
(conda/container/env-modules, not used here) and code (a shell/run block or
the `script:` file changed). Rules take config values through params and the
usseg modules they run as inputs, so these triggers are what these tests check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import (
    REPO,
    TINY_CONFIG,
    copy_run,
    copy_workflow_files,
    run_snakemake,
    sibling_copy,
    tiny_config,
)
from dry_run import QUIET_KEEPS_JOBS, job_name, parse_dry_run

pytestmark = pytest.mark.e2e

NOTHING_TO_DO = "Nothing to be done"
# The workflow files a run needs: a private copy may be edited without touching the repository.


def dry_run(
    workdir: Path, configfile: Path = TINY_CONFIG, snakefile: Path | None = None
) -> tuple[set[str], str]:
    """The jobs (rule, rule@experiment, rule@experiment-test_set) a dry run would run."""
    args = ["--dry-run", *QUIET_KEEPS_JOBS, "report"]
    if snakefile is not None:
        args = ["--snakefile", str(snakefile), *args]  # the last --snakefile wins
    proc = run_snakemake(workdir, *args, configfile=configfile)
    text = proc.stdout + proc.stderr
    jobs = parse_dry_run(text)
    names = [job_name(j["rule"], j["wildcards"]) for j in jobs]
    assert len(names) == len(set(names)), f"a job is listed twice:\n{text[-3000:]}"
    if not names:
        assert NOTHING_TO_DO in text, text[-3000:]
    else:
        _check_job_stats(text, jobs)
    return set(names), text


def _check_job_stats(text: str, jobs: list[dict]) -> None:
    """The parsed job blocks agree with Snakemake's own job-count table."""
    lines = text.splitlines()
    start = lines.index("Job stats:")
    counts: dict[str, int] = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    parsed: dict[str, int] = {}
    for job in jobs:
        parsed[job["rule"]] = parsed.get(job["rule"], 0) + 1
    assert parsed == counts, f"job blocks {parsed} disagree with the job-stats table {counts}"


def modified_config(tmp_path: Path, change) -> Path:
    """A copy of configs/tiny.yaml with `change(config)` applied, key order kept.

    Snakemake compares params by their repr, so a reordered dict would count as changed.
    """
    config = tiny_config()
    change(config)
    path = tmp_path / "modified.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_nothing_changed_means_nothing_to_do(tiny_run, tmp_path_factory):
    # How fast that dry run is lives in benchmarks/dataset_fingerprint.py (docs/benchmarks.md),
    # not in a timed test that a busy machine would fail.
    run = sibling_copy(tiny_run, tmp_path_factory)
    jobs, text = dry_run(run)
    assert jobs == set(), f"a complete run, unchanged, still has jobs to do: {sorted(jobs)}\n{text[-3000:]}"


def test_one_experiment_parameter_reruns_only_that_experiment(tiny_run, tmp_path, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory)
    config = tiny_config()
    experiment = "liver_unet"
    assert experiment in config["experiments"]
    others = set(config["experiments"]) - {experiment}
    assert others, "the tiny config needs a second experiment for this test to mean anything"

    def more_epochs(cfg):
        cfg["experiments"][experiment]["epochs"] = cfg["experiment_defaults"]["epochs"] + 1

    jobs, text = dry_run(run, modified_config(tmp_path, more_epochs))
    # Its sanity checks train the same experiment, so they re-run too.
    expected = {f"train@{experiment}", f"sanity_training@{experiment}", "verdict", "report"} | {
        f"evaluate@{experiment}-{test_set}" for test_set in config["test_sets"]
    }
    assert jobs == expected, text[-4000:]


def test_diagnostics_threshold_reruns_only_diagnostics_and_report(
    tiny_run, tmp_path, tmp_path_factory
):
    run = sibling_copy(tiny_run, tmp_path_factory)

    def stricter(cfg):
        cfg["diagnostics"]["domain_auc"] = {"warn_above": 0.7, "fail_above": 0.85}

    jobs, text = dry_run(run, modified_config(tmp_path, stricter))
    assert jobs == {"diagnostics", "verdict", "report"}, text[-4000:]


def _private_workflow(tiny_run: Path, base: Path) -> tuple[Path, Path]:
    """A copy of tiny_run and of the workflow whose code inputs have the paths tiny_run recorded.

    As in sibling_copy, the paths of the code inputs must stay what tiny_run
    recorded, so the copies are laid out as tiny_run and the repository are:
    run/<relative path from tiny_run to the repository> is the copied workflow.
    """
    rel = Path(os.path.relpath(REPO, tiny_run))
    ups = rel.parts.count("..")
    assert ups >= 1 and rel.parts[:ups] == ("..",) * ups, rel
    run = base.joinpath("_run", *["_d"] * (ups - 1))
    workflow = base.joinpath(*rel.parts[ups:])
    assert not workflow.is_relative_to(base / "_run"), rel
    copy_run(tiny_run, run)
    workflow.mkdir(parents=True, exist_ok=True)
    copy_workflow_files(workflow)
    assert os.path.relpath(workflow, run) == str(rel)
    return run, workflow


# (module edited, the jobs it must re-run besides everything downstream of them)
LIBRARY_CHANGES = {
    "splits.py": "split and what follows",
    # Config loading and checking run in Snakemake itself; values reach the jobs as params, so
    # editing the module re-runs no job (its code is no rule's input).
    "config.py": "no job",
    "templates/report.css": "report only",  # package data the report module names
    # One data check: the diagnostics, the final checklist that reads them, the report; no training.
    "diagnostics/leakage.py": "diagnostics, verdict and report",
    # An augmentation family no tiny experiment uses: no training can run it (usseg.training.code).
    "remedies/us_augment.py": "no job",
    # One report section: the report only.
    "report/sections/checks.py": "report only",
}


@pytest.mark.parametrize("module", list(LIBRARY_CHANGES))
def test_library_change_reruns_the_rule_and_what_follows(tiny_run, tmp_path, module):
    run, workflow = _private_workflow(tiny_run, tmp_path)
    snakefile = workflow / "Snakefile"
    jobs, text = dry_run(run, snakefile=snakefile)
    assert jobs == set(), (
        f"the copied workflow should be up to date before the change:\n{text[-3000:]}"
    )

    edited = workflow / "src" / "usseg" / module
    assert not (REPO / "src" / "usseg" / module).samefile(edited)
    edited.write_text(edited.read_text() + "\n/* a change */\n" if module.endswith(".css")
                      else edited.read_text() + "\n# a change\n")

    jobs, text = dry_run(run, snakefile=snakefile)
    config = tiny_config()
    experiments, test_sets = list(config["experiments"]), list(config["test_sets"])
    # The report also shows the pipeline checks, which read the split too, and the final verdict
    # (rule verdict) reads the evaluations.
    from usseg.checks.nnunet_reference import is_installed
    from usseg.checks.pipeline import sanity_experiments

    nnunet = (
        {"nnunet_export", "nnunet_train_predict"} | {f"nnunet_evaluate@{t}" for t in test_sets}
        if config["nnunet"]["enabled"] and is_installed() else set()
    )
    downstream_of_split = (
        {"split", "diagnostics", "report", "label_round_trip", "verdict"}
        | {f"train@{e}" for e in experiments}
        | {f"evaluate@{e}-{t}" for e in experiments for t in test_sets}
        | {f"sanity_training@{e}" for e in sanity_experiments(config)}
        | nnunet
    )
    expected = {
        "splits.py": downstream_of_split,
        "config.py": set(),
        "templates/report.css": {"report"},
        "diagnostics/leakage.py": {"diagnostics", "verdict", "report"},
        "remedies/us_augment.py": set(),
        "report/sections/checks.py": {"report"},
    }[module]
    assert jobs == expected, text[-4000:]
    assert not jobs & {"demo_data", "manifest"}


def _manifest_jobs(workdir: Path, data_root: Path) -> tuple[set[str], str]:
    proc = run_snakemake(
        workdir, "--dry-run", *QUIET_KEEPS_JOBS, "manifest", "--config", f"data_root={data_root}"
    )
    text = proc.stdout + proc.stderr
    jobs = {j["rule"] for j in parse_dry_run(text)}
    if not jobs:
        assert NOTHING_TO_DO in text, text[-3000:]
    return jobs, text


def test_a_change_inside_data_root_makes_manifest_stale(tiny_run, tmp_path):
    """A file changed, added (deep down) or removed under data_root re-runs manifest; a touch does not."""
    data = tmp_path / "data"
    shutil.copytree(tiny_run / "data" / "demo" / "abdominal_US", data)
    work = tmp_path / "work"
    work.mkdir()
    run_snakemake(work, "--cores", "1", "manifest", "--config", f"data_root={data}")
    assert (work / "results" / "dataset_fingerprint.json").is_file()
    jobs, text = _manifest_jobs(work, data)
    assert jobs == set(), text[-3000:]

    def files(folder: str) -> list[Path]:  # the demo nests the modalities like the Kaggle download
        return sorted(p for p in data.rglob("*") if p.is_file() and p.parent.as_posix().endswith(folder))

    images, test_images = files("AUS/images/train"), files("AUS/images/test")
    masks, rus_test = files("AUS/annotations/train"), files("RUS/images/test")
    assert images and test_images and masks and rus_test
    changes = {
        "a test image copied over a train image": lambda: shutil.copyfile(test_images[0], images[0]),
        "a new file three folders down": lambda: shutil.copyfile(rus_test[0], rus_test[0].with_name("x9.jpg")),
        "a removed mask": lambda: masks[0].unlink(),
    }
    for what, change in changes.items():
        change()
        jobs, text = _manifest_jobs(work, data)
        assert jobs == {"manifest"}, f"{what}: manifest is not stale\n{text[-3000:]}"
        run_snakemake(work, "--cores", "1", "manifest", "--config", f"data_root={data}")

    os.utime(images[1])  # touched, same bytes
    jobs, text = _manifest_jobs(work, data)
    assert jobs == set(), text[-3000:]
