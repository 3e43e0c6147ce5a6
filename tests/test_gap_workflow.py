"""End to end: the gap study's targets on the tiny run (two remedies, two seeds per arm, LOSO, a two-point curve).

Reuses the tests' tiny run (its experiments are already trained); only the study's own jobs run here: one
per arm (baseline, two remedies, the 0.5 share, one per labeled real subject), each training and evaluating
its seeds in one process, then the summary and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, run_snakemake, sibling_copy
from usseg import contracts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REMEDIES = {
    "fov_normalise": {"title": "Field-of-view normalisation", "settings": {"remedy": {"name": "fov_normalise"}}},
    # Acts at prediction only: scored on the baseline arm's models, no training of its own.
    "bn_adapt": {"title": "Batch-norm adaptation", "settings": {"remedy": {"name": "bn_adapt"}}},
}


@pytest.fixture(scope="module")
def gap_run(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory, "gap")
    overlay = yaml.safe_load(TINY_CONFIG.read_text())
    overlay["gap_study"] = {"enabled": True, "baseline": "multiorgan_unet_weighted", "seeds": 2,
                            "learning_curve_fractions": [0.5, 1.0], "remedies": REMEDIES}
    configfile = run / "gap.yaml"
    configfile.write_text(yaml.safe_dump(overlay))
    run_snakemake(run, "--cores", "2", "report", configfile=configfile)
    return run


def test_gap_outputs_follow_the_contract(gap_run):
    gap = gap_run / "results" / "gap"
    closure = contracts.read_gap_closure(gap / "gap_closure.csv")
    assert list(closure.columns) == contracts.GAP_CLOSURE_COLUMNS
    fov = closure[closure["remedy"] == "fov_normalise"]
    assert {"dice", "surface_dice", "train_seconds", "domain_auc"} <= set(fov["metric"])
    assert {"test_aus", "test_rus", "all"} <= set(fov["test_set"])
    scores = closure[closure["metric"].isin(["dice", "surface_dice"])]
    assert set(scores["remedy"]) == {"fov_normalise", "bn_adapt", "loso_real_labels"}
    assert (scores["n_seeds"] == 2).all() and scores["seed_sd"].notna().all()
    effects = contracts.read_seed_effects(gap / "seed_effects.csv")
    assert sorted(effects["seed"].unique()) == [0, 1]
    loso = contracts.read_loso(gap / "loso.csv")
    assert loso.columns[0] == "held_out_subject" and len(loso) >= 2 and (loso["n_seeds"] == 2).all()
    curve = pd.read_csv(gap / "learning_curve.csv")
    assert sorted(curve["level"].unique()) == [0.5, 1.0] and (curve["n_seeds"] == 2).all()
    stop = contracts.read_when_to_stop(gap / "when_to_stop.json")
    assert stop["n_subjects"] >= 2 and stop["n_seeds"] == 2 and set(stop["kinds"]) == {"remedy", "real_subjects"}
    assert all(kind["text"] for kind in stop["kinds"].values())
    # DVC's shapes of the same numbers (docs/dvc.md).
    metrics = json.loads((gap / "gap_closure.json").read_text())
    for row in closure.itertuples():
        entry = metrics[row.remedy][row.test_set][row.metric]
        assert entry["delta"] == pytest.approx(row.delta) and (entry["ci_lo"] is None) == pd.isna(row.ci_lo)
    wide = pd.read_csv(gap / "learning_curve_dice.csv")
    assert list(wide.columns) == ["level", "test_aus", "test_rus"] and list(wide["level"]) == [0.5, 1.0]
    html = (gap_run / "results" / "report" / "report.html").read_text()
    assert '<section id="gap">' in html and "illustrate the method" in html
    # Each remedy by its title, its key beside it (usseg.names).
    assert '<td>Field-of-view normalisation <code class="key">fov_normalise</code></td>' in html
    # The verdict ranks by measurement and says when to stop, per kind of change.
    start = html.index('<section id="verdict"')
    verdict = html[start:html.index("<section id=", start + 1)]
    assert "What to try next, ranked by measured effect" in verdict and "not ranked by measurement" not in verdict
    assert f"On test_rus ({stop['n_subjects']} labeled real subjects" in verdict


def test_every_gap_job_leaves_a_record_and_the_report_traces_the_study_to_it(gap_run):
    results = gap_run / "results"
    prov = results / "provenance" / "gap"
    arms = {p.name for p in (results / "gap" / "arms").iterdir()}
    recorded = {p.stem for p in (prov / "gap_arm").glob("*.json")} | {
        f"loso_{p.stem}" for p in (prov / "gap_loso_arm").glob("*.json")}
    assert recorded == arms
    summary = json.loads((prov / "summary.json").read_text())
    assert summary["rule"] == "gap_summary" and "gap_closure" in summary["outputs"]
    arm = json.loads((prov / "gap_arm" / "baseline.json").read_text())
    assert "results/gap/arms/baseline/seed1/model.safetensors" in {
        Path(p).relative_to(gap_run).as_posix() if Path(p).is_absolute() else p
        for paths in arm["outputs"].values() for p in paths}
    # The report's provenance names the job behind the study's tables, and its run state checks their outputs.
    html = (results / "report" / "report.html").read_text()
    row = html[html.index("<code>gap/gap_closure.csv</code>"):]
    row = row[:row.index("</tr>")]
    assert "no record" not in row and "gap_summary" in row
    assert 'id="run-state">Run state: <span class="ok">current</span>' in html


def test_each_arm_holds_every_seed_and_shared_trainings_are_not_repeated(gap_run):
    results = gap_run / "results"
    arms = results / "gap" / "arms"
    names = {p.name for p in arms.iterdir()}
    assert {"baseline", "remedy_fov_normalise", "remedy_bn_adapt", "curve_0.5"} <= names
    assert any(n.startswith("loso_") for n in names)
    for arm in ("baseline", "remedy_fov_normalise", "remedy_bn_adapt", "curve_0.5"):
        for k in (0, 1):
            seed = arms / arm / f"seed{k}"
            # Exactly the declared training files, copied or trained: nothing undeclared is left behind.
            assert {p.name for p in seed.iterdir() if p.is_file()} == set(contracts.TRAINING_FILES.values())
            assert {p.name for p in (seed / "eval" / "test_rus").iterdir()} == {
                "per_subject.csv", "per_image.csv", "summary.json", "confusion.csv"}  # the numbers, no figures
    # The baseline arm's seed 0 is the baseline experiment, copied; bn_adapt is scored on the baseline arm's models.
    experiment = results / "experiments" / "multiorgan_unet_weighted"
    assert (arms / "baseline/seed0/model.safetensors").read_bytes() == (experiment / "model.safetensors").read_bytes()
    assert (arms / "baseline/seed0/eval/test_rus/per_subject.csv").read_text() == \
        (experiment / "eval/test_rus/per_subject.csv").read_text()
    for k in (0, 1):
        assert (arms / f"remedy_bn_adapt/seed{k}/model.safetensors").read_bytes() == \
            (arms / f"baseline/seed{k}/model.safetensors").read_bytes()
    # Seed 1 is another training: other weights.
    assert (arms / "baseline/seed1/model.safetensors").read_bytes() != \
        (arms / "baseline/seed0/model.safetensors").read_bytes()
    # One job per arm.
    assert not (results / "checkpoints" / "gap" / "remedy_bn_adapt").exists()
    assert (results / "benchmarks" / "gap" / "gap_arm" / "remedy_fov_normalise.tsv").exists()


@pytest.mark.browser
def test_the_study_s_tables_fit_their_cells_in_a_browser(gap_run, tmp_path):
    # The tiny run's report (tests/test_report_browser.py) has no gap study: its tables are checked here,
    # everything open, at a laptop's 1366 px.
    from test_report_browser import OVERFLOWING_CELLS, SCROLLING_SIDEWAYS, Page

    page = Page(gap_run / "results" / "report" / "report.html", tmp_path / "chromium-profile")
    try:
        page.open_details(True)
        assert page.js("document.querySelector('table.ranking') !== null")
        assert page.js(OVERFLOWING_CELLS) == [], "table cells whose text runs into the next column"
        assert page.js(SCROLLING_SIDEWAYS) == [], "tables that scroll sideways"
    finally:
        page.close()
