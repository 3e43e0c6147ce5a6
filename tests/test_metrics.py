import math

import numpy as np
import pytest

from usseg.metrics import (
    MIN_SUBJECTS_FOR_STABLE_CI,
    dice_per_class,
    is_unstable,
    mean_where_present,
    nanmean_or_nan,
    present_per_class,
    subject_bootstrap_ci,
)

# 4x4 reference and prediction, classes 1..4:
#   1: ref 4 px, pred 6 px, overlap 4  -> 2*4/(4+6) = 0.8
#   2: absent from both                -> NaN
#   3: absent from ref, predicted 1 px -> 0 (false positive)
#   4: ref 2 px, not predicted         -> 0 (missed)
REF = np.array([
    [1, 1, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 4],
    [0, 0, 0, 4],
])
PRED = np.array([
    [1, 1, 1, 0],
    [1, 1, 1, 0],
    [0, 0, 0, 0],
    [0, 0, 3, 0],
])


def test_dice_hand_computed_with_nan_rules():
    d = dice_per_class(PRED, REF, [1, 2, 3, 4])
    assert d[0] == pytest.approx(0.8)
    assert math.isnan(d[1])
    assert d[2] == 0.0
    assert d[3] == 0.0
    assert present_per_class(REF, [1, 2, 3, 4]).tolist() == [True, False, False, True]


def test_perfect_prediction_and_shape_mismatch():
    assert dice_per_class(REF, REF, [1, 4]).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        dice_per_class(PRED[:3], REF, [1])


def test_class_mean_counts_only_images_where_the_class_is_present():
    # image 1: class present, Dice 0.5; image 2: absent but predicted (0, a false
    # positive); image 3: present, Dice 1.0. Second class never present.
    dice = np.array([[0.5, np.nan], [0.0, 0.0], [1.0, np.nan]])
    present = np.array([[True, False], [False, False], [True, False]])
    means = mean_where_present(dice, present)
    assert means[0] == pytest.approx(0.75)
    assert math.isnan(means[1])
    assert nanmean_or_nan(means) == pytest.approx(0.75)
    assert math.isnan(nanmean_or_nan([np.nan]))


def test_bootstrap_identical_subjects_gives_zero_width_interval():
    dice = np.full((6, 1), 0.7)
    present = np.ones((6, 1), bool)
    ci = subject_bootstrap_ci(dice, present, ["a", "a", "b", "b", "c", "c"])
    assert ci[0].tolist() == pytest.approx([0.7, 0.7])


def test_bootstrap_two_subjects_zero_and_one_covers_both_ends():
    dice = np.array([[0.0], [1.0]])
    present = np.ones((2, 1), bool)
    ci = subject_bootstrap_ci(dice, present, ["a", "b"])
    assert ci[0].tolist() == [0.0, 1.0]


def test_bootstrap_resamples_subjects_not_images():
    # Subject a: ten perfect frames; subject b: one failed frame. Resampling
    # images would put the lower end near 0.75; resampling subjects draws
    # {b, b} a quarter of the time, so the lower end is 0.
    dice = np.array([[1.0]] * 10 + [[0.0]])
    present = np.ones((11, 1), bool)
    ci = subject_bootstrap_ci(dice, present, ["a"] * 10 + ["b"])
    assert ci[0, 0] == 0.0 and ci[0, 1] == 1.0


def test_bootstrap_class_never_present_is_nan_and_seed_is_fixed():
    rng = np.random.default_rng(3)
    dice = np.column_stack([rng.random(20), np.full(20, np.nan)])
    present = np.column_stack([np.ones(20, bool), np.zeros(20, bool)])
    subjects = np.repeat(list("abcde"), 4)
    ci = subject_bootstrap_ci(dice, present, subjects)
    assert np.isnan(ci[1]).all()
    assert ci[0, 0] < mean_where_present(dice, present)[0] < ci[0, 1]
    assert np.array_equal(ci, subject_bootstrap_ci(dice, present, subjects), equal_nan=True)


def test_unstable_below_five_subjects():
    assert MIN_SUBJECTS_FOR_STABLE_CI == 5
    assert is_unstable(4) and not is_unstable(5)
