"""The console of a real run (the shared tiny run): only usseg's and Snakemake's lines, a closing summary
that follows only a run that wrote the report, and a report whose run state says it is current."""

from __future__ import annotations

import pytest

from conftest import CONSOLE, run_snakemake, sibling_copy, tiny_config
from console_lines import foreign_lines
from usseg.console import closing_summary

pytestmark = pytest.mark.e2e


def test_every_console_line_is_usseg_s_or_snakemake_s(tiny_run):
    stderr = (tiny_run / CONSOLE / "stderr.txt").read_text()
    assert "Finished jobid" in stderr and "usseg.rule.report" in stderr
    foreign = foreign_lines(stderr)
    assert not foreign, "lines printed by something else than usseg or Snakemake:\n" + "\n".join(foreign[:40])


def test_the_run_ends_with_its_summary_and_nothing_else_on_stdout(tiny_run, monkeypatch):
    monkeypatch.chdir(tiny_run)  # the rules' paths are relative to the working directory
    config = tiny_config()
    expected = closing_summary(
        config, "results/report/report.html", True, "results/verdict/checklist.json", "results/manifest.csv",
        "results/splits.csv",
        {e: [f"results/experiments/{e}/eval/{t}/summary.json" for t in config["test_sets"]]
         for e in config["experiments"]},
    )
    stdout = (tiny_run / CONSOLE / "stdout.txt").read_text()
    assert stdout.strip() == expected.strip()
    lines = expected.splitlines()
    assert lines[0].startswith("Dataset readiness: ") and lines[-1] == "Report: results/report/report.html"
    assert "generated demo dataset" in expected and " subj." in expected and "[" in expected  # intervals


def test_no_summary_after_a_run_of_another_target(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory)
    proc = run_snakemake(run, "--cores", "1", "results/config.yaml")
    assert (run / "results" / "config.yaml").is_file()
    assert "Dataset readiness" not in proc.stdout + proc.stderr and "Report:" not in proc.stdout


def test_a_fresh_run_is_current(tiny_run):
    html = (tiny_run / "results" / "report" / "report.html").read_text()
    assert 'Run state: <span class="ok">current</span>' in html
    assert "usseg:out-of-date" not in html
