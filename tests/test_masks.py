"""Mask decoding: exactly brute force (ties to the lower index), fast, and an honest report."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from datasets import PALETTE, dataset_cfg, label_map, make_dataset, write_mask
from usseg.contracts import read_decode_report
from usseg.errors import DataError
from usseg.manifest import write_manifest
from usseg.masks import (
    REPORT_COLUMNS,
    decode_mask,
    decode_mask_with_distance,
    decode_masks,
    load_mask_rgb,
)


def brute_force(rgb: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = rgb.reshape(-1, 3).astype(np.int64)
    d2 = ((flat[:, None, :] - palette.astype(np.int64)[None]) ** 2).sum(-1)
    return d2.argmin(1).reshape(rgb.shape[:2]), d2.min(1).reshape(rgb.shape[:2])


def tie_colours(palette: np.ndarray) -> np.ndarray:
    """Colours whose nearest palette distance is shared by two or more entries."""
    pal = palette.astype(np.int64)
    candidates = []
    for i in range(len(pal)):
        for j in range(i + 1, len(pal)):
            twice_mid = pal[i] + pal[j]
            if (twice_mid % 2 == 0).all():
                candidates.append(twice_mid // 2)
    rng = np.random.default_rng(1)
    candidates.extend(rng.integers(0, 256, size=(20000, 3)))
    cand = np.array(candidates)
    d2 = ((cand[:, None, :] - pal[None]) ** 2).sum(-1)
    tied = (d2 == d2.min(1, keepdims=True)).sum(1) > 1
    return np.unique(cand[tied], axis=0).astype(np.uint8)


def test_equals_brute_force_on_random_colours():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    rgb[:20] = PALETTE[rng.integers(0, len(PALETTE), size=(20, 90))]  # exact palette colours too
    labels = decode_mask(rgb, PALETTE)
    expected, _ = brute_force(rgb, PALETTE)
    assert labels.dtype == np.uint8 and labels.shape == (70, 90)
    np.testing.assert_array_equal(labels, expected)


def test_ties_go_to_the_lower_index():
    ties = tie_colours(PALETTE)
    assert len(ties) >= 5, "the test needs tie cases"
    assert (ties == [50, 0, 50]).all(1).any()  # halfway between background and liver
    rgb = np.repeat(ties[None], 3, axis=0)
    np.testing.assert_array_equal(decode_mask(rgb, PALETTE), brute_force(rgb, PALETTE)[0])
    assert decode_mask(np.array([[[50, 0, 50]]], np.uint8), PALETTE)[0, 0] == 0
    # The same colour with the palette reversed: still the lower index, now liver.
    reversed_pal = PALETTE[::-1].copy()
    assert decode_mask(np.array([[[50, 0, 50]]], np.uint8), reversed_pal)[0, 0] == len(PALETTE) - 2
    np.testing.assert_array_equal(decode_mask(rgb, reversed_pal), brute_force(rgb, reversed_pal)[0])


def test_palettes_do_not_share_cached_answers():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    other = np.array([[10, 20, 30], [200, 100, 0], [0, 0, 0]], np.uint8)
    for pal in (PALETTE, other, PALETTE, other[::-1].copy()):
        np.testing.assert_array_equal(decode_mask(rgb, pal), brute_force(rgb, pal)[0])


def test_padding_and_tint_are_background():
    rgb = np.array([[[10, 10, 10], [10, 0, 10], [0, 0, 0], [100, 0, 100]]], np.uint8)
    assert decode_mask(rgb, PALETTE).tolist() == [[0, 0, 0, 1]]


def test_distance_equals_brute_force():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    rgb[:25] = PALETTE[rng.integers(0, len(PALETTE), size=(25, 60))]  # distance 0
    rgb[:25:3] += rng.integers(0, 2, size=rgb[:25:3].shape, dtype=np.uint8)  # distance 0..3
    labels, d2 = decode_mask_with_distance(rgb, PALETTE)
    exp_labels, exp_d2 = brute_force(rgb, PALETTE)
    np.testing.assert_array_equal(labels, exp_labels)
    np.testing.assert_array_equal(d2, exp_d2)


def test_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        decode_mask(np.zeros((4, 4, 3), np.int32), PALETTE)
    with pytest.raises(ValueError, match="H, W, 3"):
        decode_mask(np.zeros((4, 4, 4), np.uint8), PALETTE)
    with pytest.raises(ValueError, match="palette"):
        decode_mask(np.zeros((4, 4, 3), np.uint8), PALETTE[:, :2])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L"])
def test_mask_file_modes_decode_like_brute_force(tmp_path, mode):
    rng = np.random.default_rng(4)
    labels = label_map("m", size=(30, 24))
    rgb = PALETTE[labels]
    # off-palette border pixels
    rgb[5:8, 5:20] = rng.integers(0, 256, size=(3, 15, 3), dtype=np.uint8)
    if mode == "L":
        rgb = np.repeat(rgb.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    path = write_mask(tmp_path / f"m_{mode}.png", mode=mode, rgb=rgb)
    loaded = load_mask_rgb(path)
    assert loaded.shape == (24, 30, 3) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, rgb)
    np.testing.assert_array_equal(decode_mask(loaded, PALETTE), brute_force(loaded, PALETTE)[0])


def test_no_pixels_by_palette_intermediate():
    rng = np.random.default_rng(5)
    rgb = PALETTE[rng.integers(0, len(PALETTE), size=(460, 450))]
    rgb[::9] = rng.integers(0, 256, size=rgb[::9].shape, dtype=np.uint8)
    decode_mask(rgb, PALETTE)  # the per-palette table is allocated once, outside the measurement
    rgb2 = rgb.copy()
    # new colours to decide
    rgb2[1::9] = rng.integers(0, 256, size=rgb2[1::9].shape, dtype=np.uint8)
    tracemalloc.start()
    decode_mask(rgb2, PALETTE)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < rgb.shape[0] * rgb.shape[1] * len(PALETTE) * 3 // 2, peak


# ----------------------------------------------------------------------------- decode_masks


@pytest.fixture
def decoded(tmp_path):
    root = make_dataset(tmp_path / "data")
    # ct1-1: an anti-aliased border (near-palette colours), nothing far off.
    rgb = PALETTE[label_map("ct1-1")]
    rgb[0, :4] = [[90, 0, 90], [10, 10, 10], [10, 0, 10], [240, 240, 250]]
    write_mask(root / "AUS/annotations/train/ct1-1.png", rgb=rgb)
    # ct2-1: 20 of 320 pixels mid-grey, far from every colour -> flagged.
    rgb = PALETTE[label_map("ct2-1")]
    rgb[:2, :10] = [128, 128, 128]
    write_mask(root / "AUS/annotations/train/ct2-1.png", rgb=rgb)
    out = tmp_path / "results"
    write_manifest(
        tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv"
    )
    return root, out


def test_decode_masks_writes_labels_and_report(decoded):
    root, out = decoded
    report = decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
    assert list(report.columns) == REPORT_COLUMNS
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    masked = manifest[manifest["has_mask"]]
    assert sorted(report["image_id"]) == sorted(masked["image_id"]) == list(report["image_id"])
    for row in masked.itertuples():
        arr = np.load(out / "labels" / f"{row.image_id}.npy")
        assert arr.dtype == np.uint8 and arr.shape == (row.height, row.width)
        np.testing.assert_array_equal(
            arr, brute_force(load_mask_rgb(root / row.mask_path), PALETTE)[0]
        )
    assert not (out / "labels" / "RUS_test_c2.npy").exists()  # no mask, no label file

    on_disk = read_decode_report(out / "labels" / "decode_report.csv")
    pd.testing.assert_frame_equal(on_disk, report, check_dtype=False)

    r = report.set_index("image_id")
    border = r.loc["AUS_train_ct1-1"]
    assert border.off_palette_fraction == pytest.approx(4 / 320)
    assert border.far_fraction == 0 and not border.flagged and border.flag_reason == ""
    assert border.max_distance == pytest.approx(np.sqrt(15**2 + 15**2 + 5**2))
    assert np.load(out / "labels" / "AUS_train_ct1-1.npy")[0, :4].tolist() == [1, 0, 0, 2]
    flagged = r.loc["AUS_train_ct2-1"]
    assert flagged.flagged and flagged.far_fraction == pytest.approx(20 / 320)
    assert "AUS/annotations/train/ct2-1.png" in flagged.flag_reason
    clean = r.loc["AUS_test_ct4-1"]
    assert clean.off_palette_fraction == 0 and clean.max_distance == 0
    assert clean.classes_present == "background;liver;kidney"
    assert (out / "labels" / "AUS_train_ct2-1.npy").exists()  # flagged masks are still written


def test_decode_masks_strict_names_the_flagged_file(decoded):
    root, out = decoded
    with pytest.raises(DataError, match="AUS/annotations/train/ct2-1.png"):
        decode_masks(
            out / "manifest.csv", root.parents[1], dataset_cfg(), out / "labels", strict=True
        )
    assert (out / "labels" / "decode_report.csv").exists()


def test_decode_masks_detects_a_mask_changed_after_the_manifest(decoded):
    root, out = decoded
    write_mask(root / "AUS/annotations/test/ct4-1.png", size=(8, 8))
    with pytest.raises(DataError, match="(?i)ct4-1.png.*re-run the manifest"):
        decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")


def test_decode_masks_names_a_mask_gone_after_the_manifest(decoded):
    root, out = decoded
    (root / "AUS/annotations/test/ct4-1.png").unlink()
    with pytest.raises(DataError, match="(?i)cannot read mask .*ct4-1.png of AUS_test_ct4-1.*re-run the manifest"):
        decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
