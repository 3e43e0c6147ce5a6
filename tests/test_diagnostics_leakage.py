"""Leakage: shared subjects, identical files and near-duplicate images across subjects are found."""

import copy

import numpy as np
import pandas as pd
import pytest

from datasets import Frame
from test_diagnostics_fixtures import (
    DATASET_CFG,
    DEMO_LIKE,
    DIAG_CFG,
    make_frames,
    write_dataset,
)
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.leakage import check_leakage, near_duplicate_pairs
from usseg.diagnostics.survey import hamming, phash, survey_images, thumbnail_correlation

LAYOUT = DEMO_LIKE[:9] + DEMO_LIKE[-4:]  # simulator subjects and the labeled real ones


def run_leakage(tmp_path, frames, **kw):
    fx = write_dataset(tmp_path, frames, **kw)
    fx.out_dir.mkdir(parents=True)
    inputs = load_inputs(
        DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    result = check_leakage(inputs, survey_images(inputs, 0, 0, 12), fx.outputs)
    return result, pd.read_csv(fx.out_dir / "near_duplicates.csv", keep_default_na=False)


def altered_copy(image: np.ndarray, seed: int = 1) -> np.ndarray:
    """Slightly brighter, with a little noise: the kind of copy a re-export produces."""
    rng = np.random.default_rng(seed)
    out = image.astype(float) * 1.05 + 4 + rng.normal(0, 2, image.shape)
    return np.where(image > 0, np.clip(out, 0, 255), image).astype(np.uint8)


def find(frames, image_id) -> Frame:
    return next(f for f in frames if f.image_id == image_id)


@pytest.fixture(scope="module")
def frames():
    return make_frames(LAYOUT)


def test_altered_copies_keep_their_hash_and_correlation(frames):
    dist, corr = [], []
    for f in frames[::2]:
        copy_ = altered_copy(f.image, seed=f.number)
        dist.append(int(hamming(phash(f.image), phash(copy_))))
        corr.append(thumbnail_correlation(f.image.astype(np.float32), copy_.astype(np.float32), 12))
    assert np.median(dist) <= 2 and np.mean(np.array(dist) <= 4) >= 0.95
    assert min(corr) > 0.95


def test_frames_of_different_subjects_do_not_correlate(frames):
    a = find(frames, "AUS_train_ct1-1").image.astype(np.float32)
    for other in ("AUS_train_ct3-1", "AUS_train_ct5-4", "AUS_test_ct11-2"):
        assert thumbnail_correlation(a, find(frames, other).image.astype(np.float32), 12) < 0.95


def test_pairs_are_only_reported_across_subjects():
    h = np.array([[0] * 8, [0] * 7 + [1], [0] * 7 + [7], [255] * 8], dtype=np.uint8)
    subjects = np.array(["s1", "s1", "s2", "s3"])
    pairs = near_duplicate_pairs(h, subjects, max_distance=3, block=2)
    assert sorted(pairs) == [(0, 2, 3), (1, 2, 2)]


def test_clean_splits_pass(tmp_path, frames):
    result, pairs = run_leakage(tmp_path, copy.deepcopy(frames))
    assert result.status == "PASS" and pairs.empty


def test_subject_in_two_splits_fails(tmp_path, frames):
    result, _ = run_leakage(
        tmp_path, copy.deepcopy(frames), splits_override={"AUS_train_ct1-2": "test_aus"}
    )
    assert result.status == "FAIL"
    assert result.details["subjects_in_several_splits"] == {"ct1": ["test_aus", "train"]}
    assert "ct1 in test_aus, train" in result.reason


def test_identical_file_under_another_subject_in_another_split_fails(tmp_path, frames):
    frames = copy.deepcopy(frames)
    src = find(frames, "AUS_train_ct1-1")
    dup = Frame("AUS", "test", "ct12", 99, src.image.copy(), src.mask.copy(), split="test_aus")
    frames.append(dup)
    result, pairs = run_leakage(tmp_path, frames)
    assert result.status == "FAIL"
    groups = result.details["identical_files_across_splits"]
    assert len(groups) == 1 and set(groups[0]["image_ids"]) == {
        "AUS_train_ct1-1",
        "AUS_test_ct12-99",
    }
    row = pairs.iloc[0]
    assert row["hamming"] == 0 and str(row["identical_file"]) == "True"


def test_altered_copy_under_another_subject_is_a_near_duplicate(tmp_path, frames):
    frames = copy.deepcopy(frames)
    src = find(frames, "AUS_train_ct2-3")
    frames.append(
        Frame("AUS", "train", "ct4", 99, altered_copy(src.image), src.mask.copy(), split="train")
    )
    result, pairs = run_leakage(tmp_path, frames)
    assert (
        result.status == "WARN"
    )  # same side of the split: suspicious subject ids, not test leakage
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert {pair["image_id_a"], pair["image_id_b"]} == {"AUS_train_ct2-3", "AUS_train_ct4-99"}
    assert str(pair["identical_file"]) == "False" and pair["correlation"] > 0.95


def test_near_duplicate_spanning_train_and_test_fails(tmp_path, frames):
    frames = copy.deepcopy(frames)
    src = find(frames, "AUS_train_ct2-3")
    frames.append(
        Frame("RUS", "test", "z", 1, altered_copy(src.image, seed=5), None, split="unlabeled")
    )
    frames.append(
        Frame(
            "AUS",
            "test",
            "ct11",
            99,
            altered_copy(src.image, seed=7),
            src.mask.copy(),
            split="test_aus",
        )
    )
    result, pairs = run_leakage(tmp_path, frames)
    assert result.status == "FAIL"
    cross = pairs[pairs["spans_train_test"].astype(str) == "True"]
    assert len(cross) == 1 and set(cross.iloc[0][["split_a", "split_b"]]) == {"train", "test_aus"}
    assert "spanning train and test" in result.reason
