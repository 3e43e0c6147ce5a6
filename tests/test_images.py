"""Pixels are read by one rule per dataset: a bit depth for images beyond 8 bits, a size limit."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datasets import dataset_cfg, make_dataset, write_mask
from usseg.dataset_root import read_dataset_root
from usseg.errors import DataError
from usseg.images import ReadingRule, load_gray, reading_rule, use_reading_rule
from usseg.manifest import write_manifest
from usseg.masks import decode_masks, read_mask


def _write16(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint16)).save(path)


def _sixteen_bit_dataset(tmp_path):
    """The tiny dataset with two AUS training frames stored in 16 bits: one reaching 4095, one only 1000."""
    root = make_dataset(tmp_path / "data", nested=False)
    folder = root / "AUS" / "images" / "train"
    bright = np.full((16, 20), 1000)
    bright[0, 0] = 4095  # a 12-bit scanner: this frame's brightest pixel uses all 12 bits
    _write16(folder / "ct1-1.png", bright)
    _write16(folder / "ct1-2.png", np.full((16, 20), 1000))  # same tissue, dimmer frame
    return root


def _manifest(root, tmp_path, **dataset):
    out = tmp_path / "results"
    write_manifest(root, dataset_cfg(**dataset), False, out / "manifest.csv", out / "issues.csv",
                   root_json=out / "dataset_root.json")
    return out


def test_one_bit_depth_for_the_whole_dataset_inferred_and_reported(tmp_path):
    root = _sixteen_bit_dataset(tmp_path)
    out = _manifest(root, tmp_path)
    record = json.loads((out / "dataset_root.json").read_text())["reading"]
    assert record["bit_depth"] == 12
    assert "4095" in record["bit_depth_rule"] and "whole dataset" in record["bit_depth_rule"]
    read_dataset_root(out / "dataset_root.json")  # what every later stage does first
    a = load_gray(root / "AUS/images/train/ct1-1.png")
    b = load_gray(root / "AUS/images/train/ct1-2.png")
    # raw 1000 is the same grey in both frames (per-frame depths gave 62 and 125).
    assert a[5, 5] == b[5, 5] == round(1000 * 255 / 4095) and a[0, 0] == 255
    assert "12-bit" in reading_rule().summary()


def test_a_declared_bit_depth_is_used_and_checked(tmp_path):
    root = _sixteen_bit_dataset(tmp_path)
    out = _manifest(root, tmp_path, bit_depth=16)
    read_dataset_root(out / "dataset_root.json")
    assert load_gray(root / "AUS/images/train/ct1-2.png")[0, 0] == round(1000 * 255 / 65535)
    with pytest.raises(DataError, match=r"dataset.bit_depth is 10.*ct1-1.png: 4095 > 1023"):
        _manifest(root, tmp_path / "again", bit_depth=10)


def test_without_an_installed_rule_wide_images_read_as_16_bit(tmp_path):
    _write16(tmp_path / "a.png", np.full((4, 5), 65535))
    assert load_gray(tmp_path / "a.png")[0, 0] == 255
    _write16(tmp_path / "b.png", np.full((4, 5), 4095))
    assert load_gray(tmp_path / "b.png")[0, 0] == 16  # never stretched per frame


def test_float_and_negative_images_are_set_aside_with_a_reason(tmp_path):
    root = make_dataset(tmp_path / "data", nested=False)
    Image.fromarray(np.full((16, 20), 0.5, np.float32), mode="F").save(root / "AUS/images/train/ct8-1.tif")
    Image.fromarray(np.full((16, 20), -3, np.int32), mode="I").save(root / "AUS/images/train/ct8-2.tif")
    out = _manifest(root, tmp_path, modalities={**dataset_cfg()["modalities"],
                                                "AUS": {**dataset_cfg()["modalities"]["AUS"],
                                                        "image_extensions": [".png", ".tif"]}})
    issues = pd.read_csv(out / "issues.csv").set_index("path")
    assert issues.loc["AUS/images/train/ct8-1.tif", "reason"] == "unsupported_pixels"
    assert "floating-point" in issues.loc["AUS/images/train/ct8-1.tif", "detail"]
    assert "negative" in issues.loc["AUS/images/train/ct8-2.tif", "detail"]


def test_very_large_images_are_read_down_sampled_with_a_warning(tmp_path, caplog):
    root = make_dataset(tmp_path / "data", nested=False)
    big = np.random.default_rng(0).integers(0, 256, (96, 128), dtype=np.uint8)
    Image.fromarray(big).save(root / "AUS/images/train/ct6-1.png")
    labels = np.zeros((96, 128), np.uint8)
    labels[10:60, 20:100] = 1
    write_mask(root / "AUS/annotations/train/ct6-1.png", labels=labels, size=(128, 96))
    with caplog.at_level(logging.WARNING, logger="usseg.manifest"):
        out = _manifest(root, tmp_path, max_image_side=64)
    assert "larger than dataset.max_image_side = 64" in caplog.text and "128x96" in caplog.text
    manifest = pd.read_csv(out / "manifest.csv").set_index("image_id")
    assert tuple(manifest.loc["AUS_train_ct6-1", ["width", "height"]]) == (64, 48)  # as read: factor 2
    assert tuple(manifest.loc["AUS_train_ct1-1", ["width", "height"]]) == (20, 16)  # small ones untouched
    read_dataset_root(out / "dataset_root.json")
    assert reading_rule().downsampled == 1
    image = load_gray(root / "AUS/images/train/ct6-1.png")
    mask = read_mask(root / "AUS/annotations/train/ct6-1.png")
    assert image.shape == mask.shape[:2] == (48, 64)
    # The mask keeps only its own colours (nearest pixel); the labels line up with the image.
    decode_masks(out / "manifest.csv", root, dataset_cfg(max_image_side=64), out / "labels")
    decoded = np.load(out / "labels" / "AUS_train_ct6-1.npy")
    assert decoded.shape == (48, 64) and set(np.unique(decoded)) == {0, 1}
    assert decoded[5:30, 10:50].mean() > 0.9
    use_reading_rule(ReadingRule())
    assert load_gray(root / "AUS/images/train/ct6-1.png").shape == (96, 128)


def test_the_size_rule_keeps_images_and_masks_the_same_size():
    rule = ReadingRule(max_side=100)
    assert rule.size(100, 40) == (100, 40)
    assert rule.size(201, 99) == (67, 33)  # factor 3, rounded up like both readers
    assert rule.factor(201, 99) == 3 and ReadingRule().factor(10**5, 10**5) == 1  # no limit by default
