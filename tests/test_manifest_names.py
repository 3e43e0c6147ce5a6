"""Every name the file system allows is listed, read and reported: names that are not UTF-8 are shown
escaped and read back; names too long for a derived file get a short stable id."""

from __future__ import annotations

import os

import numpy as np
import pytest

from datasets import dataset_cfg, label_map, make_dataset, write_image, write_mask
from usseg.dataset_root import dataset_file, shown_path
from usseg.manifest import MAX_IMAGE_ID_BYTES, build_manifest, image_id_of, write_manifest
from usseg.masks import decode_masks
from usseg.provenance import describe_path

# Latin-1 bytes from an old archive: not UTF-8.
LATIN1_STEM = b"caf\xe9-1"


def _cfg():
    cfg = dataset_cfg()
    cfg["modalities"]["AUS"]["subject_pattern"] = r"^(.+?)-\d+$"
    return cfg


def _write_bytes_name(folder, file_name: bytes, writer, **kw):
    path = os.fsdecode(os.path.join(os.fsencode(folder), file_name))
    try:
        writer(path, **kw)
    except (OSError, UnicodeError):
        pytest.skip("this file system does not accept a non-UTF-8 file name")
    return path


@pytest.fixture
def root(tmp_path):
    root = make_dataset(tmp_path / "data")
    _write_bytes_name(root / "AUS" / "images" / "train", LATIN1_STEM + b".png", write_image, name="latin1")
    _write_bytes_name(root / "AUS" / "annotations" / "train", LATIN1_STEM + b".png", write_mask,
                      labels=label_map("latin1"))
    # A name no subject pattern parses stays a named issue, shown escaped.
    _write_bytes_name(root / "RUS" / "images" / "test", b"\xff.jpg", write_image, name="nameless")
    return root


def test_a_name_that_is_not_utf8_is_listed_escaped_and_read(root, tmp_path):
    manifest, issues = build_manifest(root, _cfg())
    row = manifest[manifest["image_path"] == "AUS/images/train/caf\\xe9-1.png"].iloc[0]
    assert row["image_id"] == "AUS_train_caf\\xe9-1" and row["subject_id"] == "caf\\xe9"
    assert row["has_mask"] and row["mask_path"] == "AUS/annotations/train/caf\\xe9-1.png"
    # The text names the file: it is found and read again from it.
    assert dataset_file(root, row["image_path"]).is_file()
    assert issues[issues["path"] == "RUS/images/test/\\xff.jpg"]["reason"].tolist() == ["name_mismatch"]
    # Every table is plain UTF-8; the label cache holds the file's labels.
    write_manifest(root, _cfg(), False, tmp_path / "m.csv", tmp_path / "i.csv")
    assert "caf\\xe9-1.png" in (tmp_path / "m.csv").read_text(encoding="utf-8")
    assert "\\xff.jpg" in (tmp_path / "i.csv").read_text(encoding="utf-8")
    report = decode_masks(tmp_path / "m.csv", root, _cfg(), tmp_path / "labels")
    assert "AUS_train_caf\\xe9-1" in set(report["image_id"])
    assert np.load(tmp_path / "labels" / "AUS_train_caf\\xe9-1.npy").shape == (16, 20)


def test_a_folder_of_files_with_names_that_are_not_utf8_can_be_described(root):
    # The manifest rule's provenance hashes data_root itself (it once stopped here).
    assert describe_path(root)["files"] > 0


def test_a_literal_backslash_name_is_itself_not_an_escape(tmp_path):
    (tmp_path / "a\\xe9.png").write_bytes(b"x")
    assert dataset_file(tmp_path, "a\\xe9.png") == tmp_path / "a\\xe9.png"
    assert shown_path("a\\xe9.png") == "a\\xe9.png"


def test_a_name_too_long_for_derived_files_gets_a_short_stable_id(tmp_path):
    root = make_dataset(tmp_path / "data")
    stem = "ct7-" + "9" * 240  # 244 characters: legal, but {image_id}.npy would not be
    write_image(root / "AUS" / "images" / "train" / f"{stem}.png", name="long")
    write_mask(root / "AUS" / "annotations" / "train" / f"{stem}.png")
    manifest, _ = build_manifest(root, dataset_cfg())
    row = manifest[manifest["subject_id"] == "ct7"].iloc[0]
    image_id = row["image_id"]
    assert len(image_id.encode()) <= MAX_IMAGE_ID_BYTES and image_id.startswith("AUS_train_ct7-999")
    assert image_id == image_id_of("AUS", "train", stem)  # stable
    assert image_id != image_id_of("AUS", "train", stem[:-1] + "8")  # distinct names, distinct ids
    assert row["image_path"].endswith(f"{stem}.png")
    manifest_csv = tmp_path / "manifest.csv"
    manifest.to_csv(manifest_csv, index=False)
    decode_masks(manifest_csv, root, dataset_cfg(), tmp_path / "labels")
    assert (tmp_path / "labels" / f"{image_id}.npy").is_file()


def test_short_ids_are_left_alone():
    assert image_id_of("AUS", "train", "ct1-1") == "AUS_train_ct1-1"
    assert image_id_of("clinic", "", "p01_3") == "clinic_p01_3"
