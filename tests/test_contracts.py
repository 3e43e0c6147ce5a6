"""usseg.contracts: the one owner of columns, JSON keys and split names, and its checked readers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from usseg import contracts
from usseg.errors import DataError


def test_test_set_names_come_from_the_modality():
    assert contracts.test_set_name("AUS") == "test_aus"
    assert contracts.is_test_set("test_rus") and contracts.is_test_set("test_ct")
    assert not contracts.is_test_set("test_") and not contracts.is_test_set("train")
    assert contracts.is_evaluation_split("val") and contracts.is_evaluation_split("test_ct")
    assert not contracts.is_evaluation_split(contracts.UNLABELED)


def test_split_rank_orders_any_test_set_between_val_and_unlabeled():
    names = ["unassigned", "test_rus", "unlabeled", "val", "odd", "test_ct", "train"]
    assert sorted(names, key=contracts.split_rank) == [
        "train", "val", "test_ct", "test_rus", "unlabeled", "unassigned", "odd",
    ]


def test_read_splits_names_the_file_and_the_missing_column(tmp_path):
    path = tmp_path / "splits.csv"
    pd.DataFrame({"image_id": ["a"], "split": ["train"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"splits\.csv lacks the column\(s\) subject_id, note.*split step"):
        contracts.read_splits(path)
    with pytest.raises(DataError, match="does not exist: run the split step"):
        contracts.read_splits(tmp_path / "absent.csv")


def test_write_table_orders_columns_and_refuses_others(tmp_path):
    path = tmp_path / "issues.csv"
    df = pd.DataFrame({"detail": ["d"], "reason": ["r"], "path": [""]})
    contracts.write_table(df, path, contracts.ISSUE_COLUMNS)
    back = contracts.read_issues(path)
    assert list(back.columns) == contracts.ISSUE_COLUMNS and back.loc[0, "path"] == ""
    with pytest.raises(ValueError, match="not in the contract"):
        contracts.write_table(df.assign(extra=1), path, contracts.ISSUE_COLUMNS)
    assert contracts.read_issues(tmp_path / "none.csv", optional=True).empty


def test_read_summary_and_checklist_check_their_keys(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"experiment": "e", "test_set": "test_aus", "dice": {}}))
    with pytest.raises(DataError, match="lacks the key.*n_images, n_subjects, dice_mean_foreground"):
        contracts.read_summary(summary)
    checklist = tmp_path / "checklist.json"
    entry = dict.fromkeys(contracts.CHECK_KEYS, "x")
    checklist.write_text(json.dumps({"overall": "MAYBE", "checks": [entry]}))
    with pytest.raises(DataError, match="overall = 'MAYBE'"):
        contracts.read_checklist(checklist)
    checklist.write_text(json.dumps({"overall": "WARN", "checks": [entry]}))
    assert contracts.read_checklist(checklist)["overall"] == "WARN"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        contracts.read_json(tmp_path / "bad.json", (), "diagnostics")


def test_the_stages_use_the_contract_columns():
    from usseg import manifest, masks, splits
    from usseg.diagnostics import inputs

    assert manifest.MANIFEST_COLUMNS is contracts.MANIFEST_COLUMNS
    assert manifest.ISSUE_COLUMNS is contracts.ISSUE_COLUMNS
    assert masks.REPORT_COLUMNS is contracts.DECODE_REPORT_COLUMNS
    assert splits.SPLIT_COLUMNS is contracts.SPLIT_COLUMNS
    assert inputs.MANIFEST_COLUMNS is contracts.MANIFEST_COLUMNS
