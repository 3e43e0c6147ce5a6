"""The dataset fingerprint moves exactly when a file under data_root changes, and hashes each file once."""

from __future__ import annotations

import os
import shutil

import pytest

from usseg import dataset_fingerprint as fp


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    for rel, text in {"AUS/images/train/a.png": "a", "AUS/images/test/b.png": "b", "RUS/x/y/z/c.jpg": "c"}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = tmp_path / "results" / "dataset_fingerprint.json"
    assert fp.update_fingerprint(root, out)
    return root, out


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "AUS/images/train/a.png").write_text("A"),  # edited in place
        lambda root: shutil.copyfile(root / "AUS/images/test/b.png", root / "AUS/images/train/a.png"),
        lambda root: (root / "RUS/x/y/z/new.jpg").write_text("n"),  # added deep down
        lambda root: (root / "RUS/x/y/z/c.jpg").unlink(),  # removed
        lambda root: (root / "RUS/x/y/z/c.jpg").rename(root / "RUS/x/y/z/d.jpg"),  # renamed
    ],
    ids=["edited", "test-copied-over-train", "added", "removed", "renamed"],
)
def test_any_change_rewrites_the_fingerprint(data, change):
    root, out = data
    before = out.read_text()
    change(root)
    assert fp.update_fingerprint(root, out)
    assert out.read_text() != before


def test_no_change_leaves_the_file_and_its_time_alone(data):
    root, out = data
    os.utime(out, ns=(1, 1))
    assert not fp.update_fingerprint(root, out)
    assert out.stat().st_mtime_ns == 1
    os.utime(root / "AUS/images/train/a.png")  # touched, same content
    assert not fp.update_fingerprint(root, out)
    assert out.stat().st_mtime_ns == 1


def test_unchanged_files_are_not_read_again(data, monkeypatch):
    root, out = data
    read = []
    real = fp._sha256
    monkeypatch.setattr(fp, "_sha256", lambda path: read.append(path) or real(path))
    fp.update_fingerprint(root, out)
    assert read == []
    (root / "AUS/images/train/a.png").write_text("changed, longer")
    fp.update_fingerprint(root, out)
    assert [os.path.basename(p) for p in read] == ["a.png"]


def test_a_name_that_is_not_utf8_is_fingerprinted(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    try:
        with open(os.path.join(os.fsencode(root), b"bad-\xff.png"), "wb") as fh:
            fh.write(b"x")
    except OSError:
        pytest.skip("this file system does not accept a non-UTF-8 file name")
    out = tmp_path / "fp.json"
    assert fp.update_fingerprint(root, out)
    assert "bad-\\\\xff.png" in out.read_text()
