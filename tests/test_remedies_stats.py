"""Remedy statistics: paired deltas over subjects and seeds, when to stop, the learning curve, LOSO folds,
gap_closure rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from usseg import contracts
from usseg.errors import DataError
from usseg.remedies import gap_stats as gs


def test_paired_delta_is_the_paired_t_interval():
    base = {"a": 0.50, "b": 0.60, "c": 0.40, "d": 0.70, "e": 0.55}
    new = {"a": 0.58, "b": 0.63, "c": 0.49, "d": 0.71, "e": 0.60}
    d = gs.paired_delta(base, new)
    ref = stats.ttest_rel(list(new.values()), list(base.values())).confidence_interval(0.95)
    assert d.n_subjects == 5 and d.method == gs.INTERVAL_METHOD
    assert d.delta == pytest.approx(np.mean(np.subtract(list(new.values()), list(base.values()))))
    assert d.delta == pytest.approx(d.value - d.baseline)
    assert (d.ci_lo, d.ci_hi) == pytest.approx((ref.low, ref.high))
    # Pairing matters: the order of the dicts does not.
    assert gs.paired_delta(dict(reversed(list(base.items()))), new).delta == pytest.approx(d.delta)


def test_paired_delta_few_subjects_nan_scores_and_mismatch():
    d = gs.paired_delta({"a": 0.5, "b": 0.6, "c": math.nan}, {"a": 0.6, "b": 0.8, "c": 0.9})
    assert d.n_subjects == 2 and d.subjects == ("a", "b")
    assert d.delta == pytest.approx(0.15) and math.isnan(d.ci_lo) and math.isnan(d.ci_hi)
    assert d.method == gs.NO_INTERVAL
    with pytest.raises(ValueError, match="'c'|c are scored by only one"):
        gs.paired_delta({"a": 0.5, "b": 0.6}, {"a": 0.5, "b": 0.6, "c": 0.1})
    assert gs.paired_delta({}, {}).n_subjects == 0


def test_power_matches_known_values_and_simulation():
    # G*Power, paired t-test, two-sided alpha 0.05: effect dz = 1 needs 10 subjects, dz = 0.5 needs 34.
    assert gs.subjects_needed(1.0, 1.0) == 10
    assert gs.subjects_needed(0.5, 1.0) == 34
    assert gs.paired_power(1.0, 1.0, 10) == pytest.approx(0.803, abs=0.002)
    # Monte Carlo: 5 subjects, differences N(0.1, 0.08^2).
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.1, 0.08, size=(20000, 5))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / math.sqrt(5))
    simulated = np.mean(np.abs(t) > stats.t.ppf(0.975, 4))
    assert gs.paired_power(0.1, 0.08, 5) == pytest.approx(simulated, abs=0.01)


def test_minimum_detectable_change():
    mdc = gs.minimum_detectable_change(4, 0.1)
    assert gs.paired_power(mdc, 0.1, 4) == pytest.approx(0.8, abs=1e-6)
    # More subjects, smaller detectable change; large n approaches the normal formula.
    assert gs.minimum_detectable_change(20, 0.1) < mdc
    big = gs.minimum_detectable_change(400, 0.1)
    assert big == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 0.1 / 20, rel=0.01)
    assert math.isnan(gs.minimum_detectable_change(1, 0.1))
    assert math.isnan(gs.minimum_detectable_change(5, math.nan))
    assert gs.minimum_detectable_change(5, 0.0) == 0.0
    stop = gs.when_to_stop(4, 0.1, change=0.05)
    assert stop["minimum_detectable_change"] == pytest.approx(mdc)
    n = stop["subjects_needed"]
    assert gs.paired_power(0.05, 0.1, n) >= 0.8 > gs.paired_power(0.05, 0.1, n - 1)
    assert gs.subjects_needed(0.0, 0.1) is None


def test_sd_helpers():
    assert gs.sd_of_differences(0.1, 0.5) == pytest.approx(0.1)
    assert gs.sd_of_differences(0.1, 0.0) == pytest.approx(0.1 * math.sqrt(2))
    with pytest.raises(ValueError):
        gs.sd_of_differences(0.1, 2)
    a = gs.paired_delta({"a": 0, "b": 0, "c": 0}, {"a": 0.1, "b": 0.2, "c": 0.3})
    b = gs.paired_delta({"a": 0, "b": 0}, {"a": 0.1, "b": 0.3})
    expected = math.sqrt((2 * 0.1**2 + 1 * (0.2 * math.sqrt(0.5)) ** 2) / 3)
    assert gs.pooled_sd([a, b]) == pytest.approx(expected)


def test_learning_curve_summary_and_verdict():
    rng = np.random.default_rng(0)
    subjects = [f"s{i}" for i in range(6)]
    base = rng.uniform(0.4, 0.7, size=6)
    rows = []
    jitter = {0.25: [0.0] * 6, 0.5: [0.1, 0.11, 0.09, 0.1, 0.105, 0.095],
              1.0: [0.11, 0.1, 0.08, 0.11, 0.1, 0.1]}  # a clear step, then a step that cancels out
    for frac, gains in jitter.items():
        for seed in range(3):  # three trainings per share, a little apart
            for s, b, g in zip(subjects, base, gains):
                rows.append({"fraction": frac, "subject": s, "seed": seed, "value": b + g + 0.004 * (seed - 1)})
    summary = gs.learning_curve_summary(pd.DataFrame(rows[::-1]))  # any row order
    assert list(summary.columns) == contracts.LEARNING_CURVE_COLUMNS
    assert summary["level"].tolist() == [0.25, 0.5, 1.0]
    assert summary["n_subjects"].tolist() == [6, 6, 6] and summary["n_seeds"].tolist() == [3, 3, 3]
    assert summary.loc[0, "seed_sd"] == pytest.approx(0.004)
    assert math.isnan(summary.loc[0, "step_delta"])
    assert summary.loc[1, "step_delta"] == pytest.approx(0.1, abs=0.01) and summary.loc[1, "step_ci_lo"] > 0
    assert summary.loc[2, "step_ci_lo"] < 0 < summary.loc[2, "step_ci_hi"]
    assert gs.learning_curve_verdict(summary) == "no detectable change"
    assert gs.learning_curve_verdict(summary.iloc[:2]) == "improving"
    assert gs.learning_curve_verdict(summary.iloc[:1]) == "undetermined"
    with pytest.raises(ValueError, match="fraction"):
        gs.learning_curve_summary(pd.DataFrame({"subject": [], "value": []}))
    # One training per share: no interval can include training noise, so no verdict.
    one = gs.learning_curve_summary(pd.DataFrame([r for r in rows if r["seed"] == 0]).drop(columns="seed"))
    assert one["n_seeds"].tolist() == [1, 1, 1] and one["ci_lo"].isna().all() and one["step_ci_lo"].isna().all()
    assert gs.learning_curve_verdict(one) == "undetermined"


def _split_table():
    rows = []
    for i in range(4):  # simulator subjects: train, val, test_aus
        split = ["train", "train", "val", "test_aus"][i]
        rows += [{"image_id": f"ct{i}-{k}", "subject_id": f"ct{i}", "modality": "AUS", "split": split, "note": ""}
                 for k in range(2)]
    for s, split in [("anna", "test_rus"), ("bob", "test_rus"), ("cleo", "test_rus")]:
        rows += [{"image_id": f"{s}{k}", "subject_id": s, "modality": "RUS", "split": split, "note": ""}
                 for k in range(3)]
    rows.append({"image_id": "dan0", "subject_id": "dan", "modality": "RUS", "split": "unlabeled",
                 "note": "no annotation"})
    return pd.DataFrame(rows)


def test_loso_folds_hold_out_each_labeled_real_subject_once():
    table = _split_table()
    folds = list(gs.loso_folds(table, "RUS"))
    assert [f.held_out for f in folds] == ["anna", "bob", "cleo"]
    for f in folds:
        s = f.splits
        assert list(s.columns) == list(table.columns) and len(s) == len(table)
        test = s[s["split"] == "test_rus"]
        assert set(test["subject_id"]) == {f.held_out} and len(test) == 3
        real_train = s[(s["modality"] == "RUS") & (s["split"] == "train")]
        assert set(real_train["subject_id"]) == set(f.train_subjects) == {"anna", "bob", "cleo"} - {f.held_out}
        # Simulator rows and unlabeled frames are untouched; no subject sits in two splits.
        sim = table["modality"] == "AUS"
        assert s.loc[sim, "split"].tolist() == table.loc[sim, "split"].tolist()
        assert s.loc[s["subject_id"] == "dan", "split"].tolist() == ["unlabeled"]
        used = s[s["split"] != "unlabeled"]
        assert (used.groupby("subject_id")["split"].nunique() == 1).all()
    assert table["split"].tolist() == _split_table()["split"].tolist()  # the input is not modified


def test_loso_folds_errors():
    table = _split_table()
    with pytest.raises(DataError, match="modality"):
        list(gs.loso_folds(table.drop(columns="modality"), "RUS"))
    one = table[~table["subject_id"].isin(["bob", "cleo"])]
    with pytest.raises(DataError, match="at least 2 labeled RUS subjects"):
        list(gs.loso_folds(one, "RUS"))


def test_loso_spread():
    spread = gs.loso_spread({"a": 0.2, "b": 0.4, "c": 0.6, "d": math.nan})
    assert spread["n_subjects"] == 3 and spread["mean"] == pytest.approx(0.4)
    assert spread["sd"] == pytest.approx(0.2) and spread["min"] == 0.2 and spread["max"] == 0.6
    assert spread["ci_lo"] < 0.4 < spread["ci_hi"]
    assert math.isnan(gs.loso_spread({"a": 0.3, "b": 0.5})["ci_lo"])


def test_gap_closure_table_contract():
    d = gs.seeded_delta(pd.DataFrame({0: [0.5, 0.6, 0.4], 1: [0.52, 0.6, 0.41]}, index=["a", "b", "c"]),
                        pd.DataFrame({0: [0.6, 0.6, 0.5], 1: [0.6, 0.63, 0.5]}, index=["a", "b", "c"]))
    rows = [
        gs.gap_closure_row("fda", "test_rus", "dice", d),
        gs.scalar_row("fda", "all", "train_seconds", 30.0, 42.0),
        gs.gap_closure_row("bn_adapt", "test_rus", "dice", d),
    ]
    table = gs.gap_closure_table(rows)
    assert list(table.columns) == contracts.GAP_CLOSURE_COLUMNS
    assert table["remedy"].tolist() == ["bn_adapt", "fda", "fda"]
    assert table["test_set"].tolist() == ["test_rus", "all", "test_rus"]
    row = table.iloc[2]
    assert row["delta"] == pytest.approx(d.delta) and row["n_subjects"] == 3
    assert row["n_seeds"] == 2 and row["seed_sd"] == pytest.approx(d.seed_sd) and d.seed_sd > 0
    seconds = table.iloc[1]
    assert seconds["delta"] == 12.0 and math.isnan(seconds["ci_lo"]) and math.isnan(seconds["n_subjects"])
    assert math.isnan(seconds["n_seeds"]) and math.isnan(seconds["seed_sd"])
    # A one-score-per-subject comparison is one seed.
    one = gs.gap_closure_row("x", "test_rus", "dice", gs.paired_delta({"a": 0.5}, {"a": 0.6}))
    assert one["n_seeds"] == 1 and math.isnan(one["seed_sd"])
    with pytest.raises(ValueError, match="more than one row"):
        gs.gap_closure_table(rows + rows[:1])


def test_when_to_stop_text_and_the_numbers_the_docs_quote():
    # docs/remedies.md quotes these two numbers.
    stop = gs.when_to_stop(4, 0.1, change=0.05)
    assert round(stop["minimum_detectable_change"], 2) == 0.21 and stop["subjects_needed"] == 34
    text = gs.when_to_stop_text(stop)
    assert "4 labeled real subjects" in text and "is 0.21" in text and "34 labeled real subjects" in text
    assert "at least 2 subjects" in gs.when_to_stop_text(gs.when_to_stop(1, math.nan))
    # ... and the range over the SD's interval.
    assert gs.when_to_stop_kind(4, 0.1, 3, math.nan, 1)["subjects_needed_range"] == [13, 439]


def test_rank_remedies_by_measured_effect():
    table = pd.DataFrame([
        {"remedy": "a", "test_set": "test_rus", "metric": "dice", "delta": 0.02, "ci_lo": -0.05, "ci_hi": 0.09},
        {"remedy": "b", "test_set": "test_rus", "metric": "dice", "delta": 0.10, "ci_lo": 0.03, "ci_hi": 0.17},
        {"remedy": "c", "test_set": "test_rus", "metric": "dice", "delta": -0.08, "ci_lo": -0.12, "ci_hi": -0.04},
        {"remedy": "d", "test_set": "test_rus", "metric": "dice", "delta": 0.05, "ci_lo": math.nan, "ci_hi": math.nan},
        {"remedy": "b", "test_set": "test_aus", "metric": "dice", "delta": 0.5, "ci_lo": 0.4, "ci_hi": 0.6},
    ])
    ranked = gs.rank_remedies(table, "test_rus")
    assert ranked["remedy"].tolist() == ["b", "d", "a", "c"]
    assert ranked["interval"].tolist() == ["above 0", "none", "spans 0", "below 0"]


def test_learning_curve_splits_are_nested_and_touch_only_training_subjects():
    rows = [{"image_id": f"ct{i}-{k}", "subject_id": f"ct{i}", "modality": "AUS", "split": "train", "note": ""}
            for i in range(8) for k in range(2)]
    rows += [{"image_id": "v0", "subject_id": "ctv", "modality": "AUS", "split": "val", "note": ""},
             {"image_id": "r0", "subject_id": "anna", "modality": "RUS", "split": "train", "note": ""}]
    table = pd.DataFrame(rows)
    tables = gs.learning_curve_splits(table, [0.25, 0.5, 1.0], ["AUS"], seed=3)
    kept = {f: set(t.loc[(t["split"] == "train") & (t["modality"] == "AUS"), "subject_id"]) for f, t in tables.items()}
    assert [len(kept[f]) for f in (0.25, 0.5, 1.0)] == [2, 4, 8]
    assert kept[0.25] < kept[0.5] < kept[1.0]
    for t in tables.values():
        assert t.loc[t["image_id"] == "v0", "split"].item() == "val"
        assert t.loc[t["image_id"] == "r0", "split"].item() == "train"
        # A subject's images stay together.
        assert (t.groupby("subject_id")["split"].nunique() == 1).all()
    assert set(tables[0.25]["split"]) == {"train", "val", gs.LEFT_OUT}
    assert gs.learning_curve_splits(table, [0.25], ["AUS"], seed=3)[0.25].equals(tables[0.25])
    assert table["split"].eq("train").sum() == 17  # the input is not modified
    assert len(kept[0.25]) == len(set(gs.learning_curve_splits(table, [0.01], ["AUS"])[0.01]
                                      .query("split == 'train' and modality == 'AUS'")["subject_id"])) + 1
    with pytest.raises(DataError, match="no training subjects"):
        gs.learning_curve_splits(table, [0.5], ["XYZ"])
    with pytest.raises(DataError, match="shares"):
        gs.learning_curve_splits(table, [0.0, 1.0], ["AUS"])


def test_the_gap_study_needs_as_many_subjects_for_an_interval_as_evaluation():
    from usseg import intervals

    assert gs.MIN_SUBJECTS_FOR_INTERVAL == intervals.MIN_SUBJECTS_FOR_INTERVAL


# ----------------------------------------------------------------------------- training noise (seeds)


def _arm(subject_values, seed_offsets):
    """A subjects x seeds table: each subject's value plus its seed's shared offset."""
    subjects = [f"s{i}" for i in range(len(subject_values))]
    return pd.DataFrame({k: np.asarray(subject_values) + off for k, off in enumerate(seed_offsets)}, index=subjects)


def test_seeded_delta_averages_seeds_per_subject_and_adds_the_seed_spread():
    base = _arm([0.40, 0.50, 0.60, 0.45, 0.55], [0.0, 0.0, 0.0])
    arm = _arm([0.44, 0.55, 0.63, 0.50, 0.58], [0.01, -0.01, 0.0])
    d = gs.seeded_delta(base, arm)
    per_subject = arm.mean(axis=1) - base.mean(axis=1)
    assert d.n_subjects == 5 and d.n_seeds == 3 and d.method == gs.SEEDED_METHOD
    assert d.delta == pytest.approx(per_subject.mean()) and d.delta == pytest.approx(d.value - d.baseline)
    assert d.seed_deltas == pytest.approx((0.05, 0.03, 0.04)) and d.seed_sd == pytest.approx(0.01)
    assert d.sd_subject == pytest.approx(per_subject.std(ddof=1))
    # The interval: both variance terms, Welch-Satterthwaite df from (n - 1, S - 1).
    c1, c2 = per_subject.var(ddof=1) / 5, 0.01**2 / 3
    df = (c1 + c2) ** 2 / (c1**2 / 4 + c2**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(c1 + c2)
    assert (d.ci_lo, d.ci_hi) == pytest.approx((d.delta - half, d.delta + half)) and d.df == pytest.approx(df)
    # Without a seed spread it is the paired t-interval over subjects of the seed-averaged scores.
    steady = gs.seeded_delta(base, _arm([0.44, 0.55, 0.63, 0.50, 0.58], [0.0, 0.0, 0.0]))
    paired = gs.paired_delta(base.mean(axis=1), _arm([0.44, 0.55, 0.63, 0.50, 0.58], [0.0]).mean(axis=1))
    assert (steady.ci_lo, steady.ci_hi) == pytest.approx((paired.ci_lo, paired.ci_hi))


def test_a_difference_that_flips_with_the_seed_is_not_an_improvement():
    """Planted: per seed the remedy is +0.08, -0.06, +0.05 better than the baseline, steadily over subjects.
    Subject by subject the seed-averaged gain (+0.023) is tight, so the subject-only interval excludes 0;
    with the seeds' spread in the interval it spans 0, and nothing may call it an improvement."""
    base = _arm([0.40, 0.50, 0.60, 0.45, 0.55, 0.35], [0.0, 0.0, 0.0])
    arm = _arm([0.401, 0.502, 0.599, 0.451, 0.548, 0.352], [0.08, -0.06, 0.05])
    d = gs.seeded_delta(base, arm)
    subject_only = gs.paired_delta(base.mean(axis=1), arm.mean(axis=1))
    assert subject_only.ci_lo > 0  # what a one-run-per-arm analysis of these means would claim
    assert d.ci_lo < 0 < d.ci_hi and d.seed_sd == pytest.approx(np.std([0.081, -0.059, 0.051], ddof=1), abs=0.002)
    row = gs.gap_closure_row("flip", "test_rus", "dice", d)
    assert gs.rank_remedies(gs.gap_closure_table([row]), "test_rus")["interval"].tolist() == ["spans 0"]


def test_no_interval_from_one_seed_or_two_subjects():
    base, arm = _arm([0.4, 0.5, 0.6], [0.0]), _arm([0.5, 0.6, 0.7], [0.0])
    one = gs.seeded_delta(base, arm)
    assert one.n_seeds == 1 and math.isnan(one.ci_lo) and math.isnan(one.seed_sd)
    assert one.method == gs.NO_SEED_INTERVAL and one.delta == pytest.approx(0.1)
    two = gs.seeded_delta(_arm([0.4, 0.5], [0.0, 0.01]), _arm([0.5, 0.6], [0.0, 0.01]))
    assert two.method == gs.NO_INTERVAL and math.isnan(two.ci_hi)
    with pytest.raises(ValueError, match="different seeds"):
        gs.seeded_delta(_arm([0.4, 0.5, 0.6], [0.0, 0.0]), _arm([0.4, 0.5, 0.6], [0.0]))
    with pytest.raises(ValueError, match="only one of the two arms"):
        gs.seeded_delta(_arm([0.4, 0.5, 0.6], [0.0]), _arm([0.4, 0.5], [0.0]))


def test_the_seeds_included_interval_covers_when_training_noise_is_shared():
    """Coverage (1,000 simulated studies: 4 subjects, 3 seeds, a seed effect shared by every subject twice the
    subject-level spread): the seeds-included interval covers the true change about 95 % of the time, the
    subject-only interval of seed-averaged scores far less (the failure the seeds are there to fix)."""
    rng = np.random.default_rng(7)
    covered = covered_subject_only = 0
    reps, truth = 1000, 0.03
    for _ in range(reps):
        subject = rng.normal(0.5, 0.15, 4)
        base = subject[:, None] + rng.normal(0, 0.06, 3)[None, :] + rng.normal(0, 0.01, (4, 3))
        arm = (subject + truth + rng.normal(0, 0.03, 4))[:, None] + rng.normal(0, 0.06, 3)[None, :] \
            + rng.normal(0, 0.01, (4, 3))
        d = gs.seeded_delta(pd.DataFrame(base), pd.DataFrame(arm))
        covered += d.ci_lo <= truth <= d.ci_hi
        p = gs.paired_delta(pd.Series(base.mean(1)), pd.Series(arm.mean(1)))
        covered_subject_only += p.ci_lo <= truth <= p.ci_hi
    assert covered / reps >= 0.92
    assert covered_subject_only / reps < 0.75


def test_seeded_power_reduces_to_the_paired_test_and_has_a_seed_floor():
    assert gs.seeded_power(0.1, 0.08, 5) == pytest.approx(gs.paired_power(0.1, 0.08, 5))
    assert gs.seeded_power(0.1, 0.08, 5, sd_seed=0.05, n_seeds=3) < gs.paired_power(0.1, 0.08, 5)
    # The seeds' spread bounds what any number of subjects can show.
    floor = gs.seed_floor(0.05, 3)
    assert gs.seeded_power(floor, 0.0, 2, 0.05, 3) == pytest.approx(0.8, abs=1e-6)
    assert gs.subjects_needed(floor * 0.8, 0.1, sd_seed=0.05, n_seeds=3) is None
    n = gs.subjects_needed(floor * 1.3, 0.1, sd_seed=0.05, n_seeds=3)
    assert n is not None and gs.seeded_power(floor * 1.3, 0.1, n, 0.05, 3) >= 0.8
    assert all(gs.seeded_power(floor * 1.3, 0.1, m, 0.05, 3) < 0.8 for m in range(2, n))
    assert math.isnan(gs.seed_floor(0.05, 1))


def test_when_to_stop_kind_gives_ranges_and_refuses_fewer_than_three_subjects():
    r = gs.when_to_stop_kind(4, 0.1, 3, math.nan, 1, change=0.05)
    assert r["estimable"] and r["subjects_needed"] == gs.subjects_needed(0.05, 0.1) == 34
    lo, hi = gs.sd_interval(0.1, 3)
    assert r["sd_subject_ci95"] == pytest.approx([lo, hi]) and lo < 0.1 < hi
    assert r["subjects_needed_range"] == [gs.subjects_needed(0.05, lo), gs.subjects_needed(0.05, hi)]
    assert r["subjects_needed_range"][0] < 34 < r["subjects_needed_range"][1]
    mlo, mhi = r["minimum_detectable_change_range"]
    assert mlo < r["minimum_detectable_change"] < mhi
    assert "34 labeled real subjects" in gs.when_to_stop_kind_text("remedy", r)
    assert "one seed per arm: training noise is not included" in gs.when_to_stop_kind_text("remedy", r)
    two = gs.when_to_stop_kind(2, 0.1, 1, 0.02, 3)
    assert not two["estimable"] and two["subjects_needed"] is None and two["subjects_needed_range"] == [None, None]
    assert "cannot be estimated" in gs.when_to_stop_kind_text("real_subjects", two)
    assert "2 labeled real subject(s)" in two["why"]
    # A seed spread that alone hides the change: no number of subjects, and the text says why.
    seeded = gs.when_to_stop_kind(6, 0.05, 5, 0.1, 3, change=0.05)
    assert seeded["subjects_needed"] is None and seeded["seed_floor"] > 0.05
    assert "train more seeds" in gs.when_to_stop_kind_text("remedy", seeded)
    # Where the power at these few subjects peaks above its limit (2 seeds: the df fall to 1 as subjects are
    # added), the detectable change reported is the floor, not the peak: the words cannot contradict.
    peak = gs.when_to_stop_kind(4, 0.019, 3, 0.009, 2, change=0.05)
    assert gs.minimum_detectable_change(4, 0.019, sd_seed=0.009, n_seeds=2) < 0.05 < peak["seed_floor"]
    assert peak["minimum_detectable_change"] == pytest.approx(peak["seed_floor"])
    assert peak["subjects_needed"] is None
