"""DVC: dvc.yaml is generated from Snakemake's own listing, agrees with the DAG, and versions data and results.

- dvc.yaml is what tools/dvc-sync.py generates now (no hand edits, not stale);
- its one stage runs `snakemake report`; its outs are every output of the
  default run (as `snakemake --summary` and the tiny run's recorded jobs list
  them), its deps cover every input that no job makes;
- round trip on the tiny run, with the README's commands as written (the
  default remote lies outside every checkout): dvc commit -> dvc push ->
  git clone -> pull -> every result is back, byte for byte, and
  `snakemake -n` has nothing to do;
- `dvc metrics show` is a short table (one row of a few columns per
  evaluation), and `dvc plots show` writes a page that draws without the internet;
- after a config change, `dvc repro` lets Snakemake redo only the stale jobs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import (
    REPO,
    WORKFLOW_FILES,
    copy_run,
    copy_workflow_files,
    run_snakemake,
    sibling_copy,
    tiny_config,
    tree_digests,
)

DVC_FILES = [".dvc/config", ".dvc/.gitignore"]
# The gap study's outputs DVC shows when gap_study.enabled (docs/dvc.md); gap_closure.json on request.
GAP_METRICS = {"results/gap/when_to_stop.json"}
HEADLINE = "headline.json"
GAP_PLOTS = {"results/gap/loso.csv", "results/gap/learning_curve_dice.csv"}
# a DVC project needs git's and DVC's ignore files and DVC's config too
PROJECT_FILES = [*WORKFLOW_FILES, ".gitignore", ".dvcignore", *DVC_FILES]


# ----------------------------------------------------------------------------- helpers


def env() -> dict:
    e = dict(os.environ)
    # dvc runs each stage's `snakemake` and Snakemake each script's python from PATH: make them ours.
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["DVC_NO_ANALYTICS"] = "1"
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        e.setdefault(var, "usseg tests")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        e.setdefault(var, "tests@usseg.invalid")
    return e


def sh(cwd: Path, *cmd: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(cwd, sys.executable, "-m", "dvc", *args, check=check)


def dvc_json(cwd: Path, *args: str):
    text = dvc(cwd, *args, "--json").stdout
    return json.loads(text[text.index(next(c for c in text if c in "[{")) :])


def sync_tool(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(
        cwd,
        sys.executable,
        str(cwd / "tools" / "dvc-sync.py"),
        "--repo",
        str(cwd),
        *args,
        check=check,
    )


RESOLVE = r"""
import json, sys
from dvc.repo import Repo
from dvc.dependency.param import ParamsDependency
out = {}
for st in Repo(sys.argv[1]).index.stages:
    params = {d.def_path: list(d.params) for d in st.deps if isinstance(d, ParamsDependency)}
    out[st.addressing] = {
        "cmd": st.cmd,
        "deps": sorted(d.def_path for d in st.deps if not isinstance(d, ParamsDependency)),
        "params": params,
        "outs": sorted(o.def_path for o in st.outs if not o.metric),
        "metrics": sorted(o.def_path for o in st.outs if o.metric),
    }
print(json.dumps(out))
"""


def resolved_stages(repo: Path) -> dict:
    """dvc.yaml's stages as DVC itself reads them (foreach/matrix expanded)."""
    return json.loads(sh(repo, sys.executable, "-c", RESOLVE, str(repo)).stdout)


def is_log_or_benchmark(path: str) -> bool:
    return path.rstrip("/") + "/" in ("results/logs/", "results/benchmarks/") or path.startswith(
        ("results/logs/", "results/benchmarks/")
    )


def lock_outs(repo: Path) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return sorted(o["path"] for st in lock["stages"].values() for o in st.get("outs", []))


def pending_rules(repo: Path) -> tuple[set[str], str]:
    """Rules with jobs `snakemake report` would run in a checkout of the workflow, from --summary's plan column."""
    proc = sh(repo, sys.executable, "-m", "snakemake", "--summary", "report")
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    plan, rule = rows[0].index("plan"), rows[0].index("rule")
    return {row[rule] for row in rows[1:] if row[plan] != "no update"}, proc.stdout + proc.stderr


def write_config(path: Path, change) -> None:
    config = tiny_config()
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def default_remote(repo: Path) -> str:
    return dvc(repo, "remote", "default").stdout.strip()


# ----------------------------------------------------------------------------- the repository's DVC setup


def test_repository_is_a_dvc_project_with_an_offline_default_remote_outside_the_checkout():
    """The default remote is a folder of the user's, outside every checkout: a second clone on the same
    machine pulls what the first pushed, with the README's commands as written."""
    for rel in [*DVC_FILES, ".dvcignore", "dvc.yaml"]:
        assert (REPO / rel).is_file(), f"{rel} is missing"
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", rel], cwd=REPO, capture_output=True, check=False
        )
        assert tracked.returncode == 0, f"{rel} is not committed"
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    # DVC writes subsections quoted: ['remote "storage"'].
    sections = {name.strip("'"): name for name in config.sections()}
    remote = config[sections["core"]]["remote"]
    url = config[sections[f'remote "{remote}"']]["url"]
    assert "://" not in url, f"the default remote must be a local folder, not {url}"
    assert url.startswith("~/"), f"the default remote {url} should be the user's folder, outside the checkout"
    assert config[sections["plots"]]["html_template"] == Path(_sync_module().PLOTS_PAGE).name


def test_dvc_yaml_is_up_to_date():
    proc = sync_tool(REPO, "--check", check=False)
    assert proc.returncode == 0, (
        "dvc.yaml differs from what the Snakemake DAG generates; run `python tools/dvc-sync.py`:\n"
        + proc.stdout[-6000:]
        + proc.stderr[-3000:]
    )


def test_dvc_yaml_stage_runs_snakemake_and_outputs_every_result():
    """One stage: every output of the default run is an out (or metric), with the run records."""
    (name, stage), = resolved_stages(REPO).items()
    assert stage["cmd"].startswith("snakemake ") and stage["cmd"].endswith(" report"), stage["cmd"]
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--summary", "--forceall"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert rows[0][:3] == ["output_file", "date", "rule"], rows[0]
    snakemake_outputs = {row[0]: row[2] for row in rows[1:]}
    dvc_outputs = [o for o in stage["outs"] + stage["metrics"] if not is_log_or_benchmark(o)]
    assert len(dvc_outputs) == len(set(dvc_outputs))
    assert set(dvc_outputs) == set(snakemake_outputs), (
        f"only in dvc.yaml: {sorted(set(dvc_outputs) - set(snakemake_outputs))}; "
        f"only in the Snakemake DAG: {sorted(set(snakemake_outputs) - set(dvc_outputs))}"
    )
    assert {"results/logs", "results/benchmarks"} <= set(stage["outs"])
    assert stage["params"] == {"config.yaml": []}, stage["params"]
    # The evaluations' headlines, and the gap study's when to stop when config.yaml turns it on.
    assert set(stage["metrics"]) == {
        o for o, rule in snakemake_outputs.items()
        if (rule == "evaluate" and o.endswith(f"/{HEADLINE}")) or (rule == "gap_summary" and o in GAP_METRICS)
    }
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert all(next(iter(o.values())) == {"persist": True} for o in doc["stages"][name]["outs"]), (
        "every out must persist: DVC would otherwise delete the results before Snakemake decides what to redo"
    )
    plotted = {f for plot in doc["plots"] for spec in plot.values() for f in spec["y"]}
    assert plotted == {o for o, rule in snakemake_outputs.items()
                       if o.endswith("/history.csv") and rule == "train" or (rule == "gap_summary" and o in GAP_PLOTS)}


# ----------------------------------------------------------------------------- the gap study's metrics and plots


def _sync_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dvc_sync", REPO / "tools" / "dvc-sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gap_run(repo: Path) -> list[dict]:
    """`snakemake --summary` rows of a run with the gap study on, and its gap results written from small
    synthetic tables by the library (the files rule gap_summary writes)."""
    import math

    import pandas as pd

    from usseg.remedies import gap_stats

    gap = repo / "results" / "gap"
    gap.mkdir(parents=True)
    closure = gap_stats.gap_closure_table([
        {"remedy": r, "test_set": t, "metric": "dice", "baseline": 0.4, "value": 0.4 + d, "delta": d,
         "ci_lo": lo, "ci_hi": hi, "n_subjects": 5, "n_seeds": 3, "seed_sd": 0.02}
        for r, t, d, lo, hi in [("hm", "test_rus", 0.08, 0.02, 0.14), ("hm", "test_aus", 0.01, -0.02, 0.04),
                                ("fda", "test_rus", 0.03, math.nan, math.nan)]])
    (gap / "gap_closure.json").write_text(json.dumps(gap_stats.gap_closure_metrics(closure)))
    from usseg.gap.study import _finite

    remedy = gap_stats.when_to_stop_kind(5, 0.06, 4, math.nan, 1)
    (gap / "when_to_stop.json").write_text(json.dumps(_finite(
        {"test_set": "test_rus", "n_subjects": 5, "kinds": {"remedy": remedy}}), allow_nan=False))
    pd.DataFrame({"held_out_subject": ["a", "b", "c"], "n_images": [2, 3, 2], "dice": [0.5, 0.6, 0.7],
                  "surface_dice": [0.6, 0.7, 0.8]}).to_csv(gap / "loso.csv", index=False)
    curve = pd.DataFrame({"test_set": ["test_aus", "test_aus", "test_rus", "test_rus", "test_rus"],
                          "metric": ["dice", "dice", "dice", "dice", "surface_dice"], "level": [0.5, 1.0, 0.5, 1.0, 1.0],
                          "mean": [0.6, 0.7, 0.2, 0.3, 0.9]})
    gap_stats.learning_curve_by_test_set(curve).to_csv(gap / "learning_curve_dice.csv", index=False)
    rows = [("train", "results/experiments/e/history.csv"), ("evaluate", "results/experiments/e/eval/test_rus/headline.json"),
            *[("gap_summary", f"results/gap/{n}") for n in ("gap_closure.csv", "gap_closure.json", "when_to_stop.json",
                                                            "loso.csv", "learning_curve.csv", "learning_curve_dice.csv")]]
    return [{"rule": rule, "output_file": f, "plan": "no update"} for rule, f in rows]


def test_gap_results_are_dvc_metrics_and_plots(tmp_path, monkeypatch):
    """With the study on, `dvc metrics show` has every remedy's paired change and when to stop, and
    `dvc plots show` draws the LOSO Dice per held-out subject and one learning curve per test set."""
    tool = _sync_module()
    config = tiny_config()
    config["gap_study"]["enabled"] = True
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = _gap_run(tmp_path)
    monkeypatch.setattr(tool, "summary", lambda repo, *args: rows)
    doc = tool.build(tmp_path)
    metrics = [next(iter(m)) for m in doc["stages"][tool.STAGE]["metrics"]]
    assert set(metrics) == GAP_METRICS | {"results/experiments/e/eval/test_rus/headline.json"}
    (tmp_path / "dvc.yaml").write_text(tool.render(doc))
    sh(tmp_path, "git", "-c", "init.defaultBranch=main", "init", "-q")
    dvc(tmp_path, "init", "-q")
    shown = dvc_json(tmp_path, "metrics", "show")[""]["data"]
    assert "results/gap/gap_closure.json" not in shown  # too wide for the table: shown on request
    closure = dvc_json(tmp_path, "metrics", "show", "results/gap/gap_closure.json")[""]["data"][
        "results/gap/gap_closure.json"]["data"]
    assert closure["hm"]["test_rus"]["dice"] == pytest.approx(
        {"baseline": 0.4, "value": 0.48, "delta": 0.08, "ci_lo": 0.02, "ci_hi": 0.14, "n_subjects": 5, "n_seeds": 3,
         "seed_sd": 0.02})
    assert "ci_lo" not in closure["fda"]["test_rus"]["dice"]  # no interval: null, which DVC leaves out
    stop = shown["results/gap/when_to_stop.json"]["data"]
    assert stop["kinds"]["remedy"]["subjects_needed"] == gap_stats_subjects_needed(0.05, 0.06)
    assert stop["n_subjects"] == 5
    plots = dvc_json(tmp_path, "plots", "show")["data"]
    assert {"gap_loso", "gap_learning_curve"} <= set(plots)
    bars = plots["gap_loso"][0]["content"]
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["y"]["field"] == "held_out_subject"
    assert {(v["held_out_subject"], float(v["dice"])) for v in bars["data"]["values"]} == {
        ("a", 0.5), ("b", 0.6), ("c", 0.7)}
    lines = {(v["field"], float(v["level"]), float(v["dvc_inferred_y_value"]))
             for v in plots["gap_learning_curve"][0]["content"]["data"]["values"]}
    # One line per test set, Dice only (the surface Dice row is not drawn).
    assert lines == {("test_aus", 0.5, 0.6), ("test_aus", 1.0, 0.7), ("test_rus", 0.5, 0.2), ("test_rus", 1.0, 0.3)}


def gap_stats_subjects_needed(change: float, sd: float) -> int:
    from usseg.remedies import gap_stats

    return gap_stats.subjects_needed(change, sd)


# ----------------------------------------------------------------------------- on the tiny run


@pytest.fixture(scope="module")
def dvc_project(tiny_run, tmp_path_factory) -> dict:
    """A git + DVC repository of the workflow on the tiny config, holding tiny_run's results.

    dvc.yaml is generated there, `dvc-sync.py commit` records tiny_run's data
    and results in dvc.lock (they were made by this workflow and config, so no
    stage has to run again), and `dvc push` sends them to the default remote,
    as the README says. The remote (a folder below the user's home) lands in a
    home folder of the test's: HOME is pointed there for the module's commands.
    """
    base = tmp_path_factory.mktemp("dvc")
    repo = base / "origin"
    repo.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(base / "home"))
    copy_workflow_files(repo, PROJECT_FILES)
    (repo / "config.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    sh(repo, "git", "-c", "init.defaultBranch=main", "init", "-q")
    sync_tool(repo)
    copy_run(tiny_run / "data", repo / "data")
    copy_run(tiny_run / "results", repo / "results")
    name = default_remote(repo)
    sync_tool(repo, "commit")  # dvc commit, once Snakemake confirms nothing is left to run
    assert dvc_json(repo, "status") == {}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny run")
    untracked = sh(repo, "git", "status", "--porcelain").stdout
    assert untracked == "", f"dvc left files for git to track:\n{untracked}"
    dvc(repo, "push")
    remote = Path(dvc(repo, "remote", "list").stdout.split()[1].replace("~", str(base / "home"), 1))
    assert remote.is_dir() and not remote.is_relative_to(repo), remote
    yield {"repo": repo, "remote": remote, "remote_name": name, "base": base}
    patch.undo()


def clone_and_pull(project: dict, name: str) -> Path:
    """The README's steps, as written: clone, then `make dvc-pull` (here the tool it runs)."""
    clone = project["base"] / name
    sh(project["base"], "git", "clone", "-q", str(project["repo"]), str(clone))
    assert not (clone / "results").exists() and not (clone / "data").exists()
    sync_tool(clone, "pull")
    return clone


def test_dvc_lock_records_every_result_with_hashes_and_params(dvc_project, tiny_run):
    repo = dvc_project["repo"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for name, stage in lock.items():
        for entry in stage["deps"] + stage["outs"]:
            assert entry.get("md5"), f"{name}: {entry['path']} has no hash in dvc.lock"
        assert stage["params"]["config.yaml"] == yaml.safe_load((repo / "config.yaml").read_text()), (
            f"{name} does not record config.yaml's values"
        )
    recorded = set(lock_outs(repo))
    produced = {
        str(p.relative_to(tiny_run))
        for p in (tiny_run / "results").rglob("*")
        if p.is_file()
        # Working state, not results: usseg's resumable checkpoints and nnU-Net's own
        # preprocessed data and checkpoints (docs/dvc.md).
        and p.relative_to(tiny_run / "results").parts[0] != "checkpoints"
        and p.relative_to(tiny_run / "results").parts[:2] != ("nnunet", "work")
        and not any(part in recorded for part in _parents(p.relative_to(tiny_run)))
    }
    assert produced <= recorded, f"results not in dvc.lock: {sorted(produced - recorded)}"
    assert "data/demo/abdominal_US" in recorded


def _parents(rel: Path) -> list[str]:
    return [str(rel)] + [str(p) for p in rel.parents if str(p) != "."]


def test_metrics_and_plots_show_every_experiment(dvc_project):
    """`dvc metrics show` lists each experiment x test set headline; `dvc plots show` each training curve."""
    from usseg.headline import headline_metrics

    repo = dvc_project["repo"]
    config = tiny_config()
    metrics = dvc_json(repo, "metrics", "show")[""]["data"]
    for experiment in config["experiments"]:
        for test_set in config["test_sets"]:
            path = f"results/experiments/{experiment}/eval/{test_set}/{HEADLINE}"
            assert path in metrics, f"dvc metrics show misses {path}: {sorted(metrics)}"
            summary = json.loads((repo / path).with_name("summary.json").read_text())
            # DVC leaves out null values (no interval from fewer than 3 subjects).
            expected = {k: v for k, v in headline_metrics(summary).items() if v is not None}
            assert metrics[path]["data"] == pytest.approx(expected)
    plots = dvc_json(repo, "plots", "show")["data"]
    assert set(plots) == {"training_loss", "validation_dice"}
    # DVC names each line file::field when a plot has several fields, by file otherwise.
    expected_lines = {
        ("training_loss", "filename::field"): {
            f"{e}/history.csv::{f}" for e in config["experiments"] for f in ("train_loss", "val_loss")
        },
        ("validation_dice", "filename"): {f"{e}/history.csv" for e in config["experiments"]},
    }
    for (name, key), expected in expected_lines.items():
        rows = plots[name][0]["content"]["data"]["values"]
        drawn = {row[key] for row in rows}
        assert drawn == expected, f"{name}: {sorted(drawn)} != {sorted(expected)}"
        assert all(row["epoch"] for row in rows)


def test_metrics_show_is_a_short_table(dvc_project):
    """One row per evaluation and a few columns (it was 221 columns with every summary.json key); the full
    summary on request."""
    repo = dvc_project["repo"]
    lines = [line for line in dvc(repo, "metrics", "show").stdout.splitlines() if line.strip()]
    header = lines[0].split()
    assert header == ["Path", "ci95_hi", "ci95_lo", "dice", "n_subjects"], header
    config = tiny_config()
    assert len(lines) == 1 + len(config["experiments"]) * len(config["test_sets"])
    path = "results/experiments/liver_rf/eval/test_rus/summary.json"
    full = dvc_json(repo, "metrics", "show", path)[""]["data"][path]["data"]
    assert "per_class" in full and "dice_mean_foreground" in full


def test_plots_show_draws_without_the_internet(dvc_project, tmp_path):
    """The page `dvc plots show` writes carries Vega itself (no script from a CDN) and draws every plot
    in a browser with no network."""
    import re

    repo = dvc_project["repo"]
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    page = (tmp_path / "plots" / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", page), "the page loads a script from elsewhere"
    assert "vegaEmbed" in page and len(page) > 1_000_000  # the libraries inline
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make system-deps)")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--proxy-server=127.0.0.1:9", "--dump-dom", (tmp_path / "plots" / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout
    body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.DOTALL)
    drawn = re.findall(r'<div id="([^"]+)" class="vega-embed[^"]*">.*?<(?:canvas|svg)[^>]*class="marks"', body,
                       flags=re.DOTALL)
    plots = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    assert len(drawn) == len(plots), f"{len(drawn)} of {len(plots)} plots drawn: {drawn}"


def test_round_trip_push_clone_pull_needs_no_recomputation(dvc_project):
    origin = dvc_project["repo"]
    clone = clone_and_pull(dvc_project, "clone")
    for out in lock_outs(origin):
        assert tree_digests(clone, out) == tree_digests(origin, out), f"{out} came back different"
    assert dvc_json(clone, "status") == {}
    jobs, text = pending_rules(clone)
    assert jobs == set(), text[-3000:]

    # DVC writes files in no particular order; the documented step after a
    # checkout is what puts their times back in DAG order. Make it matter:
    manifest = clone / "results" / "manifest.csv"
    dataset = clone / "data" / "demo" / "abdominal_US"
    old = (dataset / ".snakemake_timestamp").stat().st_mtime - 3600
    os.utime(manifest, (old, old))
    jobs, _ = pending_rules(clone)
    assert "manifest" in jobs
    sync_tool(clone, "touch")
    jobs, text = pending_rules(clone)
    assert jobs == set(), text[-3000:]

    metrics = dvc_json(clone, "metrics", "show")
    shown = {path for rev in metrics.values() for path in rev["data"]}
    # The metrics are the experiments' evaluation headlines (the nnU-Net reference's summaries are outs).
    headlines = {o for o in lock_outs(origin) if o.endswith(f"/{HEADLINE}") and o.startswith("results/experiments/")}
    assert headlines and shown == headlines
    for rev in metrics.values():
        for path, entry in rev["data"].items():
            assert "dice" in entry["data"], path
    plots = dvc_json(clone, "plots", "show")["data"]
    histories = [o for o in lock_outs(origin) if o.endswith("/history.csv")]
    assert histories
    for definition in yaml.safe_load((origin / "dvc.yaml").read_text())["plots"]:
        ((plot_id, spec),) = definition.items()
        assert spec["x"] == "epoch"
        # DVC names each line "<shortest distinct end of the file name>::<column>".
        # (with one y column only the file name: "filename").
        values = [v for rendered in plots[plot_id] for v in rendered["content"]["data"]["values"]]
        lines = {
            tuple(v["filename::field"].rsplit("::", 1))
            if "filename::field" in v
            else (v["filename"], spec["y"][histories[0]][0])
            for v in values
        }
        for history in histories:
            for column in spec["y"][history]:
                assert any(history.endswith(f) and c == column for f, c in lines), (
                    f"plot {plot_id} has no line for {column} of {history}: {sorted(lines)}"
                )


def test_touch_refuses_when_results_do_not_match_the_config(dvc_project):
    clone = project_copy(dvc_project, "refuse")
    write_config(clone / "config.yaml", lambda c: c["split"].update(seed=c["split"]["seed"] + 1))
    proc = sync_tool(clone, "touch", check=False)
    assert proc.returncode != 0 and "dvc status is not clean" in proc.stderr


def project_copy(project: dict, name: str) -> Path:
    dst = project["base"] / name
    shutil.copytree(project["repo"], dst, symlinks=True, copy_function=shutil.copy2)
    return dst


def test_dvc_repro_after_a_config_change_redoes_only_the_stale_jobs(dvc_project):
    """DVC sees the changed param; the stage hands over to Snakemake, which redoes only what it depends on."""
    clone = clone_and_pull(dvc_project, "repro")
    write_config(
        clone / "config.yaml",
        lambda c: c["diagnostics"].update(domain_auc={"warn_above": 0.7, "fail_above": 0.85}),
    )
    status = dvc_json(clone, "status")
    changed = [e for entries in status.values() for e in entries if isinstance(e, dict)]
    assert any("config.yaml" in e.get("changed deps", {}) for e in changed), status
    jobs, _ = pending_rules(clone)
    assert jobs == {"diagnostics", "verdict", "report"}, jobs

    stages = resolved_stages(clone)
    outs = [o for st in stages.values() for o in st["outs"] + st["metrics"] if not is_log_or_benchmark(o)]
    redone = {o for o in outs if o.startswith(("results/diagnostics/", "results/verdict/", "results/report/"))}
    redone |= {"results/provenance/diagnostics.json", "results/provenance/verdict.json",
               "results/provenance/report.json"}
    before = {o: (clone / o).stat().st_mtime_ns for o in outs}
    # The documented way: DVC decides and runs Snakemake; the tool records the
    # results without rewriting them (a plain `dvc repro` relinks every out).
    proc = dvc(clone, "repro", "--no-commit")
    text = proc.stdout + proc.stderr
    assert "Running stage 'workflow'" in text, text[-3000:]
    finished = set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", text))
    assert finished == {"diagnostics", "verdict", "report"}, text[-3000:]
    sync_tool(clone, "commit")
    after = {o: (clone / o).stat().st_mtime_ns for o in outs}
    assert {o for o in outs if after[o] != before[o]} == redone
    assert dvc_json(clone, "status") == {}
    assert pending_rules(clone)[0] == set()




def test_dvc_yaml_agrees_with_the_jobs_snakemake_recorded(dvc_project, tiny_run, tmp_path_factory):
    """The outs are the outputs Snakemake recorded running the tiny workflow, the logs lie in the
    run records, and every input that no job makes is covered by a dep."""
    (stage,) = resolved_stages(dvc_project["repo"]).values()
    run = sibling_copy(tiny_run, tmp_path_factory)
    proc = run_snakemake(run, "--detailed-summary", "report")
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    header = rows[0]
    col = {name: header.index(name) for name in ("output_file", "log-file(s)", "input-file(s)")}

    def normal(path: str) -> str:
        full = Path(os.path.normpath(run / path))
        return str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(full.relative_to(run))

    def files(cell: str) -> set[str]:
        return {normal(p) for p in cell.split(",") if p and p != "-"}

    outputs = {row[col["output_file"]] for row in rows[1:]}
    assert outputs == {o for o in stage["outs"] + stage["metrics"] if not is_log_or_benchmark(o)}
    logs = set().union(*(files(row[col["log-file(s)"]]) for row in rows[1:]))
    assert logs and all(is_log_or_benchmark(log) for log in logs), logs
    sources = set().union(*(files(row[col["input-file(s)"]]) for row in rows[1:])) - outputs
    uncovered = {f for f in sources if not any(f == d or f.startswith(d + "/") for d in stage["deps"])}
    assert sources and not uncovered, f"inputs no job makes and no dep covers: {sorted(uncovered)}"
