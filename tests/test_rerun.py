"""Advice that works when copied (usseg.rerun): every suggested `snakemake ...` carries the run's own options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from usseg import checkpoint, rerun

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_env(monkeypatch):
    """A clean environment: no prefix inherited from a run (and none leaked to later tests)."""
    monkeypatch.setenv(rerun.RERUN_ENV, "")  # recorded, so that the end of the test restores the variable's absence
    monkeypatch.delenv(rerun.RERUN_ENV)
    return monkeypatch


@pytest.mark.parametrize(
    ("argv", "carried"),
    [
        (["--cores", "2", "report", "--configfile", "configs/tiny.yaml"], ["--configfile", "configs/tiny.yaml"]),
        # As Snakemake reads it: every word after --configfile up to the next option is a config file.
        (["--configfile", "a.yaml", "b b.yaml", "--cores", "1", "report"], ["--configfile", "a.yaml", "b b.yaml"]),
        (["-s", "/w/Snakefile", "-d", "/runs/x", "--config", "data_root=/data/us", "split={seed: 4}", "-n"],
         ["--snakefile", "/w/Snakefile", "--directory", "/runs/x", "--config", "data_root=/data/us",
          "split={seed: 4}"]),
        (["--workflow-profile", "profiles/slurm", "--forcerun", "train", "report"],
         ["--workflow-profile", "profiles/slurm"]),
        (["--config=data_root=/d", "report"], ["--config", "data_root=/d"]),
        (["report"], []),
    ],
)
def test_the_options_that_decide_the_run_are_carried(argv, carried):
    assert rerun.command_line_options(argv) == carried


def test_a_command_carries_the_options_the_run_remembered(run_env):
    assert not rerun.is_job()
    options = rerun.remember(["--cores", "2", "report", "--configfile", "configs/tiny.yaml"])
    assert options == "--configfile configs/tiny.yaml" and rerun.is_job()
    path = "results/experiments/liver unet/model.safetensors"
    cmd = shlex.split(rerun.command("report", "--forcerun", path))
    # The target before the run's options: after --configfile's values it would be read as one more file.
    assert cmd == ["snakemake", "report", "--configfile", "configs/tiny.yaml", "--forcerun", path]
    # A job re-reading the Snakefile with its own command line keeps the run's options.
    assert rerun.remember(["--target-jobs", "train:experiment=x", "--cores", "1"]) == options


def test_a_run_without_options_still_tells_its_jobs_apart(run_env):
    assert rerun.remember(["--cores", "1", "report"]) == "" and rerun.is_job()
    assert rerun.command("report") == "snakemake report"


def test_without_a_run_the_command_is_plain_snakemake(run_env):
    assert rerun.command("report") == "snakemake report"


def test_the_damaged_model_advice_carries_the_run_options(run_env, tmp_path):
    from usseg.models import load_predictor

    run_env.setenv(rerun.RERUN_ENV, "--configfile configs/tiny.yaml")
    model = tmp_path / "model.safetensors"
    checkpoint.save_tensors(model, {"w": torch.ones(3)}, {"kind": "model"})
    raw = bytearray(model.read_bytes())
    raw[-4:] = b"\x00\x00\xc0\x7f"  # the last float becomes NaN
    model.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CorruptFileError) as err:
        load_predictor(model)
    assert f"Re-create it: snakemake report --configfile configs/tiny.yaml --forcerun {model}" in str(err.value)


def test_a_damaged_training_checkpoint_names_no_command(run_env, tmp_path):
    """Training sets a damaged checkpoint aside itself; a --forcerun of it would name a file no rule makes."""
    last = tmp_path / "checkpoints" / "e" / "last.safetensors"
    last.parent.mkdir(parents=True)
    checkpoint.save_tensors(last, {"w": torch.ones(3)}, {"kind": "checkpoint"})
    last.write_bytes(last.read_bytes()[:-4] + b"\x00\x00\xc0\x7f")
    with pytest.raises(checkpoint.CorruptFileError) as err:
        checkpoint.load_tensors(last)
    assert "snakemake" not in str(err.value) and "--forcerun" not in str(err.value)


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string a module's code holds (f-strings' literal parts too), docstrings left out."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_message_in_the_library_suggests_a_bare_snakemake_command():
    """Every `snakemake ...` a message or page suggests is built by usseg.rerun.command (docstrings and
    comments aside), so none drops the run's --configfile."""
    suggested = re.compile(r"""(?:^|[\s"'`>(])snakemake (?:--|[a-z_]+(?:$|[`'"<).\s]))""")
    offenders = []
    for path in sorted((REPO / "src" / "usseg").rglob("*")):
        if path.name == "rerun.py" or path.suffix not in (".py", ".j2", ".html"):
            continue
        texts = _strings(path) if path.suffix == ".py" else list(enumerate(path.read_text().splitlines(), 1))
        offenders += [f"{path.relative_to(REPO)}:{n}: {text.strip()[:120]}" for n, text in texts
                      if suggested.search(text)]
    assert not offenders, "\n".join(offenders)


def test_the_tests_leave_no_run_options_behind():
    """A leaked variable would make every later workflow run in this process's tests look like a job."""
    import os

    assert rerun.RERUN_ENV not in os.environ
