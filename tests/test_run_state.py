"""usseg.run_state: the start-up and failure checks that keep a report from looking more current than it is."""

from __future__ import annotations

import json
import os
from html import unescape

from usseg.provenance import provenance_record, write_provenance
from usseg.run_state import (
    OUT_OF_DATE_MTIME,
    check_after_failure,
    check_at_start,
    is_marked,
    mark_report_out_of_date,
)

PAGE = "<!DOCTYPE html>\n<html><head><title>r</title></head>\n<body><main><h1>Report</h1></main></body></html>\n"


def _run(tmp_path, monkeypatch):
    """A tiny run in tmp_path: a label folder (decode_masks), a split file, a report and their records."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "labels").mkdir(parents=True)
    for name in ("a.npy", "b.npy"):
        (tmp_path / "results" / "labels" / name).write_bytes(b"x")
    (tmp_path / "results" / "labels" / ".snakemake_timestamp").write_bytes(b"")
    (tmp_path / "results" / "splits.csv").write_text("image_id,split\n")
    prov = tmp_path / "results" / "provenance"
    write_provenance(prov / "decode_masks.json",
                     provenance_record("decode_masks", {}, {"labels": ["results/labels"]}, {}))
    html = tmp_path / "results" / "report" / "report.html"
    html.parent.mkdir(parents=True)
    html.write_text(PAGE)
    write_provenance(prov / "report.json", provenance_record(
        "report", {"labels": ["results/labels"], "splits": ["results/splits.csv"]},
        {"html": ["results/report/report.html"]}, {}))
    reports = {"results/report/report.html": ("results/provenance/report.json",
                                              "snakemake report --configfile 'my config.yaml'")}
    return prov, html, reports


def test_a_complete_run_is_left_alone(tmp_path, monkeypatch):
    prov, html, reports = _run(tmp_path, monkeypatch)
    before = html.stat().st_mtime_ns
    assert check_at_start(prov, reports) == []
    assert html.read_text() == PAGE and html.stat().st_mtime_ns == before


def test_a_missing_file_marks_the_report_out_of_date(tmp_path, monkeypatch):
    prov, html, reports = _run(tmp_path, monkeypatch)
    (tmp_path / "results" / "splits.csv").unlink()
    lines = check_at_start(prov, reports)
    assert lines[0] == "results/splits.csv is missing"
    assert "results/report/report.html no longer matches the files" in lines[-1]
    text = html.read_text()
    assert is_marked(html) and text.index("Out of date.") < text.index("<main>")
    assert "snakemake report --configfile 'my config.yaml'" in unescape(text)  # the run's options
    assert "'my config" not in text  # escaped in the page
    assert html.stat().st_mtime == OUT_OF_DATE_MTIME  # so Snakemake makes it again
    # Marking again replaces the banner instead of stacking a second one.
    check_at_start(prov, reports)
    assert html.read_text().count("Out of date.") == 1


def test_a_folder_that_lost_a_file_is_set_back_so_its_rule_runs_again(tmp_path, monkeypatch):
    prov, html, reports = _run(tmp_path, monkeypatch)
    (tmp_path / "results" / "labels" / "a.npy").unlink()
    lines = check_at_start(prov, reports)
    assert lines[0] == "results/labels holds 1 files, 2 when rule decode_masks wrote it: marked out of date, " \
                       "so its rule runs again"
    marker = tmp_path / "results" / "labels" / ".snakemake_timestamp"
    assert marker.stat().st_mtime == OUT_OF_DATE_MTIME
    assert is_marked(html)


def test_after_a_failure_a_report_with_gone_or_newer_inputs_is_marked(tmp_path, monkeypatch):
    prov, html, reports = _run(tmp_path, monkeypatch)
    assert check_after_failure(prov, reports) == []  # a failure elsewhere: the page still matches its files
    splits = tmp_path / "results" / "splits.csv"
    later = html.stat().st_mtime + 10
    os.utime(splits, (later, later))
    lines = check_after_failure(prov, reports)
    assert lines and "out of date (a step failed)" in lines[0]
    assert "A step of the last run failed" in html.read_text()


def test_a_report_without_its_record_is_marked_after_a_failure(tmp_path, monkeypatch):
    prov, html, reports = _run(tmp_path, monkeypatch)
    (prov / "report.json").unlink()
    assert check_after_failure(prov, reports)
    assert is_marked(html)


def test_only_files_of_the_run_count(tmp_path, monkeypatch):
    """The workflow's code is an input of the report too; in a copied or moved run it may lie elsewhere,
    which is Snakemake's to judge (its input trigger), not a damaged result."""
    prov, html, reports = _run(tmp_path, monkeypatch)
    record = json.loads((prov / "report.json").read_text())
    record["inputs"]["code"] = {"../elsewhere/src/usseg/report/page.py": {"sha256": "0"}}
    (prov / "report.json").write_text(json.dumps(record))
    assert check_at_start(prov, reports) == [] and check_after_failure(prov, reports) == []


def test_a_page_that_is_not_a_report_is_not_touched(tmp_path):
    page = tmp_path / "x.html"
    page.write_text("no body here")
    assert not mark_report_out_of_date(page, "why", [], "snakemake report")
    assert page.read_text() == "no body here"
