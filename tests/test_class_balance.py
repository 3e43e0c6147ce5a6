import numpy as np
import pytest

from usseg.class_balance import pixel_counts, suggest_class_weights


def test_pixel_counts_sums_over_arrays():
    a = np.array([[0, 0], [1, 2]], dtype=np.uint8)
    b = np.array([[2, 2], [2, 0]], dtype=np.uint8)
    assert pixel_counts([a, b], 4).tolist() == [3, 1, 4, 0]


def test_rare_class_gets_larger_weight_and_absent_class_zero():
    w = suggest_class_weights(np.array([9000, 900, 90, 0]))
    assert w[3] == 0
    assert w[2] > w[1] > w[0]
    assert np.isclose(w[:3].mean(), 1.0)


def test_weights_are_capped():
    w = suggest_class_weights(np.array([10**9, 1, 10**9, 10**9]), max_weight=2.0)
    assert w.max() == 2.0


def test_no_pixels_is_an_error():
    with pytest.raises(ValueError):
        suggest_class_weights(np.zeros(3))
