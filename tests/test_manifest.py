"""Manifest: dataset-root search, the manifest contract, and one test per kind of broken input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datasets import (
    AUS_TEST,
    AUS_TRAIN,
    RUS_TEST,
    RUS_TEST_MASKS,
    RUS_TRAIN,
    all_entries,
    dataset_cfg,
    make_dataset,
    write_image,
    write_mask,
)
from usseg.contracts import ISSUE_COLUMNS, MANIFEST_COLUMNS, read_manifest
from usseg.errors import DataError
from usseg.manifest import build_manifest, find_dataset_root, write_manifest

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = len(AUS_TRAIN) + len(AUS_TEST) + len(RUS_TRAIN) + len(RUS_TEST)
N_MASKS = len(AUS_TRAIN) + len(AUS_TEST) + len(RUS_TEST_MASKS)


@pytest.fixture
def root(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


def build(root):
    return build_manifest(root, dataset_cfg())


def reason_of(issues: pd.DataFrame, rel: str) -> str:
    hits = issues[issues["path"] == rel]
    assert len(hits) == 1, (
        f"expected one issue row for {rel}, got {len(hits)}:\n{issues.to_string()}"
    )
    return hits["reason"].iloc[0]


def assert_accounted(root: Path, manifest: pd.DataFrame, issues: pd.DataFrame) -> None:
    """Each file below root is exactly one of: a manifest image, a manifest mask, an issue row."""
    listed = (
        list(manifest["image_path"])
        + [m for m in manifest["mask_path"] if m]
        + list(issues["path"])
    )
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == all_entries(root)


# ----------------------------------------------------------------------------- root search


def test_nested_root_found(tmp_path):
    root = make_dataset(tmp_path / "dl", nested=True)
    assert find_dataset_root(tmp_path / "dl", dataset_cfg()["modalities"]) == root
    assert root == tmp_path / "dl" / "abdominal_US" / "abdominal_US"


def test_flat_root_is_data_root_itself(tmp_path):
    root = make_dataset(tmp_path / "flat", nested=False)
    assert find_dataset_root(root, ["AUS", "RUS"]) == root
    manifest, issues = build(root)
    assert len(manifest) == N_IMAGES and issues.empty


def test_root_search_prefers_shallowest_then_sorted(tmp_path):
    for rel in ("b/AUS", "b/RUS", "a/AUS", "a/RUS", "0/deep/AUS", "0/deep/RUS", "c/AUS"):
        (tmp_path / rel).mkdir(parents=True)
    assert find_dataset_root(tmp_path, ["AUS", "RUS"]) == tmp_path / "a"


def test_root_search_skips_macos_zip_folder(tmp_path):
    for rel in ("__MACOSX/AUS", "__MACOSX/RUS", "x/y/AUS", "x/y/RUS"):
        (tmp_path / rel).mkdir(parents=True)
    assert find_dataset_root(tmp_path, ["AUS", "RUS"]) == tmp_path / "x" / "y"


def test_missing_data_root_names_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        build(missing)


def test_no_modality_folders_says_what_was_found(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError) as err:
        find_dataset_root(tmp_path, ["AUS", "RUS"])
    msg = str(err.value)
    assert str(tmp_path) in msg and "images/" in msg and "masks/" in msg and "AUS/, RUS/" in msg


def test_one_modality_folder_only_names_the_missing_one(tmp_path):
    (tmp_path / "ds" / "AUS").mkdir(parents=True)
    with pytest.raises(DataError, match=r"has AUS/ but not RUS/"):
        find_dataset_root(tmp_path, ["AUS", "RUS"])


# ----------------------------------------------------------------------------- contract


def test_manifest_contract(root):
    manifest, issues = build(root.parents[1])
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(issues.columns) == ISSUE_COLUMNS and issues.empty
    assert len(manifest) == N_IMAGES
    assert (
        list(manifest["image_id"]) == sorted(manifest["image_id"])
        and manifest["image_id"].is_unique
    )
    assert manifest["has_mask"].sum() == N_MASKS
    row = manifest.set_index("image_id").loc["RUS_test_c1"]
    assert (row.subject_id, row.modality, row.domain, row.orig_split) == (
        "c",
        "RUS",
        "real",
        "test",
    )
    assert (
        row.image_path == "RUS/images/test/c1.jpg"
        and row.mask_path == "RUS/annotations/test/c1.png"
    )
    assert (row.width, row.height) == (20, 16)
    assert row.sha256 == hashlib.sha256((root / row.image_path).read_bytes()).hexdigest()
    assert row.mask_sha256 == hashlib.sha256((root / row.mask_path).read_bytes()).hexdigest()
    unmasked = manifest.set_index("image_id").loc["RUS_train_a1"]
    assert not unmasked.has_mask and unmasked.mask_path == "" and unmasked.mask_sha256 == ""
    assert_accounted(root, manifest, issues)


def test_image_size_is_read_from_the_file(tmp_path):
    root = make_dataset(tmp_path, nested=False)
    write_image(root / "AUS/images/train/ct9-1.png", size=(33, 21))
    manifest, _ = build(root)
    row = manifest.set_index("image_id").loc["AUS_train_ct9-1"]
    assert (row.width, row.height) == (33, 21) and not row.has_mask


@pytest.mark.parametrize(
    "modality,stem,subject",
    [
        ("AUS", "ct14-1", "ct14"),
        ("AUS", "ct3-120", "ct3"),
        ("RUS", "a12", "a"),
        ("RUS", "abc7", "abc"),
    ],
)
def test_subject_parsing(tmp_path, modality, stem, subject):
    root = make_dataset(tmp_path, nested=False)
    ext = ".png" if modality == "AUS" else ".jpg"
    write_image(root / modality / "images" / "train" / f"{stem}{ext}")
    manifest, issues = build(root)
    assert manifest.set_index("image_id").loc[f"{modality}_train_{stem}", "subject_id"] == subject
    assert issues.empty


def test_extensions_match_case_insensitively(root):
    write_image(root / "RUS/images/train/e1.JPG")
    manifest, issues = build(root)
    assert "RUS_train_e1" in set(manifest["image_id"]) and issues.empty


def test_read_manifest_round_trip(root, tmp_path):
    out = tmp_path / "out"
    write_manifest(root, dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    back = read_manifest(out / "manifest.csv")
    built, _ = build(root)
    pd.testing.assert_frame_equal(back, built)
    assert back["has_mask"].dtype == bool and (back.loc[~back["has_mask"], "mask_path"] == "").all()


# ----------------------------------------------------------------------------- broken inputs, one each


def test_zero_byte_image(root):
    (root / "AUS/images/train/ct1-3.png").write_bytes(b"")
    manifest, issues = build(root)
    assert reason_of(issues, "AUS/images/train/ct1-3.png") == "empty_file"
    assert "AUS_train_ct1-3" not in set(manifest["image_id"])
    assert_accounted(root, manifest, issues)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_image(root, ext):
    good = write_image(root / f"RUS/images/train/g1{ext}")
    data = good.read_bytes()
    good.write_bytes(data[: len(data) * 2 // 3])
    manifest, issues = build(root)
    assert reason_of(issues, f"RUS/images/train/g1{ext}") == "unreadable_image"
    assert "RUS_train_g1" not in set(manifest["image_id"])
    assert "truncated" in issues["detail"].iloc[0]


@pytest.mark.parametrize("name", [".DS_Store", "Thumbs.db", "._a1.jpg"])
def test_system_files(root, name):
    for folder in ("", "RUS/images/train/", "AUS/annotations/test/"):
        (root / f"{folder}{name}").write_bytes(b"\x00\x01junk")
    manifest, issues = build(root)
    assert set(issues["reason"]) == {"system_file"} and len(issues) == 3
    assert len(manifest) == N_IMAGES
    assert_accounted(root, manifest, issues)


def test_text_renamed_png(root):
    (root / "AUS/images/train/ct1-3.png").write_text("this is not an image\n")
    _, issues = build(root)
    assert reason_of(issues, "AUS/images/train/ct1-3.png") == "not_an_image"
    assert "ct1-3.png" in issues["detail"].iloc[0]


def test_unreadable_mask_keeps_image(root):
    (root / "AUS/annotations/train/ct1-1.png").write_text("garbage")
    mask = root / "AUS/annotations/train/ct2-1.png"
    mask.write_bytes(mask.read_bytes()[:60])  # truncated inside the pixel data
    manifest, issues = build(root)
    assert reason_of(issues, "AUS/annotations/train/ct1-1.png") == "unreadable_mask"
    assert reason_of(issues, "AUS/annotations/train/ct2-1.png") == "unreadable_mask"
    rows = manifest.set_index("image_id")
    for image_id in ("AUS_train_ct1-1", "AUS_train_ct2-1"):
        assert not rows.loc[image_id, "has_mask"] and rows.loc[image_id, "mask_path"] == ""
    assert len(manifest) == N_IMAGES
    assert_accounted(root, manifest, issues)


def test_empty_mask(root):
    (root / "AUS/annotations/train/ct1-1.png").write_bytes(b"")
    manifest, issues = build(root)
    assert reason_of(issues, "AUS/annotations/train/ct1-1.png") == "empty_file"
    assert not manifest.set_index("image_id").loc["AUS_train_ct1-1", "has_mask"]


def test_mask_size_mismatch(root):
    write_mask(root / "AUS/annotations/train/ct1-1.png", size=(21, 16))
    manifest, issues = build(root)
    assert reason_of(issues, "AUS/annotations/train/ct1-1.png") == "mask_size_mismatch"
    assert "21x16" in issues["detail"].iloc[0] and "20x16" in issues["detail"].iloc[0]
    assert not manifest.set_index("image_id").loc["AUS_train_ct1-1", "has_mask"]
    assert_accounted(root, manifest, issues)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "RGB"])
def test_mask_modes_accepted(root, mode):
    path = write_mask(root / "RUS/annotations/test/c2.png", mode=mode)
    with Image.open(path) as im:
        assert im.mode == mode
    manifest, issues = build(root)
    assert issues.empty
    assert (
        manifest.set_index("image_id").loc["RUS_test_c2", "mask_path"]
        == "RUS/annotations/test/c2.png"
    )


def test_unsupported_mask_mode(root):
    (root / "AUS/annotations/train/ct1-1.png").unlink()
    # CMYK (here a TIFF): neither a colour code nor class indices
    Image.new("CMYK", (20, 16)).save(root / "AUS/annotations/train/ct1-1.tif")
    _, issues = build_manifest(root, dataset_cfg(mask_extensions=[".png", ".tif"]))
    assert reason_of(issues, "AUS/annotations/train/ct1-1.tif") == "unreadable_mask"
    assert "mode" in issues["detail"].iloc[0]


def test_16_bit_masks_are_accepted(root):
    # 16-bit grey may hold class indices (dataset.mask_encoding)
    path = root / "AUS/annotations/train/ct1-1.png"
    Image.fromarray(np.zeros((16, 20), dtype=np.uint16)).save(path)
    manifest, issues = build(root)
    assert manifest.set_index("image_id").loc["AUS_train_ct1-1", "has_mask"]
    assert not (issues["path"] == "AUS/annotations/train/ct1-1.png").any()


def test_sizes_follow_the_exif_orientation(root):
    # A JPEG stored 20 wide and 16 high with "rotate 90" in EXIF is displayed 16x20.
    path = root / "RUS/images/test/c1.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("L", (16, 20)).save(path, exif=exif)  # displayed 20 wide, 16 high: fits its mask
    manifest, issues = build(root)
    row = manifest.set_index("image_id").loc["RUS_test_c1"]
    assert (row["width"], row["height"]) == (20, 16) and row["has_mask"]


def test_orphan_annotation(root):
    write_mask(root / "RUS/annotations/test/z9.png")
    write_mask(root / "RUS/annotations/train/a1x.png")
    manifest, issues = build(root)
    assert reason_of(issues, "RUS/annotations/test/z9.png") == "orphan_annotation"
    assert reason_of(issues, "RUS/annotations/train/a1x.png") == "orphan_annotation"
    assert_accounted(root, manifest, issues)


def test_mask_in_other_split_is_orphan(root):
    # a1 is a train image; a mask of the same name in the test folder does not belong to it.
    write_mask(root / "RUS/annotations/test/a1.png")
    manifest, issues = build(root)
    assert reason_of(issues, "RUS/annotations/test/a1.png") == "orphan_annotation"
    assert not manifest.set_index("image_id").loc["RUS_train_a1", "has_mask"]


def test_name_matching_no_pattern(root):
    write_image(root / "AUS/images/train/liver_01.png")
    write_mask(root / "AUS/annotations/train/liver_01.png")
    write_image(root / "RUS/images/test/A7.jpg")
    manifest, issues = build(root)
    assert reason_of(issues, "AUS/images/train/liver_01.png") == "name_mismatch"
    assert reason_of(issues, "RUS/images/test/A7.jpg") == "name_mismatch"
    assert reason_of(issues, "AUS/annotations/train/liver_01.png") == "mask_of_quarantined_image"
    assert len(manifest) == N_IMAGES
    assert_accounted(root, manifest, issues)


def test_duplicate_stems_are_both_set_aside(root):
    write_image(root / "RUS/images/test/c1.png")  # beside c1.jpg, which has a mask
    manifest, issues = build(root)
    assert reason_of(issues, "RUS/images/test/c1.jpg") == "duplicate_stem"
    assert reason_of(issues, "RUS/images/test/c1.png") == "duplicate_stem"
    assert reason_of(issues, "RUS/annotations/test/c1.png") == "mask_of_quarantined_image"
    assert "c1.jpg" in issues["detail"].iloc[0] and "c1.png" in issues["detail"].iloc[0]
    assert "RUS_test_c1" not in set(manifest["image_id"])
    assert_accounted(root, manifest, issues)


def test_duplicate_mask_stems(root):
    write_mask(root / "AUS/annotations/train/ct1-1.PNG")
    manifest, issues = build(root)
    assert set(issues["reason"]) == {"duplicate_stem"} and len(issues) == 2
    assert not manifest.set_index("image_id").loc["AUS_train_ct1-1", "has_mask"]


def test_unexpected_locations_and_extensions(root):
    write_image(root / "RUS/images/val/a5.jpg")
    write_image(root / "XUS/images/train/x1.png")
    (root / "README.txt").write_text("hello")
    write_image(root / "AUS/images/ct7-1.png")
    (root / "RUS/images/train/notes.txt").write_text("x")
    write_image(root / "AUS/annotations/train/ct1-1.jpg")
    manifest, issues = build(root)
    for rel in (
        "RUS/images/val/a5.jpg",
        "XUS/images/train/x1.png",
        "README.txt",
        "AUS/images/ct7-1.png",
    ):
        assert reason_of(issues, rel) == "unexpected_location"
    assert reason_of(issues, "RUS/images/train/notes.txt") == "unexpected_extension"
    assert reason_of(issues, "AUS/annotations/train/ct1-1.jpg") == "unexpected_extension"
    assert manifest.set_index("image_id").loc["AUS_train_ct1-1", "has_mask"]
    assert_accounted(root, manifest, issues)


def test_symlinks(root, tmp_path):
    outside = write_image(tmp_path / "elsewhere" / "a9.jpg")
    os.symlink(outside, root / "RUS/images/train/a9.jpg")
    os.symlink(tmp_path / "elsewhere", root / "RUS/images/ext")
    # A link inside the dataset is an ordinary image.
    os.symlink(root / "RUS/images/train/a1.jpg", root / "RUS/images/train/a8.jpg")
    os.symlink(root / "AUS/images", root / "AUS/images_link")
    os.symlink(tmp_path / "missing.jpg", root / "RUS/images/train/a7.jpg")
    manifest, issues = build(root)
    assert reason_of(issues, "RUS/images/train/a9.jpg") == "symlink_outside_root"
    assert reason_of(issues, "RUS/images/ext") == "symlink_outside_root"
    assert reason_of(issues, "AUS/images_link") == "symlinked_directory"
    assert reason_of(issues, "RUS/images/train/a7.jpg") == "broken_symlink"
    rows = manifest.set_index("image_id")
    assert "RUS_train_a9" not in rows.index
    assert rows.loc["RUS_train_a8", "sha256"] == rows.loc["RUS_train_a1", "sha256"]
    assert_accounted(root, manifest, issues)


def test_empty_modality_raises_and_issues_are_still_written(root, tmp_path):
    for f in (root / "RUS/images").rglob("*.jpg"):
        f.unlink()
    (root / "RUS/images/test/d2.jpg").write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        write_manifest(root, dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    msg = str(err.value)
    assert "RUS" in msg and str(root / "RUS" / "images") in msg and "dataset.modalities" in msg
    issues = pd.read_csv(out / "issues.csv")
    assert "RUS/images/test/d2.jpg" in set(issues["path"])


def test_modality_without_images_folder(root):
    import shutil

    shutil.rmtree(root / "AUS/images")
    with pytest.raises(DataError, match="AUS has no usable images.*does not exist"):
        build(root)


def test_strict_raises_after_writing(root, tmp_path):
    (root / "AUS/images/train/ct1-3.png").write_bytes(b"")
    write_mask(root / "RUS/annotations/test/z9.png")
    out = tmp_path / "out"
    write_manifest(root, dataset_cfg(), False, out / "m.csv", out / "i.csv")
    assert len(pd.read_csv(out / "i.csv")) == 2
    (out / "i.csv").unlink()
    with pytest.raises(DataError) as err:
        write_manifest(root, dataset_cfg(), True, out / "m.csv", out / "i.csv")
    msg = str(err.value)
    assert (
        "AUS/images/train/ct1-3.png: empty_file" in msg
        and "RUS/annotations/test/z9.png: orphan_annotation" in msg
    )
    assert str(out / "i.csv") in msg and (out / "i.csv").exists()


def test_a_failed_manifest_points_to_issues_that_outlive_the_job(root, tmp_path):
    """Snakemake deletes a failed job's outputs (manifest_issues.csv): strict mode names the copy beside the log."""
    (root / "AUS/images/train/ct1-3.png").write_bytes(b"")
    out, kept = tmp_path / "out", tmp_path / "logs" / "manifest_issues.csv"
    with pytest.raises(DataError) as err:
        write_manifest(root, dataset_cfg(), True, out / "m.csv", out / "i.csv", kept_issues_csv=kept)
    (out / "i.csv").unlink()  # as Snakemake does
    assert f"details in {kept}" in str(err.value)
    assert "AUS/images/train/ct1-3.png" in set(pd.read_csv(kept)["path"])


def test_strict_passes_on_clean_data(root, tmp_path):
    write_manifest(root, dataset_cfg(), True, tmp_path / "m.csv", tmp_path / "i.csv")
    assert len(read_manifest(tmp_path / "m.csv")) == N_IMAGES


def test_everything_at_once_is_accounted_for(root, tmp_path):
    (root / "AUS/images/train/ct1-3.png").write_bytes(b"")
    (root / ".DS_Store").write_bytes(b"x")
    (root / "RUS/images/train/bad1.jpg").write_text("no")
    write_mask(root / "RUS/annotations/test/z9.png")
    write_mask(root / "AUS/annotations/test/ct4-1.png", size=(5, 5))
    write_image(root / "RUS/images/test/c2.png")
    write_image(root / "misc/deep/er/x.png")
    os.symlink(write_image(tmp_path / "out.png"), root / "AUS/images/test/ct4-3.png")
    manifest, issues = build(root)
    assert len(issues) == 9
    assert_accounted(root, manifest, issues)


def test_fifo_is_not_read(root):
    os.mkfifo(root / "RUS/images/train/f1.jpg")
    manifest, issues = build(root)
    assert reason_of(issues, "RUS/images/train/f1.jpg") == "not_a_regular_file"
    assert_accounted(root, manifest, issues)


def test_snakemake_timestamp_is_recorded_as_a_workflow_file(root):
    (root / ".snakemake_timestamp").write_text("")
    manifest, issues = build_manifest(root, dataset_cfg())
    row = issues[issues["path"] == ".snakemake_timestamp"]
    assert row["reason"].tolist() == ["workflow_file"]
    # Not data: strict mode does not stop for it.
    write_manifest(root, dataset_cfg(), True, root.parent / "m.csv", root.parent / "i.csv")
