"""Results that never look more current than they are, through the real workflow (copies of the tiny run):

- a deleted intermediate output (the split, a model, one label file) is rebuilt by `snakemake report`,
  where Snakemake alone says "Nothing to be done";
- after a failed step the report on disk says on its first screen that it is out of date;
- an output edited by hand makes the run state "not current", and the command the page gives to
  make it current again works as copied (it carries the run's --configfile);
- the damaged-model advice, copied, plans that experiment's jobs, not config.yaml's default run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, run_snakemake, sibling_copy, tiny_config
from dry_run import QUIET_KEEPS_JOBS, job_name, parse_dry_run

pytestmark = pytest.mark.e2e

REPORT = Path("results/report/report.html")
CURRENT = 'Run state: <span class="ok">current</span>'


def planned(run: Path) -> tuple[set[str], str]:
    proc = run_snakemake(run, "--dry-run", *QUIET_KEEPS_JOBS, "report")
    text = proc.stdout + proc.stderr
    return {job_name(j["rule"], j["wildcards"]) for j in parse_dry_run(text)}, text


def banner(run: Path) -> str:
    html = (run / REPORT).read_text()
    return html[html.index("<body"):html.index("<main>")]


def test_a_deleted_split_or_label_file_is_rebuilt_with_what_follows(tiny_run, tmp_path_factory):
    config = tiny_config()
    run = sibling_copy(tiny_run, tmp_path_factory)
    (run / "results" / "splits.csv").unlink()
    jobs, text = planned(run)
    assert {"split", "diagnostics", "report"} | {f"train@{e}" for e in config["experiments"]} <= jobs, text[-3000:]
    assert "usseg: results/splits.csv is missing" in text
    assert "Out of date." in banner(run) and "results/splits.csv is missing" in banner(run)

    run = sibling_copy(tiny_run, tmp_path_factory)
    label = sorted((run / "results" / "labels").glob("*.npy"))[0]
    label.unlink()
    jobs, text = planned(run)
    assert {"decode_masks", "split", "report"} <= jobs, text[-3000:]
    assert "results/labels holds" in text


def test_a_deleted_model_is_rebuilt_by_snakemake_report(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory)
    model = run / "results" / "experiments" / "liver_rf" / "model.safetensors"
    model.unlink()
    jobs, text = planned(run)
    assert jobs == {"train@liver_rf", "evaluate@liver_rf-test_aus", "evaluate@liver_rf-test_rus", "verdict", "report"}, text
    run_snakemake(run, "--cores", "2", "report")
    assert model.is_file()
    assert CURRENT in (run / REPORT).read_text() and "usseg:out-of-date" not in (run / REPORT).read_text()
    assert planned(run)[0] == set()


def test_a_failed_step_leaves_a_report_that_says_it_is_out_of_date(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory)
    model = run / "results" / "experiments" / "liver_rf" / "model.safetensors"
    damaged = bytearray(model.read_bytes())
    damaged[-8:] = b"\xff" * 8
    model.write_bytes(bytes(damaged))  # newer than its evaluations: they run again, and fail
    proc = run_snakemake(run, "--cores", "1", "report", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "usseg: results/report/report.html is out of date (a step failed)" in text
    top = banner(run)
    assert "Out of date." in top and "A step of the last run failed" in top
    assert f"--configfile {TINY_CONFIG}" in top
    assert (run / REPORT).stat().st_mtime < model.stat().st_mtime  # the next run rebuilds it
    # The banner's command, copied, is a valid run of this configuration.
    start = top.index("<code>") + len("<code>")
    rebuild = shlex.split(unescape(top[start:top.index("</code>", start)]))
    assert rebuild[:2] == ["snakemake", "report"] and str(TINY_CONFIG) in rebuild
    assert _run_copied(rebuild, run, "--dry-run").returncode == 0

    # The damaged-model advice, copied as printed, plans this experiment's jobs in this run's
    # configuration (not config.yaml's default run with its demo and 34 jobs).
    advice = next(line for line in text.splitlines() if "Re-create it: " in line)
    command = shlex.split(advice.split("Re-create it: ", 1)[1].split(" (log:")[0])
    assert command[:2] == ["snakemake", "report"] and "--configfile" in command and str(TINY_CONFIG) in command
    proc = _run_copied(command, run, "--dry-run", *QUIET_KEEPS_JOBS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {job_name(j["rule"], j["wildcards"]) for j in parse_dry_run(proc.stdout + proc.stderr)}
    assert jobs == {"train@liver_rf", "evaluate@liver_rf-test_aus", "evaluate@liver_rf-test_rus", "verdict", "report"}


def test_an_edited_output_shows_and_the_advised_command_makes_the_run_current(tiny_run, tmp_path_factory):
    run = sibling_copy(tiny_run, tmp_path_factory)
    flags = run / "results" / "diagnostics" / "label_flags.csv"
    flags.write_text(flags.read_text() + "\n")
    run_snakemake(run, "--cores", "1", "report")  # the edit is newer than the report: it is made again
    html = (run / REPORT).read_text()
    assert 'Run state: <span class="bad">not current</span>' in html
    assert "label_flags.csv</code>: changed since rule diagnostics recorded it" in html
    start = html.index("To make the run current again: <code>") + len("To make the run current again: <code>")
    command = shlex.split(unescape(html[start:html.index("</code>", start)]))
    assert command[:2] == ["snakemake", "report"] and command[-2:] == ["--forcerun", "diagnostics"]
    proc = _run_copied(command, run, "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert CURRENT in (run / REPORT).read_text()


def _run_copied(command: list[str], cwd: Path, *more: str) -> subprocess.CompletedProcess:
    """Run a command as a user would paste it (`snakemake ...`), with this interpreter's Snakemake."""
    assert command[0] == "snakemake"
    return subprocess.run([sys.executable, "-m", *command, *more], cwd=cwd, capture_output=True, text=True,
                          env=_env(), timeout=900)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("USSEG_RERUN", None)
    return env
