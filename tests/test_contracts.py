"""usseg.contracts: the one owner of columns, JSON keys and split names, and its checked readers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

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

    assert manifest.MANIFEST_COLUMNS is contracts.MANIFEST_COLUMNS
    assert manifest.ISSUE_COLUMNS is contracts.ISSUE_COLUMNS
    assert masks.REPORT_COLUMNS is contracts.DECODE_REPORT_COLUMNS
    assert splits.SPLIT_COLUMNS is contracts.SPLIT_COLUMNS


def test_numeric_contract_files_refuse_text_where_numbers_belong(tmp_path):
    path = tmp_path / "loso.csv"
    seeds = {"n_seeds": [3], "dice_seed_sd": [0.01], "surface_dice_seed_sd": [0.02]}
    pd.DataFrame({"held_out_subject": ["007"], "n_images": [3], "dice": ["high"], "surface_dice": [0.5],
                  **seeds}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"loso\.csv: column\(s\) dice hold text.*gap_summary step"):
        contracts.read_loso(path)
    pd.DataFrame({"held_out_subject": ["007"], "n_images": [3], "dice": [""], "surface_dice": [0.5],
                  **seeds}).to_csv(path, index=False)
    loso = contracts.read_loso(path)
    # Subject ids stay text ("007", not 7); an empty score is a missing number.
    assert loso.loc[0, "held_out_subject"] == "007" and pd.isna(loso.loc[0, "dice"])
    with pytest.raises(DataError, match="lacks the column.*ci_lo"):
        pd.DataFrame({"remedy": ["r"]}).to_csv(tmp_path / "g.csv", index=False)
        contracts.read_numbers(tmp_path / "g.csv", ["remedy", "ci_lo"], "gap_summary", text=("remedy",))


def _manifest_row(**changes) -> dict:
    row = {c: "" for c in contracts.MANIFEST_COLUMNS}
    row.update(image_id="a", subject_id="s", modality="AUS", image_path="AUS/a.png", has_mask="True", width="4",
               height="4")
    row.update(changes)
    return row


def test_the_manifest_reader_types_and_checks_its_cells(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame([_manifest_row()]).to_csv(path, index=False)
    back = contracts.read_manifest(path)
    assert back["has_mask"].dtype == bool and back.loc[0, "has_mask"]
    assert back["width"].dtype == "int64" and back.loc[0, "width"] == 4
    pd.DataFrame([_manifest_row(has_mask="perhaps")]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"manifest\.csv, column has_mask: .*'perhaps'"):
        contracts.read_manifest(path)
    pd.DataFrame([_manifest_row(width="wide")]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"manifest\.csv, column width: expected whole numbers"):
        contracts.read_manifest(path)


def test_the_split_table_joins_checked_files_and_names_an_unknown_image(tmp_path):
    manifest, splits = tmp_path / "manifest.csv", tmp_path / "splits.csv"
    pd.DataFrame([_manifest_row()]).to_csv(manifest, index=False)
    rows = [{"image_id": "a", "subject_id": "s", "split": "train", "note": "", "excluded_from": ""}]
    contracts.write_table(pd.DataFrame(rows), splits, contracts.SPLIT_COLUMNS)
    table = contracts.read_split_table(manifest, splits)
    assert table.loc[0, "split"] == "train" and table.loc[0, "modality"] == "AUS"
    rows.append({**rows[0], "image_id": "ghost"})
    contracts.write_table(pd.DataFrame(rows), splits, contracts.SPLIT_COLUMNS)
    with pytest.raises(DataError, match="1 image ids are not in .*manifest.csv.*'ghost'.*manifest and split steps"):
        contracts.read_split_table(manifest, splits)


def test_sanity_and_gap_json_readers_check_their_keys(tmp_path):
    path = tmp_path / "liver_unet.json"
    path.write_text(json.dumps({"experiment": "liver_unet", "status": "PASS"}))
    with pytest.raises(DataError, match="lacks the key.*overfit, shuffled_label.*sanity_training step"):
        contracts.read_sanity(path)
    path.write_text(json.dumps({"n_subjects": 4}))
    with pytest.raises(DataError, match="lacks the key.*gap_summary step"):
        contracts.read_when_to_stop(path)
    keys = {k: None for k in contracts.WHEN_TO_STOP_KEYS}
    path.write_text(json.dumps({**keys, "kinds": {"remedy": {"estimable": False}}}))
    with pytest.raises(DataError, match="kinds.remedy lacks the key.*why.*gap_summary step"):
        contracts.read_when_to_stop(path)


def test_named_outputs_take_the_rule_s_paths_by_name_or_the_usual_names_in_a_folder(tmp_path):
    from types import SimpleNamespace

    from usseg.errors import UssegError

    # Fields are the contract's output names, in its order.
    assert [f for f in contracts.TrainingOutputs.__dataclass_fields__] == list(contracts.TRAINING_FILES)
    assert [f for f in contracts.EvaluationOutputs.__dataclass_fields__] == list(contracts.EVALUATION_FILES)
    usual = contracts.TrainingOutputs.in_folder(tmp_path / "exp")
    assert usual.model == tmp_path / "exp" / "model.safetensors" and usual.curves == tmp_path / "exp" / "curves.png"
    # A rule's named outputs (attributes, as snakemake.output) or a mapping; extra outputs are left alone.
    named = {name: f"r/{name}.out" for name in contracts.EVALUATION_FILES} | {"headline": "r/headline.json"}
    from_rule = contracts.EvaluationOutputs.from_rule(SimpleNamespace(**named))
    assert from_rule == contracts.EvaluationOutputs.from_rule(named)
    assert from_rule.confusion_png == Path("r/confusion_png.out")
    with pytest.raises(UssegError, match="timing, curves"):
        contracts.TrainingOutputs.from_rule({"model": "m", "history": "h"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        usual.model = tmp_path
    # make_folders creates each output's own folder (the rule's outputs may lie apart).
    apart = contracts.TrainingOutputs(**{name: tmp_path / name / "f" for name in contracts.TRAINING_FILES})
    apart.make_folders()
    assert all((tmp_path / name).is_dir() for name in contracts.TRAINING_FILES)
