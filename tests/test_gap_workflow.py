"""End to end: the gap study's targets on the tiny run (one remedy, two LOSO folds, a two-point curve).

Reuses the tests' tiny run (its four experiments are already trained); only the
study's own jobs run here.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, run_snakemake, sibling_copy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def gap_run(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory, "gap")
    overlay = yaml.safe_load(TINY_CONFIG.read_text())
    overlay["experiments"]["multiorgan_fov_norm"] = {"loss": {"class_weights": "auto"},
                                                     "remedy": {"name": "fov_normalise"}}
    overlay["gap_study"] = {"enabled": True, "baseline": "multiorgan_unet_weighted",
                            "learning_curve_fractions": [0.5, 1.0]}
    configfile = run / "gap.yaml"
    configfile.write_text(yaml.safe_dump(overlay))
    run_snakemake(run, "--cores", "2", "report", configfile=configfile)
    return run


def test_gap_outputs_follow_the_contract(gap_run):
    gap = gap_run / "results" / "gap"
    closure = pd.read_csv(gap / "gap_closure.csv")
    assert list(closure.columns) == ["remedy", "test_set", "metric", "baseline", "value", "delta", "ci_lo",
                                     "ci_hi", "n_subjects"]
    fov = closure[closure["remedy"] == "multiorgan_fov_norm"]
    assert {"dice", "surface_dice", "train_seconds", "domain_auc"} <= set(fov["metric"])
    assert {"test_aus", "test_rus", "all"} <= set(fov["test_set"])
    assert "loso_real_labels" in set(closure["remedy"])
    loso = pd.read_csv(gap / "loso.csv", dtype={"held_out_subject": str})
    assert loso.columns[0] == "held_out_subject" and len(loso) >= 2
    curve = pd.read_csv(gap / "learning_curve.csv")
    assert sorted(curve["level"].unique()) == [0.5, 1.0]
    stop = json.loads((gap / "when_to_stop.json").read_text())
    assert stop["n_subjects"] >= 2 and stop["text"]
    # DVC's shapes of the same numbers (docs/dvc.md).
    metrics = json.loads((gap / "gap_closure.json").read_text())
    for row in closure.itertuples():
        entry = metrics[row.remedy][row.test_set][row.metric]
        assert entry["delta"] == pytest.approx(row.delta) and (entry["ci_lo"] is None) == pd.isna(row.ci_lo)
    wide = pd.read_csv(gap / "learning_curve_dice.csv")
    assert list(wide.columns) == ["level", "test_aus", "test_rus"] and list(wide["level"]) == [0.5, 1.0]
    html = (gap_run / "results" / "report" / "report.html").read_text()
    assert '<section id="gap">' in html and "illustrate the method" in html
    # The verdict ranks by measurement and says when to stop, with the numbers of when_to_stop.json.
    verdict = html[html.index('<section id="verdict"'):html.index('<section id="gap"')]
    assert "What to try next, ranked by measured effect" in verdict and "not ranked by measurement" not in verdict
    assert f"With {stop['n_subjects']} labeled real subject" in verdict
