"""The script bridge: clear messages for user errors, provenance on success."""

import json
import types

import pytest

from usseg.errors import DataError
from usseg.step import snakemake_step


class Named(list):
    """A stand-in for Snakemake's Namedlist: a list with named attributes."""

    def __init__(self, **named):
        super().__init__()
        self._names = list(named)
        for name, value in named.items():
            setattr(self, name, value)
            self.extend(value if isinstance(value, list) else [value])

    def keys(self):
        return self._names


def fake_smk(tmp_path, with_provenance=True):
    inp = tmp_path / "in.csv"
    inp.write_text("a\n1\n")
    out = tmp_path / "out.csv"
    outputs = {"table": str(out)}
    if with_provenance:
        outputs["provenance"] = str(tmp_path / "prov" / "rule.json")
    return types.SimpleNamespace(
        rule="example",
        log=[str(tmp_path / "logs" / "example.log")],
        input=Named(table=str(inp)),
        output=Named(**outputs),
        params=Named(seed=3, dataset={"a": 1}),
        wildcards=Named(),
        scriptdir=None,
    )


def test_user_error_is_one_clear_message(tmp_path, capfd):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        with snakemake_step(smk):
            raise DataError("RUS/images/test/a1.jpg is empty: remove it or replace it")
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    assert "rule example stopped: RUS/images/test/a1.jpg is empty" in err
    assert "Traceback" not in err
    assert "a1.jpg is empty" in (tmp_path / "logs" / "example.log").read_text()
    assert not (tmp_path / "prov" / "rule.json").exists()


def test_bug_keeps_traceback_in_log_and_says_so(tmp_path, capfd):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit):
        with snakemake_step(smk):
            raise KeyError("boom")
    err = capfd.readouterr().err
    assert "bug in usseg" in err
    assert "Traceback" in (tmp_path / "logs" / "example.log").read_text()


def test_success_writes_provenance(tmp_path):
    smk = fake_smk(tmp_path)
    with snakemake_step(smk):
        (tmp_path / "out.csv").write_text("b\n2\n")
    record = json.loads((tmp_path / "prov" / "rule.json").read_text())
    assert record["rule"] == "example"
    assert record["params"] == {"seed": 3, "dataset": {"a": 1}}
    (inp_path, inp_desc), = record["inputs"]["table"].items()
    assert inp_path.endswith("in.csv") and len(inp_desc["sha256"]) == 64
    assert "provenance" not in record["outputs"]
    assert record["outputs"]["table"][str(tmp_path / "out.csv")]["sha256"]
    assert set(record["versions"]) >= {"python", "torch", "monai", "snakemake"}
    assert "git_commit" in record["code"]


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device", "/results/experiments/a/model.safetensors"),
        RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                     "\"No space left on device\" })"),
    ],
)
def test_a_full_disk_is_named_with_what_to_do(tmp_path, capfd, error):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        with snakemake_step(smk):
            raise error
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    assert "rule example stopped: no space left on the disk while writing" in err
    assert "df -h" in err and "re-run the same command" in err
    assert "bug in usseg" not in err
    if getattr(error, "filename", None):
        assert "/results/experiments/a/model.safetensors" in err


def test_a_full_disk_while_writing_provenance_is_named(tmp_path, capfd, monkeypatch):
    import usseg.step as step

    def full(path, record):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(step, "write_provenance", full)
    with pytest.raises(SystemExit):
        with snakemake_step(fake_smk(tmp_path)):
            (tmp_path / "out.csv").write_text("b\n2\n")
    assert "no space left on the disk while writing" in capfd.readouterr().err


def test_other_os_errors_are_still_bugs(tmp_path, capfd):
    with pytest.raises(SystemExit):
        with snakemake_step(fake_smk(tmp_path)):
            raise PermissionError(13, "Permission denied", "/x")
    assert "bug in usseg" in capfd.readouterr().err


def test_epoch_lines_go_to_the_log_file_not_the_console(tmp_path, capfd):
    import logging

    from usseg.training.history import epoch_log

    smk = fake_smk(tmp_path)
    (tmp_path / "out.csv").write_text("a\n")
    with snakemake_step(smk):
        epoch_log.info("epoch 7/500 train_loss 0.1")
        logging.getLogger("usseg.train").info("experiment e: best epoch 7")
    err = capfd.readouterr().err
    assert "best epoch 7" in err and "epoch 7/500" not in err
    text = (tmp_path / "logs" / "example.log").read_text()
    assert "epoch 7/500 train_loss 0.1" in text and "best epoch 7" in text


def test_third_party_output_goes_to_the_log_file_only(tmp_path, capfd):
    """Prints, progress bars, warnings, other libraries' log records, C-level writes and child processes'
    output land in the job's log; the console shows only usseg's own lines."""
    import logging
    import os
    import subprocess
    import sys
    import warnings

    smk = fake_smk(tmp_path)
    (tmp_path / "out.csv").write_text("a\n")
    with snakemake_step(smk):
        print("Yayy! New best EMA pseudo Dice")
        print("tqdm 50%|#####     |", file=sys.stderr)
        os.write(1, b"written by C code\n")
        warnings.warn("a library's deprecation warning", DeprecationWarning, stacklevel=1)
        logging.getLogger("nnunetv2.planner").warning("planning for 2d")
        subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)
        logging.getLogger("usseg.train").info("experiment e: 4 train / 2 val images")
    captured = capfd.readouterr()
    console = captured.out + captured.err
    assert "experiment e: 4 train / 2 val images" in console
    log = (tmp_path / "logs" / "example.log").read_text()
    for line in ("Yayy! New best EMA pseudo Dice", "tqdm 50%", "written by C code", "deprecation warning",
                 "planning for 2d", "a child process", "experiment e: 4 train / 2 val images"):
        assert line in log, line
        if "experiment e" not in line:
            assert line not in console, line
    # Afterwards the process writes where it did before.
    print("after the step")
    assert "after the step" in capfd.readouterr().out


def test_no_script_prints_while_it_imports():
    """A script's imports run before snakemake_step sends third-party output to the log: none of them may
    print (a library that prints at import would reach the console)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    lines = set()
    for script in sorted((repo / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        lines |= {ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    code = "\n".join(sorted(lines, key=lambda line: (not line.startswith("from __future__"), line)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "" and proc.stderr == "", proc.stdout[-2000:] + proc.stderr[-2000:]
