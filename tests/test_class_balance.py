import numpy as np
import pytest

from usseg.class_balance import pixel_counts, suggest_class_weights


def test_pixel_counts_sums_over_arrays():
    a = np.array([[0, 0], [1, 2]], dtype=np.uint8)
    b = np.array([[2, 2], [2, 0]], dtype=np.uint8)
    assert pixel_counts([a, b], 4).tolist() == [3, 1, 4, 0]


def test_rare_class_gets_larger_weight_and_absent_class_zero():
    w = suggest_class_weights(np.array([4000, 900, 300, 0]))
    assert w[3] == 0
    assert w[2] > w[1] > w[0]
    assert w[1] == 1.0  # the median-frequency class
    assert np.isclose(w[2], np.sqrt(3)) and np.isclose(w[0], np.sqrt(900 / 4000))


def test_weights_are_bounded_both_ways():
    w = suggest_class_weights(np.array([10**9, 1, 10**6, 10**6]), max_ratio=3.0)
    assert w.max() == 3.0 and w.min() == 1 / 3


def test_no_pixels_is_an_error():
    with pytest.raises(ValueError):
        suggest_class_weights(np.zeros(3))


def test_one_huge_image_does_not_decide_the_class_balance():
    from usseg.class_balance import class_totals, image_weighted

    small = [np.where(np.arange(64 * 64).reshape(64, 64) < 1024, 1, 0).astype(np.uint8) for _ in range(9)]
    huge = np.full((800, 800), 2, np.uint8)  # a tenth image, 156 times larger, all class 2
    totals = class_totals(small + [huge], 3)
    shares = totals / totals.sum()
    # Each image weighs one tenth: class 2 has a tenth of the weight, not 99 % of the pixels.
    np.testing.assert_allclose(shares, [0.9 * 0.75, 0.9 * 0.25, 0.1], atol=1e-9)
    # Images of one size keep their pixel shares exactly.
    same = np.array([[30, 10], [20, 20]])
    np.testing.assert_allclose(image_weighted(same).sum(axis=0) / image_weighted(same).sum(), [50 / 80, 30 / 80])
