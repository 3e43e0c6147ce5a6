"""Statistics of the gap study (pure functions of subject-level scores; NumPy/SciPy/pandas only).

The subject (patient) is the unit throughout: frames of one subject are near
copies, so every interval here is over subjects, never over images.

- `paired_delta`: a remedy against the baseline on the SAME test subjects.
  Interval: Student's t-interval on the per-subject differences
  ``d_i = remedy_i - baseline_i``: ``mean(d) +- t_{1-alpha/2, n-1} * sd(d) / sqrt(n)``.
  It is exact when the differences are roughly normal and, unlike a bootstrap,
  stays honest (wide) for a handful of subjects; with fewer than 3 subjects no
  interval is given (NaN).
- `minimum_detectable_change` and `subjects_needed` ("when to stop"): power of
  the two-sided paired t-test from the noncentral t distribution,
  ``power = P(|T| > t_crit)``, ``T ~ t'(df = n - 1, nc = delta * sqrt(n) / sd)``.
- `learning_curve_splits`: nested split tables over a share of the simulator's
  training subjects; `learning_curve_summary`: one row per training-set size,
  the mean over test subjects with a t-interval and the paired step to the previous size.
- `loso_folds`: leave-one-subject-out over the labeled target (real) subjects,
  each fold a drop-in split table.
- `gap_closure_row` / `gap_closure_table`: the rows of results/gap/gap_closure.csv.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from usseg.contracts import GAP_CLOSURE_COLUMNS, LEARNING_CURVE_COLUMNS
from usseg.errors import DataError

# SciPy (and usseg.intervals, which imports it) are imported inside the
# functions: the rules import this module at every Snakemake start-up.

# Fewer paired subjects than this: no interval (with 2, df = 1 and t = 12.7 makes
# any interval span the whole Dice range; it would look like information it is not).
# The same number as usseg.intervals.MIN_SUBJECTS_FOR_INTERVAL (a test holds them equal).
MIN_SUBJECTS_FOR_INTERVAL = 3
CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
INTERVAL_METHOD = "paired t-interval over subjects"
NO_INTERVAL = "none (fewer than 3 subjects)"

LOSO_FIRST_COLUMN = "held_out_subject"
# gap_closure.csv's remedy name of "adding real labels": each held-out subject's LOSO score
# against the baseline's score on the same subject.
LOSO_REMEDY = "loso_real_labels"
UNLABELED = "unlabeled"


def _scores(values, name: str) -> pd.Series:
    s = values.copy() if isinstance(values, pd.Series) else pd.Series(dict(values), dtype=float)
    s.index = s.index.map(str)
    if s.index.has_duplicates:
        dup = sorted(set(s.index[s.index.duplicated()]))
        raise ValueError(f"{name}: subject(s) {', '.join(dup[:5])} appear more than once; give one score per subject.")
    return s.astype(float)


# ----------------------------------------------------------------------------- intervals


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the finite values; lo = hi = NaN with fewer than 3 values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < MIN_SUBJECTS_FOR_INTERVAL:
        return mean, math.nan, math.nan, n
    from usseg.intervals import t_half_width

    half = t_half_width(float(x.std(ddof=1)), n, confidence)
    return mean, mean - half, mean + half, n


@dataclass(frozen=True)
class PairedDelta:
    """A paired subject-level comparison: value - baseline, with its interval."""

    baseline: float  # mean of the baseline's subject scores (over the paired subjects)
    value: float  # mean of the remedy's subject scores
    delta: float  # mean of the per-subject differences (= value - baseline)
    ci_lo: float
    ci_hi: float
    n_subjects: int
    sd_diff: float  # SD of the per-subject differences (NaN with fewer than 2)
    method: str
    subjects: tuple[str, ...]


def paired_delta(baseline, remedy, confidence: float = CONFIDENCE) -> PairedDelta:
    """Paired comparison of two models' subject-level scores (dict or Series: subject -> score).

    Both must score the same subjects (a paired design); a subject scored by
    only one is an error. Subjects whose score is NaN under either model (no
    class present) are left out of the pair and of n_subjects.
    """
    base = _scores(baseline, "baseline scores")
    new = _scores(remedy, "remedy scores")
    only = sorted(set(base.index) ^ set(new.index))
    if only:
        raise ValueError(
            f"paired comparison: subject(s) {', '.join(only[:5])} are scored by only one of the two models; "
            "evaluate both models on the same test subjects."
        )
    new = new.reindex(base.index)
    ok = np.isfinite(base.values) & np.isfinite(new.values)
    b, v = base.values[ok], new.values[ok]
    diff = v - b
    mean, lo, hi, n = t_interval(diff, confidence)
    return PairedDelta(
        baseline=float(b.mean()) if n else math.nan,
        value=float(v.mean()) if n else math.nan,
        delta=mean,
        ci_lo=lo,
        ci_hi=hi,
        n_subjects=n,
        sd_diff=float(diff.std(ddof=1)) if n >= 2 else math.nan,
        method=INTERVAL_METHOD if n >= MIN_SUBJECTS_FOR_INTERVAL else NO_INTERVAL,
        subjects=tuple(base.index[ok]),
    )


# ----------------------------------------------------------------------------- when to stop


def paired_power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n subjects to detect a mean change `delta`."""
    from scipy import stats

    if n < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 1.0 if delta != 0 else alpha
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(delta) * math.sqrt(n) / sd
    upper = float(stats.nct.sf(crit, df, nc))
    # P(T < -crit): negligible for large nc, where SciPy's nct.cdf can return NaN.
    lower = float(stats.nct.cdf(-crit, df, nc))
    return upper + (lower if np.isfinite(lower) else 0.0)


def minimum_detectable_change(n_subjects: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean change a paired t-test on n subjects detects with the given power.

    sd: the SD of the per-subject differences between the two models (see
    `sd_of_differences` when only the between-subject SD of the score is known).
    NaN with fewer than 2 subjects or an unknown SD.
    """
    from scipy import optimize

    if n_subjects < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 0.0
    hi = sd
    while paired_power(hi, sd, n_subjects, alpha) < power:
        hi *= 2
    return float(optimize.brentq(lambda d: paired_power(d, sd, n_subjects, alpha) - power, 0.0, hi, xtol=1e-9))


def subjects_needed(change: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                    max_subjects: int = 100_000) -> int | None:
    """The fewest paired subjects (>= 2) with which a mean change `change` is detected with `power`.

    None when the SD is unknown, the change is 0, or more than max_subjects would be needed.
    """
    from scipy import stats

    if not np.isfinite(sd) or sd < 0 or change == 0:
        return None
    if sd == 0:
        return 2
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, int((z * sd / abs(change)) ** 2))  # normal approximation: a lower bound for the t-test
    while n <= max_subjects:
        if paired_power(change, sd, n, alpha) >= power:
            return n
        n += 1
    return None


def sd_of_differences(sd_between: float, correlation: float = 0.5) -> float:
    """SD of the per-subject difference of two models' scores, from the SD of one model's scores.

    sqrt(2 * (1 - rho)) * sd_between for two models of equal spread whose
    subject scores correlate with rho. rho = 0.5 gives sd_between itself; two
    models of one architecture on the same subjects usually correlate more (a
    hard patient is hard for both), so 0.5 is on the cautious side.
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"sd_of_differences: correlation {correlation} must lie in [-1, 1].")
    return float(sd_between) * math.sqrt(2.0 * (1.0 - correlation))


def pooled_sd(deltas: Sequence[PairedDelta]) -> float:
    """Pooled SD of the paired differences of several comparisons (weights n - 1); NaN if none has 2 subjects."""
    num = sum((d.n_subjects - 1) * d.sd_diff**2 for d in deltas if d.n_subjects >= 2 and np.isfinite(d.sd_diff))
    den = sum(d.n_subjects - 1 for d in deltas if d.n_subjects >= 2 and np.isfinite(d.sd_diff))
    return math.sqrt(num / den) if den else math.nan


def when_to_stop(n_subjects: int, sd: float, change: float = 0.05, alpha: float = ALPHA,
                 power: float = POWER) -> dict:
    """What the labeled real subjects can show: the minimum detectable change now, and the subjects `change` needs."""
    return {
        "n_subjects": int(n_subjects),
        "sd_diff": float(sd),
        "alpha": alpha,
        "power": power,
        "minimum_detectable_change": minimum_detectable_change(n_subjects, sd, alpha, power),
        "change": change,
        "subjects_needed": subjects_needed(change, sd, alpha, power),
    }


def when_to_stop_text(result: Mapping) -> str:
    """The plain-language sentence of a `when_to_stop` result for the report."""
    n, mdc = result["n_subjects"], result["minimum_detectable_change"]
    if not np.isfinite(mdc):
        return (
            f"With {n} labeled real subject(s) and no measured subject-to-subject spread, no change in real-image "
            "Dice can be shown: a paired comparison needs at least 2 subjects."
        )
    needed = result["subjects_needed"]
    need_text = f"{needed} labeled real subjects" if needed is not None else "more subjects than can be computed"
    return (
        f"With {n} labeled real subjects and an SD of {result['sd_diff']:.3f} Dice between two models' per-subject "
        f"differences, the smallest change in real-image Dice a paired test detects (alpha {result['alpha']:g}, "
        f"power {result['power']:g}) is {mdc:.2f}; a change of {result['change']:.2f} would need {need_text}."
    )


def rank_remedies(gap_closure: pd.DataFrame, test_set: str, metric: str = "dice") -> pd.DataFrame:
    """The remedies' rows for one test set and metric, best measured delta first, with `interval`:
    'above 0', 'below 0', 'spans 0' or 'none' (fewer than 3 subjects). Ties keep the remedy order."""
    rows = gap_closure[(gap_closure["test_set"] == test_set) & (gap_closure["metric"] == metric)].copy()
    lo, hi = rows["ci_lo"].astype(float), rows["ci_hi"].astype(float)
    rows["interval"] = np.select(
        [~(np.isfinite(lo) & np.isfinite(hi)), lo > 0, hi < 0], ["none", "above 0", "below 0"], default="spans 0"
    )
    return rows.sort_values(["delta", "remedy"], ascending=[False, True], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- learning curve



def learning_curve_summary(scores: pd.DataFrame, level: str = "fraction", subject: str = "subject",
                           value: str = "value", confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per training-set size (`level`, ascending): the mean over test subjects with a t-interval,
    and the paired change from the previous size (step_*; NaN on the first row).

    scores: long table, one row per (level, test subject) with that model's subject-level score.
    The intervals cover the sampling of test subjects, not the randomness of training (one run per level).
    """
    missing = [c for c in (level, subject, value) if c not in scores.columns]
    if missing:
        raise ValueError(f"learning_curve_summary: column(s) {', '.join(missing)} missing from the scores table.")
    rows = []
    previous = None
    for lvl, group in sorted(scores.groupby(level), key=lambda kv: kv[0]):
        per_subject = _scores(group.set_index(subject)[value], f"learning curve level {lvl}")
        mean, lo, hi, n = t_interval(per_subject.values, confidence)
        row = {"level": lvl, "mean": mean, "ci_lo": lo, "ci_hi": hi, "n_subjects": n,
               "step_delta": math.nan, "step_ci_lo": math.nan, "step_ci_hi": math.nan, "step_n_subjects": 0}
        if previous is not None:
            common = previous.index.intersection(per_subject.index)
            step = paired_delta(previous[common], per_subject[common], confidence)
            row.update(step_delta=step.delta, step_ci_lo=step.ci_lo, step_ci_hi=step.ci_hi,
                       step_n_subjects=step.n_subjects)
        rows.append(row)
        previous = per_subject
    return pd.DataFrame(rows, columns=LEARNING_CURVE_COLUMNS)


def learning_curve_verdict(summary: pd.DataFrame) -> str:
    """From the last step of the curve: 'improving' (interval above 0), 'worse' (below 0),
    'no detectable change' (interval spans 0) or 'undetermined' (no interval)."""
    if len(summary) < 2:
        return "undetermined"
    last = summary.iloc[-1]
    if not (np.isfinite(last["step_ci_lo"]) and np.isfinite(last["step_ci_hi"])):
        return "undetermined"
    if last["step_ci_lo"] > 0:
        return "improving"
    if last["step_ci_hi"] < 0:
        return "worse"
    return "no detectable change"


LEFT_OUT = "excluded"


def learning_curve_splits(table: pd.DataFrame, fractions: Sequence[float], modalities: Sequence[str],
                          seed: int = 0) -> dict[float, pd.DataFrame]:
    """One split table per share of the training subjects of `modalities` (the simulator's).

    The subsets are nested (the 25 % subjects are among the 50 %): the subjects are
    shuffled once with `seed` and each share takes the first ceil(share * n), at least one.
    The training images of the other subjects get split `excluded` (training reads only
    train and val), so each curve point differs from the next only by added subjects;
    val, test and unlabeled rows keep their split. table: image_id, subject_id, modality, split.
    """
    need = ["subject_id", "modality", "split"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise DataError(
            f"learning curve: the split table lacks column(s) {', '.join(missing)}; pass splits.csv joined with "
            "manifest.csv (usseg.contracts.read_split_table)."
        )
    shares = [float(f) for f in fractions]
    if not shares or any(not 0 < f <= 1 for f in shares):
        raise DataError(f"learning curve: shares {shares} must lie in (0, 1].")
    is_train = table["modality"].astype(str).isin([str(m) for m in modalities]) & (table["split"] == "train")
    subjects = sorted(table.loc[is_train, "subject_id"].astype(str).unique())
    if not subjects:
        raise DataError(f"learning curve: no training subjects of modality {', '.join(map(str, modalities))}.")
    order = list(np.random.default_rng(seed).permutation(subjects))
    note = table["note"].astype(str) if "note" in table.columns else pd.Series("", index=table.index)
    out = {}
    for share in shares:
        kept = set(order[: max(1, math.ceil(share * len(order)))])
        t = table.copy()
        t["note"] = note
        drop = is_train & ~table["subject_id"].astype(str).isin(kept)
        t.loc[drop, "split"] = LEFT_OUT
        t.loc[drop, "note"] = f"learning curve: left out at {share:g} of the training subjects"
        out[share] = t
    return out


# ----------------------------------------------------------------------------- leave one subject out


@dataclass(frozen=True)
class LosoFold:
    """One leave-one-subject-out fold: `splits` is the input table with split and note reassigned."""

    held_out: str
    test_set: str  # the split name of the held-out subject's images (test_{modality})
    train_subjects: tuple[str, ...]  # the other labeled target subjects, now in train
    splits: pd.DataFrame


def loso_folds(table: pd.DataFrame, target_modality: str) -> Iterator[LosoFold]:
    """Leave-one-subject-out folds over the labeled subjects of `target_modality`.

    table: a split table with image_id, subject_id, modality and split (results/splits.csv
    joined with the manifest, as usseg.contracts.read_split_table returns it). In each fold the
    held-out subject's labeled images form the test set test_{modality}; the other labeled
    target subjects' images join train; every other row (the simulator's train, val and
    test sets, unlabeled frames) keeps its split. So an experiment training on
    [simulator, target] trains on the simulator plus all but one real subject, selects its
    epoch on the simulator's val set, and is tested on the held-out subject only.
    """
    need = ["image_id", "subject_id", "modality", "split"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise DataError(
            f"leave-one-subject-out: the split table lacks column(s) {', '.join(missing)}; pass splits.csv joined "
            "with manifest.csv (usseg.contracts.read_split_table)."
        )
    target = table["modality"].astype(str) == str(target_modality)
    labeled = target & (table["split"].astype(str) != UNLABELED)
    subjects = sorted(table.loc[labeled, "subject_id"].astype(str).unique())
    if len(subjects) < 2:
        raise DataError(
            f"leave-one-subject-out needs at least 2 labeled {target_modality} subjects; the split table has "
            f"{len(subjects)} ({', '.join(subjects) or 'none'}). Label frames of more real subjects, or turn the "
            "LOSO study off."
        )
    test_set = f"test_{str(target_modality).lower()}"
    note = table["note"].astype(str) if "note" in table.columns else pd.Series("", index=table.index)
    for held in subjects:
        out = table.copy()
        out["note"] = note
        is_held = labeled & (table["subject_id"].astype(str) == held)
        others = labeled & ~is_held
        out.loc[is_held, "split"] = test_set
        out.loc[is_held, "note"] = f"loso: held-out subject {held}"
        out.loc[others, "split"] = "train"
        out.loc[others, "note"] = f"loso: training subject (fold {held})"
        yield LosoFold(held, test_set, tuple(s for s in subjects if s != held), out)


def loso_spread(per_subject, confidence: float = CONFIDENCE) -> dict:
    """The LOSO scores over held-out subjects (subject -> score): mean, SD, t-interval, n, min and max."""
    s = _scores(per_subject, "LOSO scores")
    mean, lo, hi, n = t_interval(s.values, confidence)
    finite = s[np.isfinite(s.values)]
    return {
        "mean": mean, "sd": float(finite.std(ddof=1)) if n >= 2 else math.nan, "ci_lo": lo, "ci_hi": hi,
        "n_subjects": n,
        "min": float(finite.min()) if n else math.nan, "max": float(finite.max()) if n else math.nan,
    }


# ----------------------------------------------------------------------------- gap_closure.csv


def gap_closure_row(remedy: str, test_set: str, metric: str, comparison: PairedDelta) -> dict:
    """One row of gap_closure.csv from a paired subject-level comparison."""
    return {
        "remedy": remedy, "test_set": test_set, "metric": metric,
        "baseline": comparison.baseline, "value": comparison.value, "delta": comparison.delta,
        "ci_lo": comparison.ci_lo, "ci_hi": comparison.ci_hi, "n_subjects": comparison.n_subjects,
    }


def scalar_row(remedy: str, test_set: str, metric: str, baseline: float, value: float,
               ci: tuple[float, float] | None = None, n_subjects: int | None = None) -> dict:
    """A row for a quantity that is not a per-subject score (domain AUC, training seconds).

    ci: an interval of the delta when the quantity has one (else NaN); n_subjects: the
    subjects behind it when known (else NaN, never a made-up count).
    """
    lo, hi = ci if ci is not None else (math.nan, math.nan)
    return {
        "remedy": remedy, "test_set": test_set, "metric": metric,
        "baseline": float(baseline), "value": float(value), "delta": float(value) - float(baseline),
        "ci_lo": lo, "ci_hi": hi, "n_subjects": n_subjects if n_subjects is not None else math.nan,
    }


def gap_closure_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """gap_closure.csv as a DataFrame: the contract's columns in order, sorted by remedy, test set, metric."""
    df = pd.DataFrame(list(rows), columns=GAP_CLOSURE_COLUMNS)
    dup = df.duplicated(["remedy", "test_set", "metric"])
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"gap_closure: more than one row for remedy {first['remedy']!r}, test set {first['test_set']!r}, "
            f"metric {first['metric']!r}."
        )
    return df.sort_values(["remedy", "test_set", "metric"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- for DVC (docs/dvc.md)


def _json_number(value):
    """A finite float, an int for counts, or None (JSON null) where there is no number."""
    if value is None or pd.isna(value):
        return None
    return int(value) if isinstance(value, int | np.integer) else float(value)


def gap_closure_metrics(closure: pd.DataFrame) -> dict:
    """gap_closure.csv nested for `dvc metrics show` and `dvc metrics diff`:
    remedy -> test_set -> metric -> {baseline, value, delta, ci_lo, ci_hi, n_subjects}; no number is null."""
    out: dict = {}
    for row in closure.to_dict("records"):
        entry = {k: _json_number(row[k]) for k in ("baseline", "value", "delta", "ci_lo", "ci_hi")}
        n = row["n_subjects"]
        entry["n_subjects"] = None if n is None or pd.isna(n) else int(n)
        out.setdefault(str(row["remedy"]), {}).setdefault(str(row["test_set"]), {})[str(row["metric"])] = entry
    return out


def learning_curve_by_test_set(curve: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """learning_curve.csv's mean `metric` as one column per test set against `level` (the share), for
    `dvc plots` (which draws one line per column, not per group of rows); the intervals stay in
    learning_curve.csv."""
    rows = curve[curve["metric"] == metric] if len(curve) else curve
    if not len(rows):
        return pd.DataFrame(columns=["level"])
    wide = rows.pivot(index="level", columns="test_set", values="mean").sort_index()
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index()
