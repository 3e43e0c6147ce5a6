"""The verdict's "what to try next" with and without the gap study's results (usseg.report.sections.verdict).

Built from test_report's fake run (no workflow), with results/gap/ files made from small synthetic
tables: ranked by measured real-image Dice when the study ran, the checklist's list otherwise.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from test_gap_report import _mixed_closure, _results, _stop
from test_report import full_config, make_fake_run, rule_inputs
from usseg.report import ReportInputError, ReportInputs, build_report
from usseg.report import gap_study as gap_report
from usseg.report.context import ReportContext
from usseg.report.sections import verdict

STEPS = [  # checklist.json's next_steps as the diagnostics write them
    {"check": "subjects", "side": "data", "text": "Collect and label RUS images from more distinct subjects."},
    {"check": "composition", "side": "model", "text": "Use the 557 unlabeled RUS images: semi-supervised."},
    {"check": "leakage", "side": "data", "text": "Fix the split."},
]


def _with_gap(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["gap_study"]["enabled"] = True
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(config with the study off, results/) of a fake run whose checklist.json has next_steps and
    whose results/gap/ holds the study's files."""
    workdir = tmp_path_factory.mktemp("verdict_run")
    mp = pytest.MonkeyPatch()
    mp.chdir(workdir)
    try:
        config = full_config()
        results = make_fake_run(workdir, config)
    finally:
        mp.undo()
    path = results / "diagnostics/checklist.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "next_steps": STEPS}))
    _results(results, _mixed_closure())
    (results / "gap/when_to_stop.json").write_text(json.dumps(_stop(4, 0.08)))
    return config, results


def _inputs(config, results) -> ReportInputs:
    """The fake run's files as the report rule hands them over (gap_summary's outputs when the study is on)."""
    named = rule_inputs(config, results)
    if config["gap_study"]["enabled"]:
        named.update({f"gap_{name}": [str(path)] for name, path in _gap_files(results).items()})
    return ReportInputs.from_rule(named, config, results)


def _gap_files(results: Path) -> dict[str, Path]:
    gap = Path(results) / "gap"
    return {"gap_closure": gap / "gap_closure.csv", "seed_effects": gap / "seed_effects.csv", "loso": gap / "loso.csv",
            "learning_curve": gap / "learning_curve.csv", "when_to_stop": gap / "when_to_stop.json"}


def _verdict(config, results) -> dict:
    return verdict.build(ReportContext(config, _inputs(config, results)))


def test_without_the_study_the_checklist_steps_are_said_to_be_unmeasured(run):
    config, results = run
    ctx = _verdict(config, results)
    assert ctx["ranking"] is None and ctx["model_steps"] == []
    assert ctx["steps"] == [s["text"] for s in STEPS]


def test_with_the_study_the_remedies_are_ranked_and_data_steps_follow(run):
    config, results = run
    ctx = _verdict(_with_gap(config), results)
    ranking = ctx["ranking"]
    assert [s["remedy"] for s in ranking["steps"]] == ["loso_real_labels", "hm", "fda", "aug"]
    assert ranking["test_set"] == "RUS test set (real)"  # as usseg.names names it, everywhere
    stop = json.loads((results / "gap/when_to_stop.json").read_text())
    assert ranking["when_to_stop"] == gap_report.when_to_stop_paragraph(stop)
    assert f"is {stop['kinds']['remedy']['minimum_detectable_change']:.3f}" in ranking["when_to_stop"]
    assert ctx["steps"] == [STEPS[0]["text"], STEPS[2]["text"]]  # the data side: no measurement covers them
    assert ctx["model_steps"] == [STEPS[1]["text"]]
    assert ranking["art"].derived and ranking["art"].files == ["gap/gap_closure.csv", "gap/when_to_stop.json"]


def test_steps_from_checklist_md_keep_every_step_after_the_ranking(run, tmp_path):
    """An older checklist.json without next_steps: the markdown's steps, side unknown, all kept."""
    config, results = run
    data = json.loads((results / "diagnostics/checklist.json").read_text())
    steps = verdict.checklist_steps(ReportContext(config, _inputs(config, results)),
                                    {k: v for k, v in data.items() if k != "next_steps"})
    assert [s["side"] for s in steps] == [None, None] and steps[0]["text"].startswith("Collect and label RUS")
    shown = verdict.next_steps(ReportContext(_with_gap(config), _inputs(_with_gap(config), results)), steps)
    assert shown["steps"] == [s["text"] for s in steps] and not shown["sides_known"]


def test_missing_gap_results_name_the_file(run, tmp_path, monkeypatch):
    config, results = run
    monkeypatch.chdir(tmp_path)
    broken = shutil.copytree(results, tmp_path / "results")
    (broken / "gap/gap_closure.csv").unlink()
    with pytest.raises(ReportInputError, match=r"gap/gap_closure\.csv, which is missing"):
        _verdict(_with_gap(config), broken)
    shutil.copy(results / "gap/gap_closure.csv", broken / "gap/gap_closure.csv")
    (broken / "gap/when_to_stop.json").write_text(json.dumps({"n_subjects": 4}))
    with pytest.raises(ReportInputError, match=r"when_to_stop\.json lacks the key"):
        _verdict(_with_gap(config), broken)


def _verdict_html(config, results, out: Path) -> str:
    build_report(config, _inputs(config, results), out)
    html = out.read_text()
    return html[html.index('<section id="verdict"'):html.index('<section id="checks"')]


def test_page_verdict_with_and_without_the_study(run, tmp_path):
    config, results = run
    on = _verdict_html(_with_gap(config), results, tmp_path / "on.html")
    ranked, stop = on.index("What to try next, ranked by measured effect"), on.index("<b>When to stop</b>")
    data = on.index("Also from the diagnostics")
    # One row per remedy, by its name (its config key beside it in small type when the name differs): the
    # change from the baseline, its interval with seeds and what that interval supports.
    row = on.index("<td>hm</td><td class=num>+0.080 (0.400 to 0.480)</td><td class=num>+0.020 to +0.140</td>"
                   "<td class=num>6 x 3</td><td class=num>0.020</td><td>improvement</td>")
    assert ranked < row < stop < data
    assert "hm changed Dice on the RUS test set (real) by +0.080" in on  # the whole sentence, on hover
    assert on.index("Collect and label RUS images") > data and on.index("Fix the split.") > data
    assert on.index("semi-supervised") > on.index("add one to <code>gap_study.remedies</code>")
    assert '<a href="#gap">' in on and "not ranked by measurement" not in on
    assert ("against the baseline <b>Multi-organ U-Net <code class=\"key\">multiorgan_unet</code></b>" in on
            and "on the data, which no training measures" in on)
    off = _verdict_html(config, results, tmp_path / "off.html")
    assert "not ranked by measurement" in off and "<code>gap_study.enabled: true</code>" in off
    assert "ranked by measured effect" not in off and "change of 0.05" in off


def test_the_verdict_reads_the_final_checklist_with_the_pipeline_check(run, monkeypatch):
    from test_report import REPO
    from usseg.provenance import provenance_record, write_provenance

    config, results = run
    final = json.loads((results / "diagnostics/checklist.json").read_text())
    final["checks"].append({"id": "pipeline", "title": "Pipeline ruled out?", "status": "WARN",
                            "value": "No defect found", "threshold": "t",
                            "reason": "Not ruled out: no defect detected against a short reference."})
    path = results / "verdict/checklist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(final))
    monkeypatch.chdir(results.parent)  # provenance records name files relative to the run's folder
    rel = Path(results.name) / "verdict/checklist.json"
    write_provenance(results / "provenance/verdict.json", provenance_record(
        "verdict", {"checklist": [str(Path(results.name) / "diagnostics/checklist.json")]},
        {"checklist": [str(rel)]}, {}, None, REPO))
    named = {**rule_inputs(config, results), "verdict": [str(path)]}
    ctx = verdict.build(ReportContext(config, ReportInputs.from_rule(named, config, results)))
    # The final checklist is the one counted; its pipeline check has its own line, not a concern's.
    assert ctx["n_checks"] == len(final["checks"])
    assert not [c for c in ctx["concerns"] if c["title"] == "Pipeline ruled out?"]
    assert set(ctx["pipeline"]) == {"answer", "status", "badge"}
    # Without the rule's final checklist, the diagnostics' own (one check fewer: no pipeline check).
    assert _verdict(config, results)["n_checks"] == len(final["checks"]) - 1


def test_many_concerns_fold_after_the_first_so_the_box_fits_the_first_screen(run, monkeypatch):
    config, results = run
    final = json.loads((results / "diagnostics/checklist.json").read_text())
    final["checks"] = [{"id": f"c{i}", "title": f"Check {i}", "status": "WARN" if i % 2 else "FAIL",
                        "value": i, "threshold": "t"} for i in range(9)]
    path = results / "verdict/checklist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(final))
    named = {**rule_inputs(config, results), "verdict": [str(path)]}
    ctx = verdict.build(ReportContext(config, ReportInputs.from_rule(named, config, results)))
    shown, folded = ctx["concerns"], ctx["folded_concerns"]
    assert len(shown) == verdict.VERDICT_SHOWN_CONCERNS and len(shown) + len(folded) == 9
    # Failures come first: the five FAILs are the ones shown.
    assert all(c["status"] == "FAIL" for c in shown) and all(c["status"] == "WARN" for c in folded)
