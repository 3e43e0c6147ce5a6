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
