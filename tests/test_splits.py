"""Splits: grouped by subject, deterministic, loud about leakage, honest about unlabeled images."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupShuffleSplit

from datasets import dataset_cfg, make_dataset
from usseg.errors import DataError, LeakageError
from usseg.manifest import MANIFEST_COLUMNS, write_manifest
from usseg.masks import REPORT_COLUMNS, decode_masks
from usseg.splits import (
    KEPT_FLAGGED,
    SPLIT_COLUMNS,
    check_no_leakage,
    excluded_images,
    subject_grouped_split,
    subjects_left_out,
    write_splits,
)

EVAL_SPLITS = {"train", "val", "test_aus", "test_rus"}


def make_manifest() -> pd.DataFrame:
    """AUS: 8 labeled train subjects (3 frames each), 2 test subjects; RUS: unlabeled train, partly labeled test."""
    rows = []

    def add(modality, split, stem, subject, has_mask):
        image_path = f"{modality}/images/{split}/{stem}.png"
        rows.append(
            {
                "image_id": f"{modality}_{split}_{stem}",
                "subject_id": subject,
                "modality": modality,
                "domain": "synthetic" if modality == "AUS" else "real",
                "orig_split": split,
                "image_path": image_path,
                "mask_path": image_path.replace("images", "annotations") if has_mask else "",
                "has_mask": has_mask,
                "width": 20,
                "height": 16,
                "sha256": hashlib.sha256(image_path.encode()).hexdigest(),
                "mask_sha256": "",
            }
        )

    for s in range(1, 9):
        for f in range(1, 4):
            add("AUS", "train", f"ct{s}-{f}", f"ct{s}", True)
    for s in (9, 10):
        add("AUS", "test", f"ct{s}-1", f"ct{s}", True)
    for stem in ("a1", "a2", "b1"):
        add("RUS", "train", stem, stem[0], False)
    for stem, has in (("c1", True), ("c2", False), ("d1", True), ("e1", False)):
        add("RUS", "test", stem, stem[0], has)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def report_for(manifest, flagged=(), unusable=()) -> pd.DataFrame:
    masked = manifest[manifest["has_mask"]]
    flagged = set(flagged) | set(unusable)
    return pd.DataFrame(
        {
            "image_id": masked["image_id"],
            "mask_path": masked["mask_path"],
            "off_palette_fraction": 0.0,
            "far_fraction": [0.5 if i in flagged else 0.0 for i in masked["image_id"]],
            "max_distance": 0.0,
            "classes_present": "background;liver",
            "flagged": [i in flagged for i in masked["image_id"]],
            "flag_reason": [
                "50.00% far from the palette" if i in flagged else "" for i in masked["image_id"]
            ],
            "encoding": "palette",
            "relabelled_fraction": 0.0,
            "decode": "aa_aware",
            "usable": [i not in unusable for i in masked["image_id"]],
        }
    )[REPORT_COLUMNS]


def test_split_contract():
    manifest = make_manifest()
    splits = subject_grouped_split(manifest, report_for(manifest), 0.25, seed=42)
    assert list(splits.columns) == SPLIT_COLUMNS
    assert list(splits["image_id"]) == sorted(manifest["image_id"])
    by_id = splits.set_index("image_id")["split"]
    assert set(by_id) == {"train", "val", "test_aus", "test_rus", "unlabeled"}
    assert by_id["AUS_test_ct9-1"] == "test_aus" and by_id["RUS_test_c1"] == "test_rus"
    assert (splits.loc[splits["split"] == "val", "subject_id"].nunique()) == 2  # ceil(0.25 * 8)
    unlabeled = splits[splits["split"] == "unlabeled"]
    assert set(unlabeled["image_id"]) == {
        "RUS_train_a1",
        "RUS_train_a2",
        "RUS_train_b1",
        "RUS_test_c2",
        "RUS_test_e1",
    }
    assert (unlabeled["note"] == "no annotation").all()
    assert (splits.loc[splits["split"] != "unlabeled", "note"] == "").all()
    assert (splits["excluded_from"] == "").all()  # nothing left out of a test set
    check_no_leakage(splits, manifest)


def test_no_subject_in_two_splits_for_many_seeds():
    manifest = make_manifest()
    for seed in range(20):
        splits = subject_grouped_split(manifest, None, 0.2, seed)
        used = splits[splits["split"].isin(EVAL_SPLITS)]
        assert (used.groupby("subject_id")["split"].nunique() == 1).all()
        assert {"train", "val"} <= set(used["split"])


def test_uses_group_shuffle_split_with_the_given_fraction_and_seed():
    manifest = make_manifest()
    splits = subject_grouped_split(manifest, None, 0.3, seed=7)
    train = manifest[manifest["orig_split"].eq("train") & manifest["has_mask"]].sort_values(
        "image_id"
    )
    _, val_idx = next(
        GroupShuffleSplit(n_splits=1, test_size=0.3, random_state=7).split(
            train, groups=train["subject_id"]
        )
    )
    expected_val = set(train["subject_id"].iloc[val_idx])
    assert set(splits.loc[splits["split"] == "val", "subject_id"]) == expected_val


def test_deterministic_and_order_independent():
    manifest = make_manifest()
    first = subject_grouped_split(manifest, None, 0.25, seed=3)
    shuffled = manifest.sample(frac=1, random_state=0).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, subject_grouped_split(manifest, None, 0.25, seed=3))
    pd.testing.assert_frame_equal(first, subject_grouped_split(shuffled, None, 0.25, seed=3))
    vals = {
        tuple(
            sorted(
                subject_grouped_split(manifest, None, 0.25, s)
                .query("split == 'val'")["subject_id"]
                .unique()
            )
        )
        for s in range(6)
    }
    assert len(vals) > 1, "the seed should change which subjects are held out"


def test_flagged_training_masks_become_unlabeled_with_reason():
    manifest = make_manifest()
    report = report_for(manifest, flagged={"AUS_train_ct1-1"})
    splits = subject_grouped_split(manifest, report, 0.25, seed=0).set_index("image_id")
    assert splits.loc["AUS_train_ct1-1", "split"] == "unlabeled"
    assert splits.loc["AUS_train_ct1-1", "note"] == "mask flagged: 50.00% far from the palette"
    assert splits.loc["AUS_train_ct1-1", "excluded_from"] == ""  # not a test image
    assert splits.loc["AUS_train_ct1-2", "split"] in {"train", "val"}


def test_flagged_test_masks_stay_in_their_test_set_and_are_marked():
    manifest = make_manifest()
    report = report_for(manifest, flagged={"RUS_test_d1", "AUS_test_ct9-1"})
    splits = subject_grouped_split(manifest, report, 0.25, seed=0).set_index("image_id")
    assert splits.loc["RUS_test_d1", "split"] == "test_rus"
    assert splits.loc["AUS_test_ct9-1", "split"] == "test_aus"
    for image_id in ("RUS_test_d1", "AUS_test_ct9-1"):
        assert splits.loc[image_id, "note"] == KEPT_FLAGGED + "50.00% far from the palette"
        assert splits.loc[image_id, "excluded_from"] == ""
    assert excluded_images(splits.reset_index(), "test_rus") == []


def test_strict_or_unusable_masks_leave_the_test_set_with_a_reason():
    manifest = make_manifest()
    report = report_for(manifest, flagged={"RUS_test_d1"}, unusable={"AUS_test_ct9-1"})
    for strict in (False, True):
        splits = subject_grouped_split(manifest, report, 0.25, seed=0, strict=strict)
        by_id = splits.set_index("image_id")
        assert by_id.loc["AUS_test_ct9-1", "split"] == "unlabeled"
        assert by_id.loc["AUS_test_ct9-1", "excluded_from"] == "test_aus"
        assert by_id.loc["AUS_test_ct9-1", "note"].startswith("mask unusable: 50.00%")
        assert excluded_images(splits, "test_aus") == [
            {"image_id": "AUS_test_ct9-1", "subject_id": "ct9", "reason": by_id.loc["AUS_test_ct9-1", "note"]}
        ]
        # ct9's one test image is gone: the test set lost the subject, and says so.
        assert subjects_left_out(splits, "test_aus") == ["ct9"]
        assert "subject ct9 has no image left in test_aus" in by_id.loc["AUS_test_ct9-1", "note"]
        d1 = by_id.loc["RUS_test_d1"]
        if strict:
            assert (d1["split"], d1["excluded_from"]) == ("unlabeled", "test_rus")
            assert d1["note"].startswith("mask flagged (strict: true): ")
            assert [e["image_id"] for e in excluded_images(splits, "test_rus")] == ["RUS_test_d1"]
        else:
            assert (d1["split"], d1["excluded_from"]) == ("test_rus", "")


def test_masks_set_aside_by_the_manifest_are_counted_as_left_out():
    manifest = make_manifest()
    issues = pd.DataFrame(
        [
            {"path": "RUS/annotations/test/c2.png", "reason": "mask_size_mismatch", "detail": "c2 is 8x8"},
            {"path": "RUS/images/test/e1.jpg", "reason": "unexpected_extension", "detail": "about the image"},
            {"path": "RUS/annotations/train/zz.png", "reason": "orphan_annotation", "detail": "no image"},
        ]
    )
    splits = subject_grouped_split(manifest, None, 0.25, seed=0, issues=issues).set_index("image_id")
    assert splits.loc["RUS_test_c2", "split"] == "unlabeled"
    assert splits.loc["RUS_test_c2", "excluded_from"] == "test_rus"
    assert splits.loc["RUS_test_c2", "note"] == "mask set aside by the manifest (mask_size_mismatch): c2 is 8x8"
    # e1 never had a mask: not left out of anything.
    assert (splits.loc["RUS_test_e1", "note"], splits.loc["RUS_test_e1", "excluded_from"]) == (
        "no annotation",
        "",
    )


def test_flag_column_read_as_text_is_understood():
    manifest = make_manifest()
    report = report_for(manifest, flagged={"AUS_train_ct1-1"}).astype({"flagged": str})
    splits = subject_grouped_split(manifest, report, 0.25, seed=0).set_index("image_id")
    assert (
        splits.loc["AUS_train_ct1-1", "split"] == "unlabeled"
        and splits.loc["AUS_train_ct1-2", "split"] in {"train", "val"}
    )


@pytest.mark.parametrize("labeled_subjects", [["ct1"], []])
def test_fewer_than_two_labeled_train_subjects_leave_no_training_but_keep_the_test_sets(labeled_subjects):
    """No train/val split is possible: nothing trains (usseg.trainability), the test sets are unchanged,
    and each labeled training image says why it is not used."""
    manifest = make_manifest()
    full = subject_grouped_split(manifest, None, 0.2, seed=0).set_index("image_id")
    unlabeled = manifest["orig_split"].eq("train") & ~manifest["subject_id"].isin(labeled_subjects)
    manifest.loc[unlabeled, "has_mask"] = False
    splits = subject_grouped_split(manifest, None, 0.2, seed=0).set_index("image_id")
    assert not splits["split"].isin(["train", "val"]).any()
    tests = full["split"].str.startswith("test_")
    assert splits.loc[tests, "split"].equals(full.loc[tests, "split"])
    kept = manifest.loc[manifest["subject_id"].isin(labeled_subjects) & manifest["orig_split"].eq("train"), "image_id"]
    assert len(kept) == 3 * len(labeled_subjects)
    assert (splits.loc[kept, "split"] == "unlabeled").all()
    assert splits.loc[kept, "note"].str.contains("at least 2 subjects").all()


def test_two_subjects_and_a_large_fraction_still_leave_one_each():
    manifest = make_manifest()
    manifest = manifest[~manifest["subject_id"].isin([f"ct{s}" for s in range(3, 9)])]
    splits = subject_grouped_split(manifest, None, 0.9, seed=0)
    assert splits.query("split == 'train'")["subject_id"].nunique() == 1
    assert splits.query("split == 'val'")["subject_id"].nunique() == 1


def test_leakage_shared_subject():
    manifest = make_manifest()
    manifest.loc[manifest["image_id"] == "AUS_test_ct9-1", "subject_id"] = "ct1"
    splits = subject_grouped_split(manifest, None, 0.25, seed=0)
    with pytest.raises(LeakageError) as err:
        check_no_leakage(splits, manifest)
    msg = str(err.value)
    assert "'ct1'" in msg and "test_aus (1 images)" in msg


def test_leakage_identical_file_in_two_splits():
    manifest = make_manifest()
    digest = manifest.set_index("image_id").loc["AUS_train_ct1-1", "sha256"]
    manifest.loc[manifest["image_id"] == "RUS_test_c1", "sha256"] = digest
    splits = subject_grouped_split(manifest, None, 0.25, seed=0)
    with pytest.raises(LeakageError) as err:
        check_no_leakage(splits, manifest)
    msg = str(err.value)
    assert "AUS/images/train/ct1-1.png" in msg and "RUS/images/test/c1.png (test_rus)" in msg


def test_unlabeled_does_not_count_as_leakage():
    manifest = make_manifest()
    # An unlabeled copy of a training image and a training subject's unlabeled frame are fine.
    digest = manifest.set_index("image_id").loc["AUS_train_ct1-1", "sha256"]
    manifest.loc[manifest["image_id"] == "RUS_test_c2", ["sha256", "subject_id"]] = [digest, "ct1"]
    splits = subject_grouped_split(manifest, None, 0.25, seed=0)
    check_no_leakage(splits, manifest)


def test_leakage_check_catches_a_hand_edited_split():
    manifest = make_manifest()
    splits = subject_grouped_split(manifest, None, 0.25, seed=0)
    val_subject = splits.query("split == 'val'")["subject_id"].iloc[0]
    row = splits.index[(splits["subject_id"] == val_subject)][0]
    splits.loc[row, "split"] = "train"
    with pytest.raises(LeakageError, match=f"'{val_subject}' is in train .* val"):
        check_no_leakage(splits, manifest)


def test_write_splits_end_to_end(tmp_path):
    make_dataset(tmp_path / "data")
    out = tmp_path / "results"
    write_manifest(
        tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv"
    )
    decode_masks(out / "manifest.csv", tmp_path / "data", dataset_cfg(), out / "labels")
    write_splits(
        out / "manifest.csv", out / "labels" / "decode_report.csv", 0.25, 42, out / "splits.csv"
    )
    splits = pd.read_csv(out / "splits.csv", keep_default_na=False)
    assert list(splits.columns) == SPLIT_COLUMNS and len(splits) == 14
    assert set(splits["split"]) == {"train", "val", "test_aus", "test_rus", "unlabeled"}
    write_splits(out / "manifest.csv", None, 0.25, 42, out / "splits_no_report.csv")
    pd.testing.assert_frame_equal(
        splits, pd.read_csv(out / "splits_no_report.csv", keep_default_na=False)
    )


def test_write_splits_refuses_to_write_a_leaking_split(tmp_path):
    manifest = make_manifest()
    manifest.loc[manifest["image_id"] == "RUS_test_c1", "subject_id"] = "ct2"
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(LeakageError, match="'ct2'"):
        write_splits(tmp_path / "manifest.csv", None, 0.25, 0, tmp_path / "splits.csv")
    assert not (tmp_path / "splits.csv").exists()


def test_numeric_looking_subjects_stay_text(tmp_path):
    manifest = make_manifest()
    manifest["subject_id"] = manifest["subject_id"].str.replace(r"\D", "", regex=True).str.zfill(3)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    write_splits(tmp_path / "manifest.csv", None, 0.25, 0, tmp_path / "splits.csv")
    splits = pd.read_csv(tmp_path / "splits.csv", dtype=str, keep_default_na=False)
    assert set(splits["subject_id"]) >= {"001", "009"}
    assert np.array_equal(splits["image_id"], sorted(manifest["image_id"]))


def test_duplicate_image_ids_are_refused():
    manifest = make_manifest()
    manifest = pd.concat([manifest, manifest.iloc[:1]])
    with pytest.raises(DataError, match="AUS_test_ct10-1|AUS_train_ct1-1"):
        subject_grouped_split(manifest, None, 0.25, seed=0)


# ----------------------------------------------------------------------------- files set aside, flat layouts, test sets


def test_an_image_file_set_aside_from_a_test_set_is_counted_and_its_lost_subject_named():
    manifest = make_manifest()
    # d1.jpg is truncated: the manifest sets the image aside (no manifest row), and its mask with it.
    manifest = manifest[manifest["image_id"] != "RUS_test_d1"]
    issues = pd.DataFrame([
        {"path": "RUS/images/test/d1.jpg", "reason": "unreadable_image", "detail": "d1.jpg could not be decoded"},
        {"path": "RUS/annotations/test/d1.png", "reason": "mask_of_quarantined_image", "detail": "belongs to d1"},
        # a set-aside image without a mask was never in a test set: not counted.
        {"path": "RUS/images/test/f1.jpg", "reason": "unreadable_image", "detail": "f1.jpg could not be decoded"},
    ])
    splits = subject_grouped_split(manifest, None, 0.25, seed=0, issues=issues, dataset=dataset_cfg(),
                                   test_sets=["test_aus", "test_rus"])
    row = splits.set_index("image_id").loc["RUS_test_d1"]
    assert (row["split"], row["subject_id"], row["excluded_from"]) == ("set_aside", "d", "test_rus")
    assert row["note"].startswith("image set aside by the manifest (unreadable_image): d1.jpg could not")
    assert "subject d has no image left in test_rus" in row["note"]
    assert [e["image_id"] for e in excluded_images(splits, "test_rus")] == ["RUS_test_d1"]
    assert subjects_left_out(splits, "test_rus") == ["d"]
    assert "RUS_test_f1" not in set(splits["image_id"])
    check_no_leakage(splits, manifest)  # a counted-only row is no stale split


def test_a_truncated_test_jpeg_is_counted_end_to_end(tmp_path):
    root = make_dataset(tmp_path / "data", nested=False)
    jpg = root / "RUS" / "images" / "test" / "d1.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-200])  # truncated: its subject d has no other image
    out = tmp_path / "results"
    write_manifest(root, dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
    write_splits(out / "manifest.csv", out / "labels" / "decode_report.csv", 0.25, 42, out / "splits.csv",
                 issues_csv=out / "issues.csv", dataset=dataset_cfg(), test_sets=["test_aus", "test_rus"])
    splits = pd.read_csv(out / "splits.csv", keep_default_na=False)
    assert excluded_images(splits, "test_rus")[0]["image_id"] == "RUS_test_d1"
    assert subjects_left_out(splits, "test_rus") == ["d"]
    # Readers of the split table see manifest images only.
    from usseg.contracts import read_split_table

    table = read_split_table(out / "manifest.csv", out / "splits.csv")
    assert "RUS_test_d1" not in set(table["image_id"]) and len(table) == len(splits) - 1


def flat_manifest(n_sim=10, n_clinic=4) -> pd.DataFrame:
    rows = []
    for mod, n in (("sim", n_sim), ("clinic", n_clinic)):
        for s in range(n):
            for f in range(2):
                stem = f"{mod[0]}{s:02d}_{f}"
                rows.append({"image_id": f"{mod}_all_{stem}", "subject_id": f"{mod[0]}{s:02d}", "modality": mod,
                             "domain": "synthetic" if mod == "sim" else "real", "orig_split": "all",
                             "image_path": f"{mod}/images/{stem}.png", "mask_path": f"{mod}/masks/{stem}.png",
                             "has_mask": True, "width": 20, "height": 16,
                             "sha256": hashlib.sha256(stem.encode()).hexdigest(), "mask_sha256": ""})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


FLAT = {
    "layout": "flat", "annotations_dir": "masks",
    "modalities": {
        "sim": {"domain": "synthetic", "image_extensions": [".png"], "subject_pattern": r"^(s\d+)_\d+$"},
        "clinic": {"domain": "real", "image_extensions": [".png"], "subject_pattern": r"^(c\d+)_\d+$"},
    },
    "target_modality": "clinic",
}


def test_a_flat_layout_draws_test_subjects_whole_and_seeded():
    manifest = flat_manifest()
    dataset = dataset_cfg(**FLAT)
    kw = dict(dataset=dataset, test_sets=["test_sim", "test_clinic"], test_fraction=0.2,
              trained_modalities=["sim"])
    splits = subject_grouped_split(manifest, None, 0.25, seed=3, **kw)
    by_subject = splits.groupby("subject_id")["split"].agg(set)
    assert all(len(s) == 1 for s in by_subject)  # every subject whole in one split
    sim_test = sorted(splits.loc[splits["split"] == "test_sim", "subject_id"].unique())
    assert len(sim_test) == 2  # ceil(0.2 x 10)
    # clinic is trained on by no experiment: all its labeled subjects are its test set.
    assert set(splits.loc[splits["subject_id"].str.startswith("c"), "split"]) == {"test_clinic"}
    assert set(splits["split"]) == {"train", "val", "test_sim", "test_clinic"}
    check_no_leakage(splits, manifest)
    again = subject_grouped_split(manifest.sample(frac=1, random_state=1), None, 0.25, seed=3, **kw)
    pd.testing.assert_frame_equal(splits, again)
    # Trained on too: clinic keeps two of its four subjects for training.
    both = subject_grouped_split(manifest, None, 0.25, seed=3, **{**kw, "trained_modalities": ["sim", "clinic"]})
    assert both.loc[both["split"] == "test_clinic", "subject_id"].nunique() == 1


def test_a_test_set_left_empty_stops_the_split_naming_test_sets():
    manifest = make_manifest()
    manifest = manifest[~((manifest["modality"] == "RUS") & (manifest["orig_split"] == "test"))]
    with pytest.raises(DataError, match=r"test_sets names test_rus.*test_sets: \[test_aus\]"):
        subject_grouped_split(manifest, None, 0.25, seed=0, test_sets=["test_aus", "test_rus"])
