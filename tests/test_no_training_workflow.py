"""Data that cannot train still get a verdict: a real-only dataset whose labels are all in its test split
(the reference dataset's real part) through the real workflow yields the HTML report with the verdict and
every data check, and says, on the page and on the console, that no experiment could be trained and why;
`snakemake diagnostics_report` writes the first look (the data checks only).

One workflow run on a 6-image dataset (no training, so about 25 CPU seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow_files, tiny_config
from console_lines import foreign_lines
from datasets import make_dataset

pytestmark = pytest.mark.e2e

REASON = "no labeled training images in modality RUS"


def real_only_config(data_root: Path) -> dict:
    """The tests' settings on a dataset of the real modality only (RUS); its experiments train on RUS."""
    config = tiny_config()
    dataset = config["dataset"]
    dataset["modalities"] = {"RUS": dataset["modalities"]["RUS"]}
    dataset["target_modality"] = "RUS"
    config["test_sets"] = ["test_rus"]
    config["experiment_defaults"]["train_modalities"] = ["RUS"]
    config["nnunet"]["train_modalities"] = ["RUS"]
    config["data_root"] = str(data_root)
    return config


@pytest.fixture(scope="module")
def real_only(tmp_path_factory) -> dict:
    """A workflow whose config.yaml describes the real-only dataset (an overlay cannot remove config.yaml's
    AUS modality), and the console of `snakemake report` run on it."""
    base = tmp_path_factory.mktemp("real_only")
    make_dataset(base / "data", modalities=("RUS",))
    workflow = base / "workflow"
    copy_workflow_files(workflow)
    (workflow / "config.yaml").write_text(yaml.safe_dump(real_only_config(base / "data"), sort_keys=False))
    run = base / "run"
    run.mkdir()
    dry = snakemake(workflow, run, "--dry-run", "report")
    proc = snakemake(workflow, run, "--cores", "2", "report")
    return {"workflow": workflow, "run": run, "proc": proc, "dry": dry}


def snakemake(workflow: Path, run: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(workflow / "Snakefile"), "--directory", str(run),
         *args], capture_output=True, text=True, env=env, timeout=900, check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_the_report_has_the_verdict_and_says_nothing_could_be_trained(real_only):
    html = (real_only["run"] / "results" / "report" / "report.html").read_text()
    assert 'id="verdict"' in html and 'id="checks"' in html and 'id="check-label_verification"' in html
    assert "No experiment could be trained" in html and f"({REASON})" in html
    assert 'id="experiments"' not in html  # nothing to show: the notice says why
    assert 'Run state: <span class="ok">current</span>' in html
    results = real_only["run"] / "results"
    assert not (results / "experiments").exists()  # no training job ran


def test_the_console_says_it_too(real_only):
    proc = real_only["proc"]
    assert proc.stdout.splitlines()[0].startswith("Dataset readiness: ")
    assert f"Not trained: liver_unet, multiorgan_unet_weighted, liver_rf: {REASON}." in proc.stdout
    assert "no experiment can be trained" in proc.stderr  # the split's warning
    assert not foreign_lines(proc.stderr), foreign_lines(proc.stderr)
    # Before the split ran, a dry run lists the data jobs and says the checkpoint may add more.
    assert "checkpoint" in real_only["dry"].stdout + real_only["dry"].stderr


def test_the_first_look_is_the_data_checks_alone(real_only):
    proc = snakemake(real_only["workflow"], real_only["run"], "--cores", "1", "diagnostics_report")
    html = (real_only["run"] / "results" / "report" / "diagnostics.html").read_text()
    assert 'id="verdict"' in html and "First look" in html and REASON in html
    assert "First look" in proc.stdout and "Report: results/report/diagnostics.html" in proc.stdout
    assert "Finished jobid" in proc.stderr and "(Rule: report)" not in proc.stderr
