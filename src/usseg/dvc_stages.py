"""dvc.yaml, generated from the Snakemake DAG: the Snakefile stays the one source of truth.

Every Snakemake job becomes one DVC stage (rules with wildcards become one
`foreach`/`matrix` stage with one item per job) whose

- `cmd` hands the job back to Snakemake: `snakemake --allowed-rules RULE
  --force TARGET`. DVC has already decided that the stage must run (a dep,
  a param or an out changed), so Snakemake must run exactly that job: `--force`
  makes it run even where file times disagree with DVC's content hashes, and
  `--allowed-rules` stops it from running anything upstream, which DVC owns
  as other stages (their outputs are already in place when DVC gets here).
- `deps` are the job's inputs (data, the usseg modules it runs) and its
  `script:` file, the same files whose change re-runs the job in Snakemake;
- `params` are the config.yaml keys its `params:` read, derived from the
  rules' own source (see `param_sources`), never listed a second time;
- `outs` are its outputs, log and benchmark; the evaluation summaries are
  `metrics` and the training histories the top-level `plots`.

`write`/`check` are what tools/dvc-sync.py runs; `after_checkout` is the step
after `dvc pull`/`dvc checkout` that makes Snakemake agree with DVC about file
times (see docs/dvc.md).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DVC_YAML = "dvc.yaml"
PARAMS_FILE = "config.yaml"
# The whole params file, for a rule whose params hold the entire config.
ALL_PARAMS = "*"

HEADER = """\
# GENERATED from the Snakemake DAG by src/usseg/dvc_stages.py: do not edit.
# Regenerate after changing rules or config.yaml:  python tools/dvc-sync.py
# (tests/test_dvc.py fails while this file is stale). See docs/dvc.md.
"""

# Outputs DVC shows as metrics (`dvc metrics show`): (rule, output name).
METRICS = {("evaluate", "summary")}

# Training curves for `dvc plots show`: (rule, output name) -> one plot per
# entry, x against the y columns of every such file (one line per experiment).
# The columns are usseg.train.history_columns' shared by every experiment.
PLOTS = {
    ("train", "history"): [
        {
            "id": "training_loss",
            "title": "Training and validation loss",
            "x": "epoch",
            "y": ["train_loss", "val_loss"],
        },
        {
            "id": "validation_dice",
            "title": "Validation mean foreground Dice",
            "x": "epoch",
            "y": ["val_dice_mean"],
        },
    ],
}

# usseg functions that receive the whole config but read only part of it:
# function name -> config keys, given the argument that names the part.
# tests/test_dvc.py checks each entry by changing every other key.
KNOWN_CONFIG_READERS = {
    # resolve_experiment(config, name): experiment_defaults overridden by experiments[name].
    "resolve_experiment": lambda name: ["experiment_defaults", f"experiments.{name}"],
}


class DvcStagesError(Exception):
    """The DAG cannot be written as dvc.yaml (the message says why and what to change)."""


# ----------------------------------------------------------------------------- the Snakemake DAG


@dataclass
class Job:
    rule: str
    wildcards: dict[str, str]
    inputs: list[str]
    outputs: list[str]
    named_outputs: dict[str, list[str]]
    logs: list[str]
    benchmark: str | None
    script: str | None
    param_names: list[str]


@dataclass
class Dag:
    workdir: Path
    jobs: list[Job]
    rule_order: list[str]  # rules in DAG (topological) order
    param_sources: dict[str, dict[str, list[str]]]  # rule -> param -> key templates


@contextlib.contextmanager
def _quiet():
    """Snakemake's API logs to stdout/stderr; the generator's output is the file it writes."""
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        try:
            yield
        except Exception as exc:  # keep Snakemake's explanation
            raise DvcStagesError(f"{exc}\n{err.getvalue()[-4000:]}") from exc


def load_dag(workdir: str | Path = ".", snakefile: str | Path | None = None) -> Dag:
    """Build the workflow's DAG (default target, all jobs) with Snakemake's API, without running it."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    workdir = Path(workdir).resolve()
    snakefile = Path(snakefile).resolve() if snakefile else workdir / "Snakefile"
    cwd = os.getcwd()
    try:
        with _quiet(), SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(),
                snakefile=snakefile,
                workdir=workdir,
            )
            wf_api.dag(DAGSettings(forceall=True))
            workflow = wf_api._workflow
            workflow._prepare_dag(
                forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
            )
            workflow._build_dag()
            dag = workflow.dag
            jobs = [_job(job, workdir) for job in dag.jobs if job.output]
            order = [
                r
                for r in _rule_order(dag, [r.name for r in workflow.rules])
                if any(j.rule == r for j in jobs)
            ]
            sources = param_sources(workflow, {j.rule for j in jobs})
    finally:
        os.chdir(cwd)
    return Dag(workdir=workdir, jobs=jobs, rule_order=order, param_sources=sources)


def _job(job, workdir: Path) -> Job:
    rule = job.rule
    script = None
    if rule.script:
        # script: paths are relative to the file that defines the rule.
        script = os.path.normpath(Path(rule.snakefile).parent / str(rule.script))
        script = os.path.relpath(script, workdir)
    named = {}
    for name in job.output._names:
        value = getattr(job.output, name)
        named[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return Job(
        rule=rule.name,
        wildcards={k: str(v) for k, v in job.wildcards_dict.items()},
        inputs=_unique(str(f) for f in job.input),
        outputs=_unique(str(f) for f in job.output),
        named_outputs=named,
        logs=_unique(str(f) for f in job.log),
        benchmark=str(job.benchmark) if job.benchmark else None,
        script=script,
        param_names=list(job.params._names),
    )


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def _rule_order(dag, defined: list[str]) -> list[str]:
    """Rules in dependency order; ties in the order the rules are defined."""
    deps: dict[str, set[str]] = {}
    for job in dag.jobs:
        deps.setdefault(job.rule.name, set()).update(
            d.rule.name for d in dag.dependencies[job] if d.rule.name != job.rule.name
        )
    order: list[str] = []
    pending = [r for r in defined if r in deps]
    while pending:
        ready = [r for r in pending if deps[r] <= set(order)]
        if not ready:
            raise DvcStagesError(f"rules depend on each other in a cycle: {pending}")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


# ----------------------------------------------------------------------------- params -> config keys


def param_sources(workflow, rules: set[str]) -> dict[str, dict[str, list[str]]]:
    """For each rule, the config keys each of its params is computed from.

    Read from the rules' source as Snakemake compiles it: `config["a"]["b"]`
    gives "a.b", `config["experiments"][wildcards.experiment]` gives
    "experiments.{experiment}", a bare `config` the whole file, and helper
    functions and module constants (`data_root()`, `experiment`, `EXP`) are
    followed into their definitions. The one thing the source cannot say, which
    part of the config a usseg function reads when it is handed all of it,
    comes from KNOWN_CONFIG_READERS.
    """
    from snakemake.parser import parse

    trees = []
    for sourcefile in list(workflow._included.values()):
        code, _ = parse(sourcefile, workflow, linemap={})
        trees.append(ast.parse(code))
    scope = _Scope(trees)
    found: dict[str, dict[str, list[str]]] = {}
    for name, keywords in scope.rule_params.items():
        if name not in rules:
            continue
        found[name] = {param: sorted(scope.keys(expr)) for param, expr in keywords.items()}
    return found


class _Scope:
    """Top-level functions, assignments and rule params of the compiled workflow."""

    def __init__(self, trees: list[ast.Module]):
        self.functions: dict[str, ast.FunctionDef] = {}
        self.constants: dict[str, ast.expr] = {}
        self.rule_params: dict[str, dict[str, ast.expr]] = {}
        for tree in trees:
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    rule = self._rule_name(node)
                    if rule is None:
                        self.functions[node.name] = node
                    else:
                        self.rule_params[rule] = self._params(node, rule)
                elif (
                    isinstance(node, ast.Assign)
                    and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                ):
                    self.constants[node.targets[0].id] = node.value
        self._active: set[str] = set()

    @staticmethod
    def _decorator(node: ast.FunctionDef, attr: str) -> ast.Call | None:
        for dec in node.decorator_list:
            if (
                isinstance(dec, ast.Call)
                and isinstance(dec.func, ast.Attribute)
                and dec.func.attr == attr
                and isinstance(dec.func.value, ast.Name)
                and dec.func.value.id == "workflow"
            ):
                return dec
        return None

    def _rule_name(self, node: ast.FunctionDef) -> str | None:
        dec = self._decorator(node, "rule")
        if dec is None:
            return None
        for kw in dec.keywords:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                return kw.value.value
        return None

    def _params(self, node: ast.FunctionDef, rule: str) -> dict[str, ast.expr]:
        dec = self._decorator(node, "params")
        if dec is None:
            return {}
        if dec.args:
            raise DvcStagesError(
                f"rule {rule}: unnamed params cannot be traced to config keys; give every param a name"
            )
        return {kw.arg: kw.value for kw in dec.keywords if kw.arg}

    # Which config keys an expression reads. Returns key templates ("a.b",
    # "experiments.{experiment}") or ALL_PARAMS.
    def keys(self, node: ast.AST) -> set[str]:
        chain = _config_chain(node)
        if chain is not None:
            return {".".join(chain) if chain else ALL_PARAMS}
        if isinstance(node, ast.Name):
            if node.id == "config":
                return {ALL_PARAMS}
            if node.id in self.functions:
                return self._function_keys(node.id)
            if node.id in self.constants and node.id not in self._active:
                self._active.add(node.id)
                try:
                    return self.keys(self.constants[node.id])
                finally:
                    self._active.discard(node.id)
            return set()
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name in KNOWN_CONFIG_READERS:
                return self._known_reader(name, node)
            found = self._function_keys(name) if name in self.functions else set()
            for child in [*node.args, *(kw.value for kw in node.keywords)]:
                found |= self.keys(child)
            if not isinstance(node.func, ast.Name):
                found |= self.keys(node.func)
            return found
        if isinstance(node, ast.Lambda):
            return self.keys(node.body)
        found: set[str] = set()
        for child in ast.iter_child_nodes(node):
            found |= self.keys(child)
        return found

    def _function_keys(self, name: str) -> set[str]:
        if name in self._active:
            return set()
        self._active.add(name)
        try:
            found: set[str] = set()
            for stmt in self.functions[name].body:
                found |= self.keys(stmt)
            return found
        finally:
            self._active.discard(name)

    def _known_reader(self, name: str, node: ast.Call) -> set[str]:
        if len(node.args) != 2:
            raise DvcStagesError(f"{name}(config, name) called with {len(node.args)} arguments")
        part = _key_part(node.args[1])
        if part is None:
            raise DvcStagesError(
                f"{name}(config, ...): the second argument must be a constant or a wildcard "
                f"to know which config keys it reads, not {ast.unparse(node.args[1])!r}"
            )
        return set(KNOWN_CONFIG_READERS[name](part))


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return (
            node.func.attr
            if isinstance(node.func.value, ast.Name) and node.func.value.id != "config"
            else None
        )
    return None


def _key_part(node: ast.AST) -> str | None:
    """A constant key -> itself; wildcards.x / wildcards["x"] -> "{x}"; anything else -> None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return str(node.value)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "wildcards"
    ):
        return "{" + node.attr + "}"
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "wildcards"
        and isinstance(node.slice, ast.Constant)
    ):
        return "{" + str(node.slice.value) + "}"
    return None


def _config_chain(node: ast.AST) -> list[str] | None:
    """config["a"]["b"] / config.get("a") -> ["a", "b"]; bare config -> []; else None.

    The chain stops at the first part that is not a constant or a wildcard: the
    key up to there is what the expression depends on.
    """
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Subscript):
            parts.insert(0, _key_part(node.slice))
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
        ):
            parts.insert(0, _key_part(node.args[0]))
            node = node.func.value
        elif isinstance(node, ast.Name) and node.id == "config":
            if None in parts:
                parts = parts[: parts.index(None)]
            return parts
        else:
            return None


# ----------------------------------------------------------------------------- dvc.yaml


def stage_keys(dag: Dag, job: Job) -> list[str]:
    """The config keys (concrete, e.g. experiments.liver_unet) a job's params read."""
    sources = dag.param_sources.get(job.rule, {})
    keys: set[str] = set()
    for param in job.param_names:
        if param not in sources:
            raise DvcStagesError(
                f"rule {job.rule}: param {param!r} is not in the rule's params: source; "
                "params must be declared with `params:` in the rule"
            )
        for template in sources[param]:
            keys.add(template.format(**job.wildcards) if template != ALL_PARAMS else template)
    return _minimal_keys(keys)


def _minimal_keys(keys: set[str]) -> list[str]:
    """Drop keys inside another listed key (dataset.classes under dataset); '*' swallows all."""
    if ALL_PARAMS in keys:
        return [ALL_PARAMS]
    return sorted(k for k in keys if not any(k.startswith(o + ".") for o in keys if o != k))


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _check_params_in_file(dag: Dag, params_file: Path) -> None:
    """DVC reads params from the file itself: every key must be written there."""
    raw = yaml.safe_load(params_file.read_text()) or {}
    for job in dag.jobs:
        for key in stage_keys(dag, job):
            if key == ALL_PARAMS:
                continue
            try:
                _lookup(raw, key)
            except KeyError:
                raise DvcStagesError(
                    f"rule {job.rule} reads config key {key!r}, which {params_file.name} does not set "
                    "(Snakemake fills it from the schema's default, DVC cannot see it): "
                    f"write it into {params_file.name}"
                ) from None


def _job_stage(dag: Dag, job: Job) -> dict:
    """One job as a DVC stage (concrete paths)."""
    metric_files = {
        f for (rule, name) in METRICS if rule == job.rule for f in job.named_outputs.get(name, [])
    }
    deps = sorted(set(job.inputs) | ({job.script} if job.script else set()))
    outs = [f for f in job.outputs if f not in metric_files]
    outs += [f for f in job.logs + ([job.benchmark] if job.benchmark else []) if f not in outs]
    keys = stage_keys(dag, job)
    stage: dict[str, Any] = {"cmd": _cmd(job), "deps": deps}
    if keys:
        stage["params"] = [{PARAMS_FILE: None if keys == [ALL_PARAMS] else keys}]
    stage["outs"] = outs
    metrics = [f for f in job.outputs if f in metric_files]
    if metrics:
        stage["metrics"] = metrics
    return stage


def _cmd(job: Job) -> str:
    # One output names the job; --force runs it although DVC, not file times,
    # decided that it is out of date; --allowed-rules keeps Snakemake from
    # running any other (upstream) job, which DVC runs as their own stages.
    target = job.outputs[0]
    return f"snakemake --cores all --allowed-rules {job.rule} --force -- {shlex.quote(target)}"


def _templated(stage: dict, values: dict[str, str], placeholders: dict[str, str]) -> Any:
    """Replace each wildcard value with its ${...} placeholder in every string of the stage."""

    def sub(value):
        if isinstance(value, str):
            for wc in sorted(values, key=lambda w: -len(values[w])):
                value = value.replace(values[wc], placeholders[wc])
            return value
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {sub(k): sub(v) for k, v in value.items()}
        return value

    return sub(stage)


def _expand(template: Any, values: dict[str, str], placeholders: dict[str, str]) -> Any:
    def sub(value):
        if isinstance(value, str):
            for wc, ph in placeholders.items():
                value = value.replace(ph, values[wc])
            return value
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {sub(k): sub(v) for k, v in value.items()}
        return value

    return sub(template)


def build(dag: Dag) -> dict:
    """The dvc.yaml document for the DAG."""
    stages: dict[str, Any] = {}
    for rule in dag.rule_order:
        jobs = sorted(
            (j for j in dag.jobs if j.rule == rule), key=lambda j: sorted(j.wildcards.items())
        )
        concrete = [(job, _job_stage(dag, job)) for job in jobs]
        wildcards = sorted(jobs[0].wildcards)
        if len(jobs) == 1 and not wildcards:
            stages[rule] = concrete[0][1]
            continue
        stages.update(_grouped(rule, wildcards, concrete))
    doc: dict[str, Any] = {"stages": stages}
    plots = _plots(dag)
    if plots:
        doc["plots"] = plots
    return doc


def _grouped(rule: str, wildcards: list[str], concrete: list[tuple[Job, dict]]) -> dict:
    """One foreach (one wildcard) or matrix (several) stage, if one template fits every job."""
    if len(wildcards) == 1:
        placeholders = {wildcards[0]: "${item}"}
    else:
        placeholders = {wc: f"${{item.{wc}}}" for wc in wildcards}
    template = None
    fits = True
    for job, stage in concrete:
        if sorted(job.wildcards) != wildcards:
            fits = False
            break
        candidate = _templated(stage, job.wildcards, placeholders)
        if template is None:
            template = candidate
        fits = fits and candidate == template
    if fits:
        fits = all(
            _expand(template, job.wildcards, placeholders) == stage for job, stage in concrete
        )
        items = [job.wildcards for job, _ in concrete]
        if len(wildcards) == 1:
            fits = fits and all(re.fullmatch(r"[\w.-]+", i[wildcards[0]]) for i in items)
        else:
            # matrix: every combination must be a job, and nothing else.
            combos = {tuple(i[w] for w in wildcards) for i in items}
            axes = [sorted({i[w] for i in items}) for w in wildcards]
            total = 1
            for axis in axes:
                total *= len(axis)
            fits = fits and len(combos) == total == len(items)
    if fits:
        if len(wildcards) == 1:
            return {rule: {"foreach": [i[wildcards[0]] for i in items], "do": template}}
        matrix = {w: sorted({i[w] for i in items}) for w in wildcards}
        return {rule: {"matrix": matrix, **template}}
    # The jobs differ beyond their wildcards: one plain stage each.
    named = {}
    for job, stage in concrete:
        suffix = "-".join(re.sub(r"[^\w.-]", "_", job.wildcards[w]) for w in sorted(job.wildcards))
        named[f"{rule}_{suffix}" if suffix else rule] = stage
    return named


def _plots(dag: Dag) -> list[dict]:
    plots = []
    for (rule, name), specs in sorted(PLOTS.items()):
        files = sorted(f for j in dag.jobs if j.rule == rule for f in j.named_outputs.get(name, []))
        if not files:
            continue
        for spec in specs:
            y = {f: list(spec["y"]) for f in files}
            plots.append({spec["id"]: {"title": spec["title"], "x": spec["x"], "y": y}})
    return plots


def render(doc: dict) -> str:
    body = yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True
    )
    # `- config.yaml:` (no keys) means every param of the file to DVC; PyYAML writes it `null`.
    body = body.replace(f"{PARAMS_FILE}: null", f"{PARAMS_FILE}:")
    return HEADER + body


def generate(workdir: str | Path = ".") -> str:
    """The dvc.yaml text for the workflow in `workdir` (its Snakefile and config.yaml)."""
    workdir = Path(workdir).resolve()
    dag = load_dag(workdir)
    _check_params_in_file(dag, workdir / PARAMS_FILE)
    return render(build(dag))


def write(workdir: str | Path = ".") -> Path:
    path = Path(workdir) / DVC_YAML
    text = generate(workdir)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def check(workdir: str | Path = ".") -> str | None:
    """None when dvc.yaml is what the DAG generates now; otherwise a unified diff."""
    import difflib

    path = Path(workdir) / DVC_YAML
    text = generate(workdir)
    current = path.read_text() if path.exists() else ""
    if current == text:
        return None
    return "".join(
        difflib.unified_diff(
            current.splitlines(True),
            text.splitlines(True),
            f"{DVC_YAML} (committed)",
            f"{DVC_YAML} (generated)",
        )
    )


def stage_name(rule: str, wildcards: dict[str, str]) -> str:
    """The DVC stage that runs a Snakemake job: `rule`, `rule@a` (foreach) or `rule@a-b` (matrix)."""
    if not wildcards:
        return rule
    return f"{rule}@" + "-".join(str(wildcards[w]) for w in sorted(wildcards))


_JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")


def parse_dry_run(text: str) -> list[dict]:
    """The jobs of a `snakemake --dry-run` log: [{rule, wildcards, reason}], one per job."""
    jobs: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        header = _JOB_HEADER.match(line.strip()) if not line.startswith(" ") else None
        if header:
            current = {"rule": header.group(1), "wildcards": {}, "reason": ""}
            jobs.append(current)
            continue
        if current is None:
            continue
        stripped = line.strip()
        if not line.startswith(" ") or not stripped:
            current = None
        elif stripped.startswith("wildcards:"):
            for pair in stripped[len("wildcards:") :].split(","):
                key, _, value = pair.strip().partition("=")
                current["wildcards"][key] = value
        elif stripped.startswith("reason:"):
            current["reason"] = stripped[len("reason:") :].strip()
    return jobs


# ----------------------------------------------------------------------------- after dvc pull/checkout


def _run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, check=False, **kw)


def dvc_status(workdir: str | Path = ".") -> dict:
    """`dvc status` as a dict: {} when the workspace matches dvc.yaml, dvc.lock and config.yaml."""
    workdir = Path(workdir)
    proc = _run([sys.executable, "-m", "dvc", "status", "--json"], workdir)
    if proc.returncode != 0:
        raise DvcStagesError(f"dvc status failed:\n{proc.stdout}\n{proc.stderr}")
    text = proc.stdout.strip()
    # dvc may print notices before the JSON document.
    return json.loads(text[text.index("{") :]) if "{" in text else {}


def commit(workdir: str | Path = ".") -> str:
    """Record results that Snakemake made (`snakemake report`) in dvc.lock: `dvc commit`, checked.

    `dvc commit` trusts that the outs were made from the deps; this holds when
    Snakemake, which made them, has nothing left to do. So it refuses otherwise.
    """
    workdir = Path(workdir)
    proc = _run([sys.executable, "-m", "snakemake", "--dry-run"], workdir)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise DvcStagesError(f"snakemake --dry-run failed:\n{text[-4000:]}")
    pending = sorted({stage_name(j["rule"], j["wildcards"]) for j in parse_dry_run(text)})
    if pending:
        raise DvcStagesError(
            "Snakemake still has jobs to run, so the results are not current; run `snakemake report` "
            f"(or `dvc repro`) first. Pending: {', '.join(pending)}"
        )
    proc = _run([sys.executable, "-m", "dvc", "commit", "--force"], workdir)
    if proc.returncode != 0:
        raise DvcStagesError(f"dvc commit failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def after_checkout(workdir: str | Path = ".", cores: int = 1) -> str:
    """Mark the files DVC just checked out as up to date for Snakemake.

    `dvc pull`/`dvc checkout` write files in no particular order, so an output
    can end up older than its input and Snakemake would redo the job. DVC has
    checked every file against the hashes in dvc.lock, and `dvc status` being
    clean means dvc.lock matches the code, the data and config.yaml, so the
    results are current: `snakemake --touch` then sets their times in DAG order
    (and records the jobs in Snakemake's metadata) without running anything.
    """
    workdir = Path(workdir)
    status = dvc_status(workdir)
    if status:
        raise DvcStagesError(
            "dvc status is not clean, so the checked-out results do not match this checkout's code, "
            "data or config.yaml; not marking them up to date. Run `dvc repro` (or snakemake) to bring "
            f"them up to date instead.\n{json.dumps(status, indent=1)[:4000]}"
        )
    proc = _run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--touch"], workdir)
    if proc.returncode != 0:
        raise DvcStagesError(
            f"snakemake --touch failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout + proc.stderr
