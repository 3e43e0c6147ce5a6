"""What the report says about the run itself: its run state (with a rebuild command that carries the
run's options), the parts that could not train on this data, and the data-only first look."""

from __future__ import annotations

import dataclasses
import os

import pytest

from test_report import fresh, run_inputs  # noqa: F401 (fresh is a fixture)
from usseg import rerun
from usseg.report import build_report
from usseg.trainability import TrainingPlan


@pytest.fixture
def options(monkeypatch):
    monkeypatch.setenv(rerun.RERUN_ENV, "--configfile configs/tiny.yaml")


def _build(config, workdir, inputs) -> str:
    out = workdir / "r.html"
    build_report(config, inputs, out)
    return out.read_text()


def test_a_changed_output_makes_the_run_not_current_with_a_command_that_rebuilds_it(fresh, options):  # noqa: F811
    config, workdir, results = fresh
    assert "Run state: <span class=\"ok\">current</span>" in _build(config, workdir, run_inputs(config, results))
    # Snakemake's marker in a folder output is not a change.
    (results / "labels").mkdir(exist_ok=True)
    (results / "labels" / ".snakemake_timestamp").write_bytes(b"")
    assert "Run state: <span class=\"ok\">current</span>" in _build(config, workdir, run_inputs(config, results))
    # A hand-edited table: Snakemake would not re-run its rule (the file is newer than its inputs).
    flags = results / "diagnostics" / "label_flags.csv"
    flags.write_text(flags.read_text() + "\n")
    text = _build(config, workdir, run_inputs(config, results))
    assert "Run state: <span class=\"bad\">not current</span>" in text
    assert "label_flags.csv</code>: changed since rule diagnostics recorded it" in text
    assert "snakemake report --configfile configs/tiny.yaml --forcerun diagnostics" in text


def test_experiments_that_cannot_train_are_left_out_and_the_page_says_why(fresh, options):  # noqa: F811
    config, workdir, results = fresh
    names = list(config["experiments"])
    reason = "no labeled training images in modality AUS"
    plan = TrainingPlan(untrained=dict.fromkeys(names, reason), gap="it trains a, which cannot be trained")
    inputs = dataclasses.replace(run_inputs(config, results), experiments=[], plan=plan, history={}, curves={},
                                 timing={}, summaries={}, overlays={}, confusion={}, sanity={}, gap={})
    text = _build(config, workdir, inputs)
    assert "No experiment could be trained" in text and f"({reason})" in text
    assert "The data checks and the verdict need no training" in text
    assert 'id="verdict"' in text and "0 experiments" in text
    assert "Gap study not run" in text


def test_the_first_look_has_the_data_checks_and_no_training(fresh, options):  # noqa: F811
    config, workdir, results = fresh
    inputs = dataclasses.replace(run_inputs(config, results), experiments=[], with_training=False, history={},
                                 curves={}, timing={}, summaries={}, overlays={}, confusion={}, sanity={}, gap={})
    text = _build(config, workdir, inputs)
    assert "First look" in text and "snakemake report --configfile configs/tiny.yaml" in text
    assert 'id="verdict"' in text and 'id="checks"' in text
    assert os.path.getsize(workdir / "r.html") > 0
