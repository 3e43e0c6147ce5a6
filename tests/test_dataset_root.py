"""The dataset root is found once by the manifest and recorded; later stages read the record."""

from __future__ import annotations

import json

import pytest

from datasets import dataset_cfg, make_dataset
from usseg.dataset_root import read_dataset_root, write_dataset_root
from usseg.errors import DataError
from usseg.manifest import write_manifest


def _nested_download(tmp_path):
    root = tmp_path / "download" / "abdominal_US" / "abdominal_US"
    for m in ("AUS", "RUS"):
        (root / m).mkdir(parents=True)
    return tmp_path / "download", root


def test_the_manifest_records_the_root_it_found_below_data_root(tmp_path):
    data_root = tmp_path / "download"
    root = make_dataset(data_root)  # nested as the download is: download/abdominal_US/abdominal_US/
    record = tmp_path / "results" / "dataset_root.json"
    write_manifest(data_root, dataset_cfg(), False, tmp_path / "m.csv", tmp_path / "i.csv", root_json=record)
    written = json.loads(record.read_text())
    assert {k: written[k] for k in ("data_root", "dataset_root")} == {
        "data_root": str(data_root), "dataset_root": str(root.resolve())}
    assert written["reading"]["bit_depth"] == 8  # 8-bit data: read as stored
    assert read_dataset_root(record) == root.resolve()


def test_a_record_of_a_moved_dataset_says_to_rerun_the_manifest(tmp_path):
    _, root = _nested_download(tmp_path)
    record = tmp_path / "dataset_root.json"
    write_dataset_root(tmp_path, root, record)
    for m in ("AUS", "RUS"):
        (root / m).rmdir()
    root.rmdir()
    with pytest.raises(DataError, match=r"dataset_root.json.*no longer a folder.*--forcerun manifest"):
        read_dataset_root(record)


def test_a_damaged_record_names_the_file(tmp_path):
    record = tmp_path / "dataset_root.json"
    record.write_text("{not json")
    with pytest.raises(DataError, match=r"dataset_root.json: cannot read"):
        read_dataset_root(record)
    record.write_text('{"data_root": "x"}')
    with pytest.raises(DataError, match=r"expected"):
        read_dataset_root(record)
