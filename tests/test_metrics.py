import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

from usseg.metrics import (
    MIN_SUBJECTS_FOR_STABLE_CI,
    area_per_class,
    confusion_counts,
    dice_per_class,
    is_unstable,
    mean_where_present,
    nanmean_or_nan,
    present_per_class,
    subject_means,
    surface_metrics_per_class,
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


def test_dice_matches_monai_where_both_define_it():
    ours = dice_per_class(PRED, REF, [1, 4])
    onehot = [torch.from_numpy(np.stack([a == 1, a == 4])[None].astype(np.float32)) for a in (PRED, REF)]
    theirs = compute_dice(onehot[0], onehot[1], include_background=True)[0].numpy()
    np.testing.assert_allclose(ours, theirs)


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


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_nsd_and_hd95_match_monai_on_small_arrays():
    # Class 1: the reference square shifted down by one row and widened by two columns.
    ref = np.zeros((12, 12), np.uint8)
    ref[2:8, 2:8] = 1
    pred = np.zeros_like(ref)
    pred[3:9, 2:10] = 1
    ref[10, 10] = 2  # class 2: missed; class 3: a false positive; class 4: in neither
    pred[0, 11] = 3
    nsd, hd95 = surface_metrics_per_class(pred, ref, [1, 2, 3, 4], tolerance_px=1.0)
    p, r = torch.from_numpy((pred == 1)[None, None]), torch.from_numpy((ref == 1)[None, None])
    want_nsd = float(compute_surface_dice(p, r, [1.0], include_background=True)[0, 0])
    want_hd = float(compute_hausdorff_distance(p, r, include_background=True, percentile=95)[0, 0])
    assert nsd[0] == pytest.approx(want_nsd) and 0.0 < nsd[0] < 1.0
    assert hd95[0] == pytest.approx(want_hd) and hd95[0] > 0
    assert nsd[1] == 0.0 and nsd[2] == 0.0 and math.isnan(nsd[3])
    assert np.isnan(hd95[1:]).all()
    # By hand: boundaries one pixel apart are within a 1-pixel tolerance, two columns apart are not.
    same_nsd, same_hd = surface_metrics_per_class(ref, ref, [1], tolerance_px=0.0)
    assert same_nsd[0] == 1.0 and same_hd[0] == 0.0
    loose, _ = surface_metrics_per_class(pred, ref, [1], tolerance_px=3.0)
    assert loose[0] == 1.0 and nsd[0] < loose[0]


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
@pytest.mark.filterwarnings("ignore:the (prediction|ground truth) of class")
def test_nsd_and_hd95_are_monai_s_to_the_last_bit_on_random_maps():
    # usseg computes both in one pass instead of calling MONAI twice per class (about ten times
    # faster); the numbers must stay MONAI's exactly: organs touching the border, shifted and noisy
    # maps, tolerances that fall between pixel distances.
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(5, 60, 2))
        ref = ndimage.median_filter(rng.integers(0, 4, (h, w)), size=int(rng.integers(1, 6)))
        pred = ndimage.median_filter(rng.integers(0, 4, (h, w)), size=int(rng.integers(1, 6)))
        if trial % 3 == 0:
            pred = np.roll(ref, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
        tolerance = [3.0, 2.0, 0.5, 1.3, 0.0][trial % 5]
        nsd, hd95 = surface_metrics_per_class(pred, ref, [1, 2, 3], tolerance)
        for j, c in enumerate([1, 2, 3]):
            p, r = pred == c, ref == c
            if not (p.any() and r.any()):
                continue
            tp, tr = torch.from_numpy(p[None, None]), torch.from_numpy(r[None, None])
            assert nsd[j] == float(compute_surface_dice(tp, tr, [tolerance], include_background=True)[0, 0])
            assert hd95[j] == float(compute_hausdorff_distance(tp, tr, include_background=True, percentile=95)[0, 0])


def test_areas_confusion_and_subject_means():
    assert area_per_class(REF, [1, 2, 4]).tolist() == [4, 0, 2]
    cm = confusion_counts(PRED, REF, 5)
    assert cm.sum() == 16 and cm[1, 1] == 4 and cm[0, 1] == 2 and cm[4, 0] == 2 and cm[0, 3] == 1
    # Subject a: two images (0.2, 0.4); subject b: one image (1.0) and one unscored.
    values = np.array([[0.2], [0.4], [1.0], [0.0]])
    scored = np.array([[True], [True], [True], [False]])
    ids, means = subject_means(values, scored, ["a", "a", "b", "b"])
    assert ids == ["a", "b"] and means[:, 0].tolist() == pytest.approx([0.3, 1.0])
    # The subject mean (0.65) differs from the pooled-image mean (0.533): the subject is the unit.
    assert means.mean() == pytest.approx(0.65)
    _, none = subject_means(values, np.zeros_like(scored), ["a", "a", "b", "b"])
    assert np.isnan(none).all()


def test_unstable_below_five_subjects():
    assert MIN_SUBJECTS_FOR_STABLE_CI == 5
    assert is_unstable(4) and not is_unstable(5)
