"""The code a rule runs is computed from imports: complete, and every rule names its own script."""

from __future__ import annotations

import re
from modulefinder import ModuleFinder
from pathlib import Path

import pytest

from conftest import REPO
from usseg.code_deps import code_digest, code_files, import_cycles, import_graph, module_code_files

SRC = REPO / "src"
SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def _package(tmp_path: Path) -> Path:
    """A toy usseg package: a imports b; b imports c lazily and by a relative import; c names a data file."""
    pkg = tmp_path / "usseg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from usseg import b\nimport numpy\n")
    (pkg / "b.py").write_text("def f():\n    from usseg.sub import c\n    return c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from . import d\nNAME = 'table.yaml'\n")
    (pkg / "sub" / "d.py").write_text("from ..unused import nothing\n")
    (pkg / "sub" / "table.yaml").write_text("x: 1\n")
    (pkg / "e.py").write_text("")  # imported by nobody
    script = tmp_path / "script.py"
    script.write_text("from usseg.a import something\n")
    return pkg


def test_imports_are_followed_transitively_lazy_and_relative_ones_included(tmp_path):
    pkg = _package(tmp_path)
    found = {p.relative_to(pkg).as_posix() for p in code_files(tmp_path / "script.py", pkg)}
    assert found == {"__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "sub/d.py", "sub/table.yaml"}


def test_a_module_counts_itself(tmp_path):
    pkg = _package(tmp_path)
    assert (pkg / "sub" / "d.py") in code_files(pkg / "sub" / "d.py", pkg)


def test_the_digest_changes_with_any_file_it_covers(tmp_path):
    pkg = _package(tmp_path)
    files = code_files(tmp_path / "script.py", pkg)
    before = code_digest(files, pkg)
    (pkg / "sub" / "table.yaml").write_text("x: 2\n")
    assert code_digest(files, pkg) != before


def test_module_code_files_of_train_cover_what_training_runs():
    names = {p.relative_to(SRC / "usseg").as_posix() for p in module_code_files("usseg.train")}
    assert {"train.py", "data.py", "experiment.py", "dataset_spec.py", "config.schema.yaml", "checkpoint.py",
            "models.py"} <= names
    # Training reads its settings through Experiment; config loading and checking are not part of it.
    assert "config.py" not in names
    with pytest.raises(ValueError, match="not a module"):
        module_code_files("usseg.nope")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_computed_code_matches_what_python_imports(script):
    # The standard library's ModuleFinder (bytecode analysis) as an independent reference.
    finder = ModuleFinder(path=[str(SRC)])
    finder.run_script(str(script))
    imported = {
        Path(m.__file__).resolve()
        for name, m in finder.modules.items()
        if name.split(".")[0] == "usseg" and m.__file__
    }
    computed = {p for p in code_files(script, SRC / "usseg") if p.suffix == ".py"}
    assert computed == imported, sorted(p.name for p in computed ^ imported)


def test_report_code_includes_its_templates_and_config_code_its_schema():
    names = {p.name for p in code_files(REPO / "scripts" / "report.py", SRC / "usseg")}
    assert {"report.css", "report.js"} <= names
    names = {p.name for p in code_files(REPO / "scripts" / "decode_masks.py", SRC / "usseg")}
    # decode_masks reads the dataset section through DatasetSpec, whose defaults come from the schema.
    assert {"dataset_spec.py", "config.schema.yaml"} <= names and "config.py" not in names


def test_the_bridge_every_script_imports_brings_no_stage_s_code():
    # usseg.step is every script's code: what it imports would make a change anywhere there
    # re-run every rule (the manifest and the demo data on a change to the experiment settings).
    names = {p.relative_to(SRC / "usseg").as_posix() for p in code_files(SRC / "usseg" / "step.py", SRC / "usseg")}
    assert names == {"__init__.py", "step.py", "errors.py", "provenance.py", "training/__init__.py",
                     "training/history.py"}
    manifest = {p.name for p in code_files(REPO / "scripts" / "manifest.py", SRC / "usseg")}
    assert not manifest & {"config.py", "experiment.py", "data.py", "train.py"}


def _rule_blocks():
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?:rule|checkpoint) ", smk.read_text())[1:]:
            yield smk.name, block.split(":", 1)[0], block


def test_every_rule_with_a_script_takes_its_code_from_that_script():
    checked = 0
    for smk, rule, block in _rule_blocks():
        script = re.search(r'script:\n\s+"([^"]+)"', block)
        if not script:
            continue
        # experiment_code_of: the script's code plus its experiment's trainer and remedy families.
        code = re.search(r'code=(?:experiment_)?code_of\(\s*"([^"]+)"', block)
        assert code, f"{smk}: rule {rule} runs {script.group(1)} but has no code=code_of(...) input"
        assert code.group(1) == script.group(1), f"{smk}: rule {rule}: code_of names another script"
        checked += 1
    assert checked >= 9
    assert "code(" not in "".join(b for _, _, b in _rule_blocks()).replace("code_of(", "")
    # A rule whose job loads an experiment's trainer or remedy by name must take it as code.
    for rule in ("train", "evaluate", "sanity_training", "gap_domain"):
        block = next(b for _, r, b in _rule_blocks() if r == rule)
        assert "code=experiment_code_of(" in block, rule


def test_the_workflow_start_up_imports_neither_monai_nor_torch():
    # Every Snakemake start-up (each dry run, each SLURM job step) runs the
    # rules' imports; MONAI and torch would add seconds to each.
    import re
    import subprocess
    import sys

    sources = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    modules = sorted({m for p in sources for m in re.findall(r"^\s*from (usseg[\w.]*) import", p.read_text(), re.M)})
    assert "usseg.config" in modules
    probe = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted({{'monai', 'torch'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {modules} loads {out.strip()}"


def test_there_are_no_import_cycles_in_usseg():
    # A cycle makes two modules one unit (neither can change or be read alone) and every job that
    # runs one runs the other; lazy imports count, as they do for the code inputs.
    assert import_cycles(import_graph(SRC / "usseg")) == []


def test_an_import_cycle_is_found(tmp_path):
    pkg = tmp_path / "usseg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from usseg.sub.b import x\n")
    (pkg / "a.py").write_text("def f():\n    from usseg.sub import b\n")  # a lazy import counts
    (pkg / "sub" / "b.py").write_text("from usseg import a\nx = 1\n")
    (pkg / "c.py").write_text("from usseg.a import f\n")
    graph = import_graph(pkg)
    assert graph["usseg.c"] == {"usseg.a"} and graph["usseg.sub"] == {"usseg.sub.b"}
    assert import_cycles(graph) == [["usseg.a", "usseg.sub.b"]]


def test_trainers_and_remedy_families_are_no_script_s_shared_code():
    # They are loaded by name for the experiments that use them (usseg.training.code,
    # usseg.remedies.spec.IMPLEMENTATIONS), so editing one re-runs only those experiments' jobs.
    from usseg.remedies.spec import IMPLEMENTATIONS
    from usseg.training.code import TRAINERS

    by_name = {f"usseg.remedies.{m}" for modules in IMPLEMENTATIONS.values() for m in modules}
    by_name |= set(TRAINERS.values())
    for script in ("train.py", "evaluate.py", "sanity_training.py", "gap_arm.py", "diagnostics.py",
                   "decode_masks.py"):
        names = {f"usseg.{p.relative_to(SRC / 'usseg').with_suffix('').as_posix().replace('/', '.')}"
                 for p in code_files(REPO / "scripts" / script, SRC / "usseg") if p.suffix == ".py"}
        assert not names & by_name, (script, sorted(names & by_name))
    for module in by_name:  # each names a real module
        assert module_code_files(module), module


def test_an_experiment_s_code_is_its_trainer_and_its_remedy_families():
    from test_train import tiny_config
    from usseg.experiment import Experiment
    from usseg.training.code import experiment_code_files

    cfg = tiny_config()
    cfg["experiments"] = {
        "plain": {},
        "augmented": {"augmentation": {**cfg["experiment_defaults"]["augmentation"],
                                       "ultrasound": {"haze": {"prob": 0.5}}}},
        "fda": {"remedy": {"name": "fda"}},
        "teacher": {"remedy": {"name": "mean_teacher"}},
        "forest": {"model": {"name": "random_forest"}},
    }

    def names(name):
        return {p.relative_to(SRC / "usseg").as_posix() for p in experiment_code_files(Experiment.from_config(cfg, name))}

    assert "training/loop.py" in names("plain") and not names("plain") & {
        "remedies/us_augment.py", "remedies/style.py", "training/semi.py", "training/forest.py"}
    assert {"remedies/us_augment.py", "remedies/normalise.py"} <= names("augmented")
    assert "remedies/style.py" in names("fda") and "remedies/us_augment.py" not in names("fda")
    assert {"training/semi.py", "remedies/semi.py", "training/loop.py"} <= names("teacher")
    assert "training/forest.py" in names("forest") and "training/loop.py" not in names("forest")
