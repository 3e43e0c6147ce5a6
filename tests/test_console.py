"""The lines a run ends with (usseg.console): verdict, headline Dice, report; tolerant of partial runs."""

from __future__ import annotations

import json

from usseg.console import headline_dice, run_summary


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def check(check_id, status):
    return {"id": check_id, "title": check_id, "status": status, "value": 1, "threshold": 2, "reason": "r"}


def test_summary_has_verdict_dice_table_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the rules' paths are relative to the working directory
    tmp_path = tmp_path.relative_to(tmp_path)
    checklist = write(tmp_path / "diagnostics/checklist.json", {
        "overall": "FAIL",
        "checks": [check("subjects", "PASS"), check("domain_shift", "FAIL")],
    })
    summaries = []
    for exp, ts, dice in [("liver_unet", "test_aus", 0.8123), ("liver_unet", "test_rus", 0.5),
                          ("a_very_long_experiment_name_that_goes_on", "test_aus", None)]:
        summaries.append(write(tmp_path / f"experiments/{exp}/eval/{ts}/summary.json", {
            "experiment": exp, "test_set": ts, "n_images": 9, "n_subjects": 4, "dice": {"liver": dice},
            "dice_mean_foreground": dice, "per_class": {"liver": {"dice": dice}},
        }))
    report = tmp_path / "report/report.html"
    write(report, {})
    text = run_summary(checklist, summaries, report)
    lines = text.splitlines()
    assert lines[0].startswith("Dataset readiness: FAIL (domain_shift FAIL). Details: ")
    assert lines[0].endswith("checklist.md")
    assert "0.812 (4 subj.)" in text and "0.500 (4 subj.)" in text and "  n/a  " in text
    assert "test_aus" in lines[2] and "test_rus" in lines[2]
    assert lines[-1] == f"Report: {report}"
    assert max(len(line) for line in lines) < 120, text


def test_partial_run_prints_only_what_exists(tmp_path):
    assert run_summary(tmp_path / "none.json", [tmp_path / "no/summary.json"], tmp_path / "r.html") == ""
    broken = write(tmp_path / "summary.json", {"experiment": "e"})  # not the contract: skipped
    assert run_summary(tmp_path / "none.json", [broken], tmp_path / "r.html") == ""


def test_headline_dice_falls_back_to_the_class_mean():
    assert headline_dice({"dice": {"a": 0.5, "b": None, "c": 1.0}}) == 0.75
    assert headline_dice({"dice_mean_foreground": None, "dice": {"a": None}}) is None


def test_a_cell_carries_the_interval_and_the_subjects_of_the_estimate():
    from usseg.console import headline_cell

    # A test set of 4 subjects whose estimate rests on 3 (one subject without the organ): the cell says 3.
    summary = {"n_subjects": 4, "dice_mean_foreground": 0.951,
               "mean_foreground": {"dice": 0.951, "ci95": [0.935, 0.968], "n_subjects": 3}}
    assert headline_cell(summary) == "0.951 [0.94, 0.97] (3 subj.)"
    summary["mean_foreground"].update(ci95=None, n_subjects=2)
    assert headline_cell(summary) == "0.951 (no interval) (2 subj.)"
    assert headline_cell({"dice_mean_foreground": None, "dice": {}}) == "n/a"
