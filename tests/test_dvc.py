"""DVC: dvc.yaml is generated from the Snakemake DAG, agrees with it, and versions data and results.

- dvc.yaml is what tools/dvc-sync.py generates now (no hand edits, not stale);
- its stages are the Snakemake jobs: same outputs, same inputs (as Snakemake
  recorded them running the tiny workflow), params that change exactly when
  Snakemake's params trigger fires;
- round trip on the tiny run: dvc commit -> dvc push -> git clone -> pull ->
  every result is back, byte for byte, and `snakemake -n` has nothing to do;
- `dvc repro` runs a changed stage through Snakemake and nothing else.
"""

from __future__ import annotations

import configparser
import json
import os
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
from usseg import dvc_stages
from usseg.config import resolve_experiment
from usseg.dvc_stages import parse_dry_run, stage_name

DVC_FILES = [".dvc/config", ".dvc/.gitignore"]
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


PARAMS_CHANGED = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings
snakefile, workdir, configfile = sys.argv[1:4]
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path(configfile)]),
        snakefile=Path(snakefile), workdir=Path(workdir),
    )
    wf_api.dag(DAGSettings())
    wf = wf_api._workflow
    wf._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    wf._build_dag()
    jobs = [j for j in wf.dag.jobs if j.output and wf.persistence.params_changed(j)]
    print(json.dumps([[j.rule.name, {k: str(v) for k, v in j.wildcards_dict.items()}] for j in jobs]))
"""


def snakemake_params_changed(run: Path, configfile: Path) -> set[str]:
    """The jobs whose params Snakemake's params trigger finds changed, as stage names.

    Asked of every job: a dry run reports the trigger only for jobs that
    nothing upstream already re-runs.
    """
    proc = sh(
        run,
        sys.executable,
        "-c",
        PARAMS_CHANGED,
        str(REPO / "Snakefile"),
        str(run),
        str(configfile),
    )
    return {
        stage_name(rule, wildcards)
        for rule, wildcards in json.loads(proc.stdout.strip().splitlines()[-1])
    }


def resolved_stages(repo: Path) -> dict:
    """dvc.yaml's stages as DVC itself reads them (foreach/matrix expanded)."""
    return json.loads(sh(repo, sys.executable, "-c", RESOLVE, str(repo)).stdout)


def stage_rule(name: str) -> str:
    return name.split("@")[0]


def is_log_or_benchmark(path: str) -> bool:
    return path.startswith(("results/logs/", "results/benchmarks/"))


def lock_outs(repo: Path) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return sorted(o["path"] for st in lock["stages"].values() for o in st.get("outs", []))


def dry_run_stages(repo: Path) -> tuple[set[str], str]:
    """Jobs `snakemake -n report` would run in a checkout of the workflow (its own Snakefile and config)."""
    proc = sh(repo, sys.executable, "-m", "snakemake", "--dry-run", "report")
    text = proc.stdout + proc.stderr
    return {stage_name(j["rule"], j["wildcards"]) for j in parse_dry_run(text)}, text


def write_config(path: Path, change) -> None:
    config = tiny_config()
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def default_remote(repo: Path) -> str:
    return dvc(repo, "remote", "default").stdout.strip()


# ----------------------------------------------------------------------------- the repository's DVC setup


def test_repository_is_a_dvc_project_with_an_offline_default_remote():
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
    folder = (REPO / ".dvc" / url).resolve()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(folder / "files")], cwd=REPO, check=False
    )
    assert folder.is_relative_to(REPO) and ignored.returncode == 0, (
        f"the default remote {folder} should be a git-ignored folder of the checkout"
    )


def test_dvc_yaml_is_up_to_date():
    proc = sync_tool(REPO, "--check", check=False)
    assert proc.returncode == 0, (
        "dvc.yaml differs from what the Snakemake DAG generates; run `python tools/dvc-sync.py`:\n"
        + proc.stdout[-6000:]
        + proc.stderr[-3000:]
    )


def test_dvc_yaml_stages_are_the_snakemake_jobs():
    """Every output of the default run is an out of exactly one stage, run by its own rule."""
    stages = resolved_stages(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--summary", "--forceall"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert rows[0][:3] == ["output_file", "date", "rule"], rows[0]
    snakemake_outputs = {row[0]: row[2] for row in rows[1:]}

    owner: dict[str, str] = {}
    for name, stage in stages.items():
        for out in stage["outs"] + stage["metrics"]:
            assert out not in owner, f"{out} is an out of both {owner[out]} and {name}"
            owner[out] = name
    dvc_outputs = {o: s for o, s in owner.items() if not is_log_or_benchmark(o)}
    assert set(dvc_outputs) == set(snakemake_outputs), (
        f"only in dvc.yaml: {sorted(set(dvc_outputs) - set(snakemake_outputs))}; "
        f"only in the Snakemake DAG: {sorted(set(snakemake_outputs) - set(dvc_outputs))}"
    )
    for out, name in dvc_outputs.items():
        assert stage_rule(name) == snakemake_outputs[out], (
            f"{out}: stage {name}, rule {snakemake_outputs[out]}"
        )

    for name, stage in stages.items():
        rule = stage_rule(name)
        # The stage hands its job to Snakemake: only its rule, forced, one of its own outputs as target.
        assert stage["cmd"].startswith("snakemake "), stage["cmd"]
        assert f"--allowed-rules {rule} " in stage["cmd"] and " --force " in stage["cmd"], stage[
            "cmd"
        ]
        assert stage["cmd"].split(" -- ")[-1] in stage["outs"] + stage["metrics"], stage["cmd"]
        assert set(stage["params"]) <= {"config.yaml"}, stage["params"]
        assert any(o.startswith("results/logs/") for o in stage["outs"]), f"{name} has no log"
    assert {o for s in stages.values() for o in s["metrics"]} == {
        o for o in snakemake_outputs if o.endswith("/summary.json")
    }
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plotted = {f for plot in doc["plots"] for spec in plot.values() for f in spec["y"]}
    assert plotted == {o for o in snakemake_outputs if o.endswith("/history.csv")}


def test_params_are_derived_from_the_rules():
    """The config keys each rule's params read, as the generator finds them in the rules' source."""
    dag = dvc_stages.load_dag(REPO)
    keys = {}
    for job in dag.jobs:
        keys.setdefault(job.rule, set()).update(
            k.replace(job.wildcards.get("experiment", "\0"), "{experiment}")
            for k in dvc_stages.stage_keys(dag, job)
        )
    assert keys == {
        "demo_data": {"demo.seed", "demo.size", "dataset.classes"},
        "manifest": {"data_root", "dataset", "strict"},
        "decode_masks": {"data_root", "dataset", "strict"},
        "split": {"split.seed", "split.val_fraction"},
        "diagnostics": {"data_root", "dataset", "diagnostics"},
        "train": {"data_root", "dataset", "experiment_defaults", "experiments.{experiment}"},
        "evaluate": {"data_root", "dataset", "experiment_defaults", "experiments.{experiment}"},
        "report": {dvc_stages.ALL_PARAMS},
    }


def test_known_config_reader_reads_only_the_keys_it_is_said_to():
    """KNOWN_CONFIG_READERS['resolve_experiment'] is right: other keys do not change its result."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    name = next(iter(config["experiments"]))
    keys = dvc_stages.KNOWN_CONFIG_READERS["resolve_experiment"](name)
    before = resolve_experiment(config, name)

    def changed(cfg, dotted):
        *parents, last = dotted.split(".")
        node = cfg
        for part in parents:
            node = node[part]
        node[last] = (
            {"changed": True}
            if not isinstance(node[last], dict)
            else {**node[last], "changed": True}
        )

    for key in keys:
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        changed(cfg, key)
        assert resolve_experiment(cfg, name) != before, f"{key} should matter"
    others = [k for k in config if k not in {key.split(".")[0] for key in keys}]
    others += [f"experiments.{e}" for e in config["experiments"] if e != name]
    for key in others:
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        changed(cfg, key)
        assert resolve_experiment(cfg, name) == before, f"resolve_experiment reads {key} too"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('config["a"]["b"]', {"a.b"}),
        ("config.get('a')", {"a"}),
        (
            "config['experiments'][wildcards.experiment]['epochs']",
            {"experiments.{experiment}.epochs"},
        ),
        ("config['a'][some_variable]['b']", {"a"}),
        ("config", {dvc_stages.ALL_PARAMS}),
        ("f(config['a'], 3) + CONST", {"a", "c"}),
        ("lambda wildcards: helper(wildcards)", {"d"}),
        ("'results/x'", set()),
    ],
)
def test_config_keys_of_an_expression(source, expected):
    import ast

    module = ast.parse("CONST = config['c']\ndef helper(wildcards):\n    return config['d']\n")
    scope = dvc_stages._Scope([module])
    assert scope.keys(ast.parse(source, mode="eval").body) == expected


# ----------------------------------------------------------------------------- on the tiny run


@pytest.fixture(scope="module")
def dvc_project(tiny_run, tmp_path_factory) -> dict:
    """A git + DVC repository of the workflow on the tiny config, holding tiny_run's results.

    dvc.yaml is generated there, `dvc-sync.py commit` records tiny_run's data
    and results in dvc.lock (they were made by this workflow and config, so no
    stage has to run again), and `dvc push` sends them to a local remote.
    """
    base = tmp_path_factory.mktemp("dvc")
    repo, remote = base / "origin", base / "remote"
    repo.mkdir()
    copy_workflow_files(repo, PROJECT_FILES)
    (repo / "config.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    sh(repo, "git", "-c", "init.defaultBranch=main", "init", "-q")
    sync_tool(repo)
    copy_run(tiny_run / "data", repo / "data")
    copy_run(tiny_run / "results", repo / "results")
    name = default_remote(repo)
    # The documented way to use another remote without editing the committed .dvc/config.
    dvc(repo, "remote", "modify", "--local", name, "url", str(remote))
    sync_tool(repo, "commit")  # dvc commit, once Snakemake confirms nothing is left to run
    assert dvc_json(repo, "status") == {}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "tiny run")
    untracked = sh(repo, "git", "status", "--porcelain").stdout
    assert untracked == "", f"dvc left files for git to track:\n{untracked}"
    dvc(repo, "push")
    return {"repo": repo, "remote": remote, "remote_name": name, "base": base}


def clone_and_pull(project: dict, name: str) -> Path:
    clone = project["base"] / name
    sh(project["base"], "git", "clone", "-q", str(project["repo"]), str(clone))
    assert not (clone / "results").exists() and not (clone / "data").exists()
    dvc(clone, "remote", "modify", "--local", project["remote_name"], "url", str(project["remote"]))
    sync_tool(clone, "pull")
    return clone


def test_dvc_lock_records_every_result_with_hashes_and_params(dvc_project, tiny_run):
    repo = dvc_project["repo"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for name, stage in lock.items():
        for entry in stage["deps"] + stage["outs"]:
            assert entry.get("md5"), f"{name}: {entry['path']} has no hash in dvc.lock"
        if name.split("@")[0] != "report":
            assert stage["params"]["config.yaml"], f"{name} records no params"
    recorded = set(lock_outs(repo))
    produced = {
        str(p.relative_to(tiny_run))
        for p in (tiny_run / "results").rglob("*")
        if p.is_file()
        and p.relative_to(tiny_run / "results").parts[0] != "checkpoints"
        and not any(part in recorded for part in _parents(p.relative_to(tiny_run)))
    }
    assert produced <= recorded, f"results not in dvc.lock: {sorted(produced - recorded)}"
    assert "data/demo/abdominal_US" in recorded


def _parents(rel: Path) -> list[str]:
    return [str(rel)] + [str(p) for p in rel.parents if str(p) != "."]


def test_metrics_and_plots_show_every_experiment(dvc_project):
    """`dvc metrics show` lists each experiment x test set summary; `dvc plots show` each training curve."""
    repo = dvc_project["repo"]
    config = tiny_config()
    metrics = dvc_json(repo, "metrics", "show")[""]["data"]
    for experiment in config["experiments"]:
        for test_set in config["test_sets"]:
            path = f"results/experiments/{experiment}/eval/{test_set}/summary.json"
            assert path in metrics, f"dvc metrics show misses {path}: {sorted(metrics)}"
            summary = json.loads((repo / path).read_text())
            # DVC leaves out null values (classes never present in the reference).
            scored = {c: v for c, v in summary["dice"].items() if v is not None}
            assert metrics[path]["data"]["dice"] == scored
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


def test_round_trip_push_clone_pull_needs_no_recomputation(dvc_project):
    origin = dvc_project["repo"]
    clone = clone_and_pull(dvc_project, "clone")
    for out in lock_outs(origin):
        assert tree_digests(clone, out) == tree_digests(origin, out), f"{out} came back different"
    assert dvc_json(clone, "status") == {}
    jobs, text = dry_run_stages(clone)
    assert jobs == set() and "Nothing to be done" in text, text[-3000:]

    # DVC writes files in no particular order; the documented step after a
    # checkout is what puts their times back in DAG order. Make it matter:
    manifest = clone / "results" / "manifest.csv"
    dataset = clone / "data" / "demo" / "abdominal_US"
    old = (dataset / ".snakemake_timestamp").stat().st_mtime - 3600
    os.utime(manifest, (old, old))
    jobs, _ = dry_run_stages(clone)
    assert "manifest" in jobs
    sync_tool(clone, "touch")
    jobs, text = dry_run_stages(clone)
    assert jobs == set(), text[-3000:]

    metrics = dvc_json(clone, "metrics", "show")
    shown = {path for rev in metrics.values() for path in rev["data"]}
    summaries = {o for o in lock_outs(origin) if o.endswith("/summary.json")}
    assert summaries and shown == summaries
    for rev in metrics.values():
        for path, entry in rev["data"].items():
            assert "dice_mean_foreground" in entry["data"], path
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


def test_dvc_repro_runs_the_changed_stage_through_snakemake_and_nothing_else(dvc_project):
    clone = clone_and_pull(dvc_project, "repro")
    write_config(clone / "config.yaml", lambda c: c["split"].update(seed=c["split"]["seed"] + 1))
    assert set(dvc_json(clone, "status")) == {"split", "report"}

    stages = resolved_stages(clone)
    others = [
        o for name, st in stages.items() if name != "split" for o in st["outs"] + st["metrics"]
    ]
    before = {o: (tree_digests(clone, o), (clone / o).stat().st_mtime_ns) for o in others}
    split_log = clone / "results" / "logs" / "split.log"
    log_time = split_log.stat().st_mtime_ns

    proc = dvc(clone, "repro", "--single-item", "split")
    ran = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith("Running stage")
    ]
    assert ran == ["Running stage 'split':"], proc.stdout[-3000:]
    assert split_log.stat().st_mtime_ns > log_time, "Snakemake did not run the split job"
    after = {o: (tree_digests(clone, o), (clone / o).stat().st_mtime_ns) for o in others}
    assert after == before, "dvc repro of one stage changed another stage's outputs"
    assert "split" not in dvc_json(clone, "status")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["experiments"]["liver_unet"].update(epochs=3),
            {
                "train@liver_unet",
                "evaluate@liver_unet-test_aus",
                "evaluate@liver_unet-test_rus",
                "report",
            },
        ),
        (
            lambda c: c["diagnostics"].update(domain_auc={"warn_above": 0.7, "fail_above": 0.85}),
            {"diagnostics", "report"},
        ),
        (lambda c: c["split"].update(seed=7), {"split", "report"}),
        (lambda c: c["demo"].update(seed=1), {"demo_data", "report"}),
        (lambda c: c["dataset"].update(off_palette_distance=50), None),
    ],
    ids=["experiment", "diagnostics", "split", "demo", "dataset"],
)
def test_dvc_params_change_exactly_when_snakemake_params_do(
    dvc_project, tiny_run, tmp_path, tmp_path_factory, change, expected
):
    """The stages whose params DVC sees changed are the jobs whose params Snakemake sees changed."""
    project = project_copy(dvc_project, f"params_{tmp_path.name}")
    write_config(project / "config.yaml", change)
    status = dvc_json(project, "status")
    dvc_changed = {
        name
        for name, entries in status.items()
        for entry in entries
        if isinstance(entry, dict) and "config.yaml" in entry.get("changed deps", {})
    }

    run = sibling_copy(tiny_run, tmp_path_factory)
    snakemake_changed = snakemake_params_changed(run, project / "config.yaml")
    assert dvc_changed == snakemake_changed
    if expected is None:
        config = tiny_config()
        expected = {"manifest", "decode_masks", "diagnostics", "report"}
        expected |= {f"train@{e}" for e in config["experiments"]}
        expected |= {
            f"evaluate@{e}-{t}" for e in config["experiments"] for t in config["test_sets"]
        }
    assert dvc_changed == expected


def test_dvc_yaml_agrees_with_the_jobs_snakemake_recorded(dvc_project, tiny_run, tmp_path_factory):
    """Each stage's deps and outs are the inputs, outputs and log Snakemake recorded running its job."""
    stages = resolved_stages(dvc_project["repo"])
    run = sibling_copy(tiny_run, tmp_path_factory)
    proc = run_snakemake(run, "--detailed-summary", "report")
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    header = rows[0]
    col = {
        name: header.index(name) for name in ("output_file", "rule", "log-file(s)", "input-file(s)")
    }

    def normal(path: str) -> str:
        full = Path(os.path.normpath(run / path))
        return (
            str(full.relative_to(REPO)) if full.is_relative_to(REPO) else str(full.relative_to(run))
        )

    recorded = {}
    for row in rows[1:]:
        recorded[row[col["output_file"]]] = {
            "rule": row[col["rule"]],
            "logs": {normal(p) for p in row[col["log-file(s)"]].split(",") if p and p != "-"},
            "inputs": {normal(p) for p in row[col["input-file(s)"]].split(",") if p and p != "-"},
        }
    seen = set()
    for name, stage in stages.items():
        files = [o for o in stage["outs"] + stage["metrics"] if not is_log_or_benchmark(o)]
        jobs = [recorded[o] for o in files]
        seen.update(files)
        assert {j["rule"] for j in jobs} == {stage_rule(name)}, name
        inputs = set().union(*(j["inputs"] for j in jobs))
        logs = set().union(*(j["logs"] for j in jobs))
        extra = set(stage["deps"]) - inputs
        assert inputs <= set(stage["deps"]), (
            f"{name}: inputs missing from deps: {sorted(inputs - set(stage['deps']))}"
        )
        assert len(extra) == 1 and next(iter(extra)).startswith("scripts/"), (
            f"{name}: deps beyond inputs + script: {extra}"
        )
        assert logs and logs <= set(stage["outs"]), f"{name}: logs {logs} not in outs"
        benchmarks = [o for o in stage["outs"] if o.startswith("results/benchmarks/")]
        assert all((run / b).is_file() for b in benchmarks), name
    assert seen == set(recorded), (
        f"recorded outputs without a stage: {sorted(set(recorded) - seen)}"
    )
