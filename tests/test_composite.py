"""The one composite (usseg.composite): class-macro mean Dice, its classes, each subject's term, paired changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from usseg import composite
from usseg.remedies.gap_stats import paired_delta

NAN = np.nan


def test_subjects_with_different_organs_give_the_class_macro_mean_not_the_mean_of_subject_means():
    # Subject g: liver, kidney, spleen; h: liver, gallbladder, kidney, vessels (the demo's real subjects).
    values = pd.DataFrame({"liver": [0.9, 0.7, 0.8], "kidney": [0.2, 0.4, NAN], "vessels": [NAN, 0.1, 0.3]},
                          index=["g", "h", "a"])
    class_means = values.mean()  # liver 0.8, kidney 0.3, vessels 0.2
    out = composite.composite(values)
    assert out["name"] == "class-macro mean Dice" and out["n_subjects"] == 3
    assert out["estimate"] == pytest.approx(class_means.mean())
    mean_of_subject_means = values.mean(axis=1).mean()
    assert abs(out["estimate"] - mean_of_subject_means) > 0.02  # the old definition disagreed with the table
    terms = composite.subject_terms(values)
    assert terms.mean() == pytest.approx(out["estimate"])
    # The interval is the t interval on the terms.
    half = out["ci95"][1] - out["estimate"]
    from scipy import stats

    assert half == pytest.approx(stats.t.ppf(0.975, 2) * terms.std(ddof=1) / np.sqrt(3))


def test_with_every_class_in_every_subject_a_term_is_the_subjects_mean():
    values = pd.DataFrame({"liver": [0.9, 0.7, 0.8, 0.6], "kidney": [0.5, 0.4, 0.3, 0.2]}, index=list("abcd"))
    np.testing.assert_allclose(composite.subject_terms(values), values.mean(axis=1))
    empty = pd.DataFrame({"liver": [NAN, 0.5]}, index=["x", "y"])
    assert np.isnan(composite.subject_terms(empty)["x"]) and composite.subject_terms(empty)["y"] == 0.5
    assert composite.composite(pd.DataFrame(index=["a"], columns=[], dtype=float))["estimate"] is None


def test_the_composite_classes_are_in_at_least_3_subjects_of_every_test_set():
    counts = {"test_aus": {"liver": 4, "bone": 4, "gallbladder": 2, "kidney": 4, "vessels": 4},
              "test_rus": {"liver": 4, "bone": 0, "gallbladder": 1, "kidney": 4, "vessels": 4}}
    sizes = {"test_aus": 4, "test_rus": 4}
    classes = ["liver", "bone", "gallbladder", "kidney", "vessels"]
    assert composite.composite_classes(counts, sizes, classes) == ["liver", "kidney", "vessels"]
    # A test set of 2 subjects: every subject of it (no class reaches 3 there).
    counts["tiny"], sizes["tiny"] = {"liver": 2, "kidney": 1, "vessels": 2}, 2
    assert composite.composite_classes(counts, sizes, classes) == ["liver", "vessels"]
    assert "liver, vessels" in composite.definition(["liver", "vessels"], ["test_aus", "tiny"])


def test_a_paired_change_is_the_change_in_the_composite():
    base = pd.DataFrame({"liver": [0.9, 0.7, 0.8, 0.6], "kidney": [0.5, NAN, 0.3, 0.2]}, index=list("abcd"))
    other = base + 0.05
    other.loc["d", "kidney"] = NAN  # the remedy scores d's kidney nowhere: each side keeps its own terms
    b, o = composite.paired_terms(base, other)
    d = paired_delta(b, o)
    assert d.delta == pytest.approx(composite.composite(other)["estimate"] - composite.composite(base)["estimate"])
    assert d.n_subjects == 4


def test_summary_values_read_per_subject():
    summary = {"per_subject": {"a": {"liver": 0.5, "kidney": None}, "b": {"liver": 0.7}}}
    values = composite.summary_values(summary, ["liver", "kidney"])
    assert values.index.tolist() == ["a", "b"] and values.loc["a", "liver"] == 0.5
    assert np.isnan(values.loc["a", "kidney"]) and np.isnan(values.loc["b", "kidney"])
