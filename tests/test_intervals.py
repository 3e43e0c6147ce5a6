import math

import numpy as np
import pytest
from scipy import stats

from usseg.intervals import (
    COVERAGE_SUBJECTS,
    DISTRIBUTIONS,
    HARD_DISTRIBUTIONS,
    MIN_SUBJECTS_FOR_INTERVAL,
    WELCH_SETTINGS,
    coverage,
    coverage_table,
    describe,
    difference_interval,
    far_from_others,
    no_interval_note,
    subject_mean_interval,
    welch_setting_coverage,
    worst_cell,
)

# 4000 simulated test sets: the Monte Carlo standard error of a 95 % coverage is 0.35 %.
N_SIMS = 4000


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_t_interval_covers_at_least_90_percent_down_to_3_subjects(name):
    sampler, mean = DISTRIBUTIONS[name]
    for n in COVERAGE_SUBJECTS:
        cov = coverage("t", sampler, mean, n, N_SIMS, seed=n)
        assert 0.90 <= cov <= 0.99, (name, n, cov)


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_welch_difference_interval_covers_at_least_90_percent(name):
    sampler, mean = DISTRIBUTIONS[name]
    for n in COVERAGE_SUBJECTS:
        assert coverage("welch", sampler, mean, n, N_SIMS, seed=n) >= 0.90, (name, n)


def test_the_simulation_tells_a_bad_method_apart():
    # The percentile bootstrap that usseg used before undercovers at 4 subjects:
    # the simulation must be able to see that, or it checks nothing.
    sampler, mean = DISTRIBUTIONS["Beta(8, 2)"]
    assert coverage("percentile_bootstrap", sampler, mean, 4, 2000) < 0.85


def test_t_interval_by_hand():
    values = [0.6, 0.7, 0.8, 0.9]
    out = subject_mean_interval(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert out["estimate"] == pytest.approx(0.75)
    assert out["ci95"] == pytest.approx([0.75 - half, min(1.0, 0.75 + half)])
    assert out["estimable"] and out["n_subjects"] == 4 and out["note"] == ""
    # NaN (a subject without the class) is left out.
    assert subject_mean_interval([0.6, np.nan, 0.7, 0.8])["n_subjects"] == 3


def test_interval_is_clipped_to_the_metric_range():
    out = subject_mean_interval([0.99, 0.5, 1.0])
    assert out["ci95"][1] == 1.0 and out["ci95"][0] >= 0.0
    hd = subject_mean_interval([1.0, 20.0, 3.0], bounds=(0.0, math.inf))
    assert hd["ci95"][0] == 0.0 and hd["ci95"][1] > 20


def test_too_few_subjects_or_no_spread_gives_no_interval():
    assert MIN_SUBJECTS_FOR_INTERVAL == 3
    one = subject_mean_interval([0.19])
    assert one["ci95"] is None and not one["estimable"] and one["note"] == "n = 1 subject: no interval"
    assert subject_mean_interval([0.2, 0.4])["note"] == no_interval_note(2) == "n = 2 subjects: no interval"
    same = subject_mean_interval([0.7, 0.7, 0.7])
    assert same["ci95"] is None and not same["estimable"] and "zero width" in same["note"]
    empty = subject_mean_interval([])
    assert empty["estimate"] is None and empty["note"] == "n = 0 subjects: no interval"


def test_difference_interval_is_welch():
    a, b = [0.8, 0.85, 0.7, 0.9], [0.4, 0.6, 0.3]
    out = difference_interval(a, b)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = np.mean(a) - np.mean(b)
    assert out["estimate"] == pytest.approx(d) and out["ci95"] == pytest.approx([d - half, d + half])
    assert out["n_a"] == 4 and out["n_b"] == 3 and out["estimable"]
    assert difference_interval(a, [0.4, 0.5])["ci95"] is None


def test_one_failing_subject_among_tight_ones_is_named_and_shown():
    # Three subjects near 0.65 and one at 0.02: the interval is wide, and the text says why.
    values, names = [0.64, 0.66, 0.65, 0.02], ["a", "b", "h", "g"]
    iv = subject_mean_interval(values, subjects=names)
    assert iv["range"] == {"min": 0.02, "max": 0.66, "min_subject": "g", "max_subject": "b"}
    assert [f["subject"] for f in iv["far_subjects"]] == ["g"] and iv["far_subjects"][0]["others_median"] == 0.65
    text = describe(iv)
    assert text.startswith(f"0.49 [{iv['ci95'][0]:.2f}, {iv['ci95'][1]:.2f}], 4 subjects")
    assert "subjects 0.02 (g) to 0.66 (b)" in text and "g (0.02) is far from the others (median 0.65)" in text
    # Single-peaked spreads flag nobody; 10 subjects and more show no range in words.
    assert far_from_others([0.6, 0.7, 0.8, 0.9]) == [] and far_from_others([0.1, 0.5, 0.9]) == []
    assert "subjects 0.10" not in describe(subject_mean_interval(np.linspace(0.1, 0.9, 10)))
    assert describe(subject_mean_interval([0.5])) == "0.50 (n = 1 subject: no interval), 1 subject"
    assert describe(subject_mean_interval([0.0, 0.0, 0.0])).endswith("3 subjects; every subject 0.00")
    d = difference_interval([0.95, 0.96, 0.94, 0.0], values, subjects_a=["ct10", "ct11", "ct13", "ct12"],
                            subjects_b=names)
    assert d["far_a"][0]["subject"] == "ct12" and d["range_b"]["min_subject"] == "g"


def test_the_coverage_table_reports_the_hard_cases_it_does_not_promise():
    # The demo's own pattern (one subject in four fails outright) and asymmetric Welch settings are in the table,
    # and the simulation sees that no interval from 4 subjects covers that pattern well.
    assert "demo pattern: 75 % near 0.65, 25 % fail near 0.02" in HARD_DISTRIBUTIONS
    assert COVERAGE_SUBJECTS[0] == 3 and len(WELCH_SETTINGS) >= 3
    sampler, mean = HARD_DISTRIBUTIONS["demo pattern: 75 % near 0.65, 25 % fail near 0.02"]
    assert mean == pytest.approx(0.75 * 0.65 + 0.25 * 0.02, abs=1e-3)
    assert coverage("t", sampler, mean, 4, N_SIMS, seed=1) < 0.80
    # Unequal numbers of subjects and spreads: Welch keeps its level for single-peaked sides.
    assert welch_setting_coverage("a: Beta(8, 2), 12 subjects; b: Beta(2, 5), n", 3, N_SIMS) >= 0.88
    rows = coverage_table(methods=("t",), subjects=(3, 4), n_sims=500,
                          welch_settings=["demo drop: a: 75 % near 0.95, 25 % fail, n; b: demo pattern, n"])
    assert {r["hard"] for r in rows} == {True, False}
    worst = worst_cell(rows, subjects=(3, 4))
    assert worst["coverage"] == min(r[n] for r in rows for n in (3, 4)) and worst["coverage"] < 0.8
