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


def test_user_error_is_one_clear_message(tmp_path, capsys):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        with snakemake_step(smk):
            raise DataError("RUS/images/test/a1.jpg is empty: remove it or replace it")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "rule example stopped: RUS/images/test/a1.jpg is empty" in err
    assert "Traceback" not in err
    assert "a1.jpg is empty" in (tmp_path / "logs" / "example.log").read_text()
    assert not (tmp_path / "prov" / "rule.json").exists()


def test_bug_keeps_traceback_in_log_and_says_so(tmp_path, capsys):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit):
        with snakemake_step(smk):
            raise KeyError("boom")
    err = capsys.readouterr().err
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
def test_a_full_disk_is_named_with_what_to_do(tmp_path, capsys, error):
    smk = fake_smk(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        with snakemake_step(smk):
            raise error
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "rule example stopped: no space left on the disk while writing" in err
    assert "df -h" in err and "re-run the same command" in err
    assert "bug in usseg" not in err
    if getattr(error, "filename", None):
        assert "/results/experiments/a/model.safetensors" in err


def test_a_full_disk_while_writing_provenance_is_named(tmp_path, capsys, monkeypatch):
    import usseg.step as step

    def full(path, record):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(step, "write_provenance", full)
    with pytest.raises(SystemExit):
        with snakemake_step(fake_smk(tmp_path)):
            (tmp_path / "out.csv").write_text("b\n2\n")
    assert "no space left on the disk while writing" in capsys.readouterr().err


def test_other_os_errors_are_still_bugs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        with snakemake_step(fake_smk(tmp_path)):
            raise PermissionError(13, "Permission denied", "/x")
    assert "bug in usseg" in capsys.readouterr().err


def test_epoch_lines_go_to_the_log_file_not_the_console(tmp_path, capsys):
    import logging

    from usseg.training.history import epoch_log

    smk = fake_smk(tmp_path)
    (tmp_path / "out.csv").write_text("a\n")
    with snakemake_step(smk):
        epoch_log.info("epoch 7/500 train_loss 0.1")
        logging.getLogger("usseg.train").info("experiment e: best epoch 7")
    err = capsys.readouterr().err
    assert "best epoch 7" in err and "epoch 7/500" not in err
    text = (tmp_path / "logs" / "example.log").read_text()
    assert "epoch 7/500 train_loss 0.1" in text and "best epoch 7" in text
