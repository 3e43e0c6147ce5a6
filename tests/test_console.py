"""The lines a run ends with (usseg.console): verdict, headline Dice, report; tolerant of partial runs."""

from __future__ import annotations

import json
import os

from usseg.console import DEMO_CAVEAT, headline, headline_dice, report_built, run_summary


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
    assert "0.812 (no interval) (4 subj.)" in text and "0.500 (no interval) (4 subj.)" in text
    assert "  n/a" in text
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


def test_the_headline_has_its_interval_and_the_subjects_it_is_over():
    summary = {"dice_mean_foreground": 0.5, "n_subjects": 4, "mean_foreground": {
        "classes": ["liver"], "dice": 0.491, "n_subjects": 3, "ci95": [0.373, 0.61]}}
    # A test set of 4 subjects whose estimate rests on 3 (one subject without the organ): the cell says 3.
    assert headline(summary).cell() == "0.491 [0.37, 0.61] (3 subj.)"
    no_interval = {"mean_foreground": {"dice": 0.2, "n_subjects": 2, "ci95": None}}
    assert headline(no_interval).cell() == "0.200 (no interval) (2 subj.)"
    # An older summary without the block: the class mean and the summary's subjects.
    assert headline({"dice": {"a": 0.5, "b": 1.0}, "n_subjects": 5}).cell() == "0.750 (no interval) (5 subj.)"
    assert headline({"dice_mean_foreground": None, "dice": {}}).cell() == "n/a"


def test_verdict_with_its_pipeline_part_untrained_experiments_and_the_demo_caveat(tmp_path):
    checklist = write(tmp_path / "checklist.json", {"overall": "WARN", "checks": [
        check("subjects", "WARN"),
        {**check("pipeline", "FAIL"), "reason": "The overfit check FAILs for liver_unet. Fix it first."}]})
    text = run_summary(checklist, [], tmp_path / "none.html", data_is_demo=True,
                       untrained={"a": "no labeled training images in modality AUS",
                                  "b": "no labeled training images in modality AUS"})
    lines = text.splitlines()
    assert lines[0].startswith("Dataset readiness: WARN (subjects WARN, pipeline FAIL).")
    assert lines[1] == "Pipeline ruled out?: FAIL: The overfit check FAILs for liver_unet."
    assert "Not trained: a, b: no labeled training images in modality AUS." in lines
    assert lines[-1] == DEMO_CAVEAT


def test_the_summary_follows_only_a_run_that_wrote_the_report(tmp_path):
    report = tmp_path / "report.html"
    assert not report_built(report, None)  # never made
    report.write_text("old")
    before = os.stat(report).st_mtime_ns
    assert not report_built(report, before)  # another target ran; the report stayed as it was
    os.utime(report, ns=(before + 10**9, before + 10**9))
    assert report_built(report, before)
    assert report_built(report, None)  # made by this run
