"""Pipeline sanity checks: the correct pipeline passes, a planted bug fails.

The dataset here is made for the checks: one "liver" disc per 32x32 frame at
a random place, marked in the image by a bright dot at its centre only. The
image says where the organ is, an image-blind guess (the prior map) does
poorly, and, unlike a visible disc, the dot gives a network trained on
shuffled labels no region to segment by its own bias (a network trained on
shuffled labels of visible discs learns to segment "the salient blob"). Training runs the real
`train_experiment` for a few epochs on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import Frame, colour, prepared, write_frames
from test_train import tiny_config
from usseg.checks import sanity
from usseg.experiment import Experiment
from usseg.training import batches

torch.set_num_threads(1)

LIVER = 1
SANITY = {
    "overfit_images": 4,
    "overfit_epochs": 60,
    "overfit_min_dice": 0.8,
    "shuffled_epochs": 15,
    "shuffled_max_dice_above_chance": 0.2,
    "seed": 0,
    "round_trip_border_px": 1,
    "round_trip_max_mismatch": 0.001,
}


def _frame(rng, size=32):
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.integers(7, size - 7, 2)
    lab = np.zeros((size, size), np.uint8)
    lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = LIVER
    img = np.full((size, size), 0.2)
    img[cy - 1:cy + 2, cx - 1:cx + 2] = 0.9
    img = img + rng.normal(0, 0.03, (size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), lab


def make_blob_dataset(tmp_path: Path, frames: int = 3, narrow: int = 0) -> dict:
    """AUS train (4 subjects) and val (2 subjects) frames with masks (colour PNGs) and cached labels;
    the first `narrow` training frames are 32x24 (height x width) instead of 32x32."""
    rng = np.random.default_rng(1)
    drawn = []
    for split, subjects in (("train", ["ct1", "ct2", "ct3", "ct4"]), ("val", ["ct5", "ct6"])):
        for s in subjects:
            for k in range(frames):
                img, lab = _frame(rng)
                if split == "train" and len(drawn) < narrow:
                    img, lab = img[:, 4:28], lab[:, 4:28]
                drawn.append(Frame("AUS", "train", s, k, img, colour(lab), split=split))
    return write_frames(tmp_path, drawn).paths()


@pytest.fixture
def blobs(tmp_path):
    cfg = tiny_config(
        classes=["liver"], image_size=[32, 32], batch_size=4, scheduler={"name": "none"},
        augmentation={"flip_prob": 0.5, "noise_prob": 0.0, "noise_std": 0.0, "contrast_prob": 0.0,
                      "contrast_gamma": [0.7, 1.5]},
    )
    cfg["experiments"] = {"liver_unet": {"classes": ["liver"]}}
    paths = make_blob_dataset(tmp_path)
    return cfg, Experiment.from_config(cfg, "liver_unet"), paths


def _args(cfg, exp, paths, work):
    return (exp, prepared(cfg, paths), SANITY, work)


# ----------------------------------------------------------------------------- overfit a handful


def test_overfit_passes_on_the_correct_pipeline(blobs, tmp_path):
    cfg, exp, paths = blobs
    result = sanity.overfit_handful(*_args(cfg, exp, paths, tmp_path / "work"))
    assert result["status"] == sanity.PASS, result["message"]
    assert result["images"] == 4 and result["subjects"] == 4  # one image from each training subject
    assert result["dice_mean"] >= SANITY["overfit_min_dice"]


def test_overfit_fails_when_training_labels_are_shifted_by_one_class(blobs, tmp_path, monkeypatch):
    cfg, exp, paths = blobs
    original = batches.training_set

    def shifted(arrays, records, lut, cached=()):  # the planted bug: class k read as k + 1
        out = original(arrays, records, lut, cached)
        out.labels = (out.labels + 1) % (int(lut.max()) + 1)
        return out

    monkeypatch.setattr(batches, "training_set", shifted)
    result = sanity.overfit_handful(*_args(cfg, exp, paths, tmp_path / "work"))
    assert result["status"] == sanity.FAIL
    assert result["dice_mean"] < 0.3
    assert "cannot even memorise" in result["message"]


def test_overfit_fails_when_augmentation_moves_the_image_but_not_the_mask(blobs, tmp_path, monkeypatch):
    cfg, exp, paths = blobs
    # The planted bug: a flip applied to the image only.
    original = batches.augment_batch

    def flip_image_only(x, y, fov, aug, generator):
        x, y, fov = original(x, y, fov, aug, generator)
        return x.flip(-1), y, fov

    monkeypatch.setattr(batches, "augment_batch", flip_image_only)
    result = sanity.overfit_handful(*_args(cfg, exp, paths, tmp_path / "work"))
    assert result["status"] == sanity.FAIL, result["message"]


def test_pooled_dice_counts_pixels_not_images():
    refs = np.zeros((2, 4, 4), np.uint8)
    refs[0, :2] = 1  # 8 pixels of class 1 in image 0
    refs[1, 0, 0] = 1  # a one-pixel sliver in image 1
    preds = refs.copy()
    preds[1, 0, 0] = 0  # the sliver missed: per image Dice 1 and 0, pooled 16/17
    mean, per_class = sanity.pooled_dice(preds, refs, 3)
    assert per_class[0] == pytest.approx(16 / 17) and np.isnan(per_class[1]) and mean == per_class[0]


def test_pick_handful_spreads_over_subjects_and_is_reproducible():
    recs = [{"image_id": f"{s}-{k}", "subject_id": s} for s in "abc" for k in range(3)]
    picked = sanity.pick_handful(recs, 3, seed=0)
    assert sorted(r["subject_id"] for r in picked) == ["a", "b", "c"]
    assert picked == sanity.pick_handful(recs, 3, seed=0)
    assert len(sanity.pick_handful(recs, 20, seed=0)) == 9


# ----------------------------------------------------------------------------- shuffled-label control


def test_shuffled_pairs_is_a_derangement_across_subjects():
    recs = [{"image_id": f"{s}-{k}", "subject_id": s} for s in "abcd" for k in range(3)]
    pairs = sanity.shuffled_pairs(recs, seed=3)
    assert sorted(pairs) == sorted(pairs.values()) == sorted(r["image_id"] for r in recs)
    assert all(a.split("-")[0] != b.split("-")[0] for a, b in pairs.items())


def test_prior_masks_pick_the_region_that_maximises_training_dice():
    maps = np.zeros((4, 6, 6), np.uint8)
    maps[0, 0:2, 0:2] = 1  # the organ wanders over the top-left 3x3 corner
    maps[1, 1:3, 1:3] = 1
    maps[2, 0:2, 1:3] = 1
    maps[3, 1:3, 0:2] = 1
    prior = sanity.prior_masks(maps, 3)
    assert prior[0].sum() >= 4 and not prior[0][3:].any() and not prior[0][:, 3:].any()
    assert not prior[1].any()  # class 2 never occurs
    chance, per_class = sanity.chance_dice(prior, maps)
    assert 0.5 < chance < 1 and np.isnan(per_class[1])
    # No image-blind region does better on the training maps than the chosen one.
    refs = maps == 1
    for t in sanity.PRIOR_THRESHOLDS:
        other = refs.mean(axis=0) >= t
        assert np.nanmean(sanity._dice_of_mask(other, refs)) <= np.nanmean(sanity._dice_of_mask(prior[0], refs)) + 1e-12


def test_shuffled_control_passes_on_the_correct_pipeline(blobs, tmp_path):
    cfg, exp, paths = blobs
    result = sanity.shuffled_label_control(*_args(cfg, exp, paths, tmp_path / "work"))
    assert result["status"] == sanity.PASS, result["message"]
    assert result["same_subject_pairs"] == 0
    assert result["val_images"] == 6 and result["val_subjects"] == 2


def test_shuffled_control_fails_when_the_image_carries_its_label(blobs, tmp_path, monkeypatch):
    cfg, exp, paths = blobs

    original = batches.training_set

    def leaky(arrays, records, lut, cached=()):  # the planted bug: the input is the label map
        out = original(arrays, records, lut, cached)
        out.images = out.labels.clone()
        return out

    monkeypatch.setattr(batches, "training_set", leaky)
    result = sanity.shuffled_label_control(*_args(cfg, exp, paths, tmp_path / "work"))
    assert result["status"] == sanity.FAIL, result["message"]
    assert result["dice_above_chance"] > SANITY["shuffled_max_dice_above_chance"]


def test_both_checks_accept_images_of_different_sizes(blobs, tmp_path):
    # Two 32x24 frames among 32x32 ones (issue 25: the shuffled-label check stopped with "a bug in
    # usseg"): the image size is applied to each image before anything is stacked or swapped.
    cfg, exp, _ = blobs
    paths = make_blob_dataset(tmp_path / "narrow", narrow=2)
    shuffled = sanity.shuffled_label_control(*_args(cfg, exp, paths, tmp_path / "work"))
    assert shuffled["train_images"] == 12 and shuffled["status"] in (sanity.PASS, sanity.FAIL)
    overfit = sanity.overfit_handful(*_args(cfg, exp, paths, tmp_path / "work2"))
    assert overfit["status"] in (sanity.PASS, sanity.FAIL) and overfit["epochs_trained"] >= 1


# ----------------------------------------------------------------------------- label round trip


def _mask_and_labels():
    pal = np.array([[0, 0, 0], [100, 0, 100], [255, 255, 0]], np.uint8)
    lab = np.zeros((12, 12), np.uint8)
    lab[2:6, 1:9] = 1
    lab[8:11, 8:11] = 2
    rgb = pal[lab].copy()
    # Anti-aliased border: blend the colours on the liver's edge.
    edge = sanity.interior_mask(lab, 1) == 0
    rgb[edge] = (rgb[edge] // 2 + 40).astype(np.uint8)
    return pal, lab, rgb


def test_round_trip_ignores_anti_aliased_borders():
    pal, lab, rgb = _mask_and_labels()
    share, n = sanity.round_trip_mismatch(lab, rgb, pal, tolerance=60, border_px=1)
    assert share == 0.0 and n > 0
    share0, _ = sanity.round_trip_mismatch(lab, rgb, pal, tolerance=60, border_px=0)
    assert share0 > 0  # counting the borders would flag it


@pytest.mark.parametrize("bug", ["shifted_class", "transposed", "rolled"])
def test_round_trip_catches_a_label_cache_bug(bug):
    pal, lab, rgb = _mask_and_labels()
    bad = {"shifted_class": (lab + 1) % 3, "transposed": lab.T.copy(), "rolled": np.roll(lab, 3, axis=1)}[bug]
    share, _ = sanity.round_trip_mismatch(bad, rgb, pal, tolerance=60, border_px=1)
    assert share > 0.05


def test_label_round_trip_on_files(blobs):
    cfg, _, paths = blobs
    args = (prepared(cfg, paths), SANITY)
    result = sanity.label_round_trip(*args)
    assert result["status"] == sanity.PASS and result["images"] == 18 and result["subjects"] == 6
    bad = paths["labels_dir"] / "AUS_train_ct2-1.npy"
    np.save(bad, (np.load(bad) + 1) % 3)  # the planted bug: one cached label off by one class
    result = sanity.label_round_trip(*args)
    assert result["status"] == sanity.FAIL
    assert [f["image_id"] for f in result["failures"]] == ["AUS_train_ct2-1"]
