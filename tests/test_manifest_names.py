"""A file name that is not valid UTF-8 is quarantined in the manifest, named, never crashed on."""

from __future__ import annotations

import os

import pytest

from datasets import dataset_cfg, make_dataset, write_image
from usseg.manifest import build_manifest, write_manifest


@pytest.fixture
def root(tmp_path):
    root = make_dataset(tmp_path / "data")
    folder = root / "AUS" / "images" / "train"
    # b"ct9-\xff.png": Latin-1 bytes from an old archive, not UTF-8.
    bad = os.path.join(os.fsencode(folder), b"ct9-\xff.png")
    try:
        write_image(os.fsdecode(bad), name="ct9-latin1")
    except (OSError, UnicodeError):
        pytest.skip("this file system does not accept a non-UTF-8 file name")
    return root


def test_non_utf8_name_is_quarantined_and_named(root, tmp_path):
    manifest, issues = build_manifest(root, dataset_cfg())
    rows = issues[issues["reason"] == "name_not_utf8"]
    assert rows["path"].tolist() == ["AUS/images/train/ct9-\\xff.png"]
    assert "not valid UTF-8" in rows["detail"].iloc[0] and "Rename" in rows["detail"].iloc[0]
    assert not manifest["image_path"].str.contains("ct9-").any()
    # Both CSVs can be written and read back as UTF-8.
    write_manifest(root, dataset_cfg(), False, tmp_path / "m.csv", tmp_path / "i.csv")
    assert "ct9-\\xff.png" in (tmp_path / "i.csv").read_text(encoding="utf-8")
