"""Statistics of the gap study (pure functions of subject-level scores; NumPy/SciPy/pandas only).

The subject (patient) is the unit throughout: frames of one subject are near
copies, so every interval here is over subjects, never over images. Every arm
of the study (baseline, each remedy, each LOSO fold, each learning-curve share)
is trained with several seeds, so a model's score is a subjects x seeds table.

- `seeded_delta`: an arm against the baseline on the SAME test subjects, with
  training noise. Per subject the scores are averaged over seeds, then
  ``d_i = remedy_i - baseline_i``; per seed offset k the effect
  ``D_k = mean_i (remedy_ik - baseline_ik)``. The interval is
  ``mean(d) +- t_{1-alpha/2, df} * sqrt(var(d) / n + var(D) / S)``, df by
  Welch-Satterthwaite from (n - 1, S - 1): the subject term alone (the paired
  t-interval) misses the part of training noise every subject shares (a bad
  seed is bad on every subject), which only the spread of D_k over seeds shows.
  The sum counts the seed-by-subject noise twice, so the interval errs wide.
  No interval with fewer than 3 subjects or fewer than 2 seeds.
- `paired_delta`: the subject-only paired t-interval (one score per subject).
- `seeded_power`, `minimum_detectable_change`, `subjects_needed`,
  `when_to_stop_kind` ("when to stop"): power of the two-sided test of that
  interval, from the noncentral t distribution,
  ``power = P(|T| > t_crit)``, ``T ~ t'(df, nc = delta / se)``; with no seed
  term it is the exact power of the paired t-test (df = n - 1). A range of
  subjects needed from the chi-square interval of the subject SD.
- `learning_curve_splits`: nested split tables over a share of the simulator's
  training subjects; `learning_curve_summary`: one row per training-set size,
  the mean over test subjects with a seeds-included interval and the step from
  the previous size (`seeded_delta`).
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

from usseg.contracts import GAP_CLOSURE_COLUMNS, LEARNING_CURVE_COLUMNS, SEED_EFFECT_COLUMNS
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
SEEDED_METHOD = "t-interval over subjects and seeds (Welch-Satterthwaite df)"
NO_SEED_INTERVAL = "none (one seed: training noise not measured)"
# Fewer seeds than this: the spread between trainings is unknown, so no interval can include it.
MIN_SEEDS_FOR_INTERVAL = 2

LOSO_FIRST_COLUMN = "held_out_subject"
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


# ----------------------------------------------------------------------------- with seeds


def _matrix(values, name: str) -> pd.DataFrame:
    """A subjects x seeds table of one arm's scores (index: subject ids as text; columns: seed offsets)."""
    if isinstance(values, pd.Series):
        values = values.to_frame(0)
    if not isinstance(values, pd.DataFrame):
        raise TypeError(f"{name}: give a DataFrame of subjects (index) x seeds (columns)")
    m = values.copy()
    m.index = m.index.map(str)
    if m.index.has_duplicates:
        dup = sorted(set(m.index[m.index.duplicated()]))
        raise ValueError(f"{name}: subject(s) {', '.join(dup[:5])} appear more than once; give one row per subject.")
    if m.shape[1] == 0:
        raise ValueError(f"{name}: no seed column; give one column per trained seed.")
    return m.astype(float)


def satterthwaite_df(parts: Sequence[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance terms [(variance, its df), ...]."""
    total = sum(v for v, _ in parts)
    den = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    if total <= 0 or den <= 0:
        positive = [df for _, df in parts if df > 0]
        return float(min(positive)) if positive else math.nan
    return float(total * total / den)


def _seeded_half_width(var_subject: float, n: int, var_seed: float, n_seeds: int,
                       confidence: float) -> tuple[float, float]:
    """(half width, df) of the seeds-included interval of a mean (see the module docstring)."""
    from scipy import stats

    parts = [(var_subject / n, n - 1), (var_seed / n_seeds, n_seeds - 1)]
    df = satterthwaite_df(parts)
    se = math.sqrt(sum(v for v, _ in parts))
    return float(stats.t.ppf(0.5 + confidence / 2, df) * se), df


@dataclass(frozen=True)
class SeededDelta:
    """An arm against the baseline over subjects and seeds: value - baseline, with its interval."""

    baseline: float  # mean over the paired subjects of the baseline's seed-averaged scores
    value: float  # the same for the arm
    delta: float  # mean of the per-subject differences of seed-averaged scores (= value - baseline)
    ci_lo: float
    ci_hi: float
    n_subjects: int
    n_seeds: int
    seed_sd: float  # SD over seed offsets of the per-seed effect D_k (NaN with one seed)
    sd_subject: float  # SD over subjects of the seed-averaged differences (NaN with fewer than 2)
    df: float  # the interval's Welch-Satterthwaite degrees of freedom (NaN without interval)
    method: str
    seed_deltas: tuple[float, ...]  # D_k, one per seed offset (mean over the paired subjects)
    subjects: tuple[str, ...]


def seeded_delta(baseline, arm, confidence: float = CONFIDENCE) -> SeededDelta:
    """An arm's subjects x seeds scores against the baseline's (module docstring: the interval).

    Both tables must hold the same subjects and the same seed offsets. A subject
    whose seed-averaged score is NaN under either arm (no class scored) is left
    out of the pair and of n_subjects.
    """
    base, new = _matrix(baseline, "baseline scores"), _matrix(arm, "arm scores")
    only = sorted(set(base.index) ^ set(new.index))
    if only:
        raise ValueError(
            f"paired comparison: subject(s) {', '.join(only[:5])} are scored by only one of the two arms; "
            "evaluate both on the same test subjects."
        )
    if sorted(base.columns) != sorted(new.columns):
        raise ValueError(f"paired comparison: the arms have different seeds ({sorted(base.columns)} and "
                         f"{sorted(new.columns)}); train both with gap_study.seeds seeds.")
    new = new.reindex(index=base.index, columns=base.columns)
    with np.errstate(all="ignore"):
        b_mean = np.nanmean(base.to_numpy(), axis=1) if len(base) else np.array([])
        v_mean = np.nanmean(new.to_numpy(), axis=1) if len(new) else np.array([])
    ok = np.isfinite(b_mean) & np.isfinite(v_mean)
    d = v_mean[ok] - b_mean[ok]
    n, n_seeds = int(ok.sum()), int(base.shape[1])
    with np.errstate(all="ignore"):
        per_seed = np.nanmean(new.to_numpy()[ok] - base.to_numpy()[ok], axis=0) if n else np.full(n_seeds, math.nan)
    delta = float(d.mean()) if n else math.nan
    sd_subject = float(d.std(ddof=1)) if n >= 2 else math.nan
    seed_sd = float(np.std(per_seed, ddof=1)) if n_seeds >= MIN_SEEDS_FOR_INTERVAL and n else math.nan
    lo = hi = df = math.nan
    if n < MIN_SUBJECTS_FOR_INTERVAL:
        method = NO_INTERVAL
    elif n_seeds < MIN_SEEDS_FOR_INTERVAL:
        method = NO_SEED_INTERVAL
    else:
        half, df = _seeded_half_width(sd_subject**2, n, seed_sd**2, n_seeds, confidence)
        lo, hi, method = delta - half, delta + half, SEEDED_METHOD
    return SeededDelta(
        baseline=float(b_mean[ok].mean()) if n else math.nan, value=float(v_mean[ok].mean()) if n else math.nan,
        delta=delta, ci_lo=lo, ci_hi=hi, n_subjects=n, n_seeds=n_seeds, seed_sd=seed_sd, sd_subject=sd_subject,
        df=df, method=method, seed_deltas=tuple(float(x) for x in per_seed), subjects=tuple(base.index[ok]),
    )


def seeded_mean(scores, confidence: float = CONFIDENCE) -> dict:
    """One arm's mean over subjects of its seed-averaged scores, with the seeds-included interval:
    {mean, ci_lo, ci_hi, n_subjects, n_seeds, seed_sd (SD over seeds of the per-seed mean)}."""
    m = _matrix(scores, "scores")
    with np.errstate(all="ignore"):
        per_subject = np.nanmean(m.to_numpy(), axis=1) if len(m) else np.array([])
    ok = np.isfinite(per_subject)
    x, n, n_seeds = per_subject[ok], int(ok.sum()), int(m.shape[1])
    with np.errstate(all="ignore"):
        per_seed = np.nanmean(m.to_numpy()[ok], axis=0) if n else np.full(n_seeds, math.nan)
    seed_sd = float(np.std(per_seed, ddof=1)) if n_seeds >= MIN_SEEDS_FOR_INTERVAL and n else math.nan
    mean = float(x.mean()) if n else math.nan
    lo = hi = math.nan
    if n >= MIN_SUBJECTS_FOR_INTERVAL and n_seeds >= MIN_SEEDS_FOR_INTERVAL:
        half, _ = _seeded_half_width(float(x.var(ddof=1)), n, seed_sd**2, n_seeds, confidence)
        lo, hi = mean - half, mean + half
    return {"mean": mean, "ci_lo": lo, "ci_hi": hi, "n_subjects": n, "n_seeds": n_seeds, "seed_sd": seed_sd}


# ----------------------------------------------------------------------------- when to stop


def _power(delta: float, sd_subject: float, n, sd_seed: float, n_seeds: int, alpha: float) -> np.ndarray:
    """seeded_power for an array of subject counts n (each >= 2), vectorised."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    seed_var = sd_seed**2 / n_seeds if n_seeds >= MIN_SEEDS_FOR_INTERVAL and np.isfinite(sd_seed) else 0.0
    c1 = sd_subject**2 / n
    se = np.sqrt(c1 + seed_var)
    with np.errstate(all="ignore"):
        den = c1**2 / (n - 1) + (seed_var**2 / (n_seeds - 1) if seed_var > 0 else 0.0)
        df = np.where(den > 0, (c1 + seed_var) ** 2 / np.where(den > 0, den, 1.0), n - 1)
        crit = stats.t.ppf(1 - alpha / 2, df)
        nc = np.where(se > 0, abs(delta) / np.where(se > 0, se, 1.0), 0.0)
        upper = stats.nct.sf(crit, df, nc)
        # P(T < -crit): negligible for large nc, where SciPy's nct.cdf can return NaN.
        lower = np.nan_to_num(stats.nct.cdf(-crit, df, nc), nan=0.0)
    return np.where(se > 0, upper + lower, 1.0 if delta != 0 else alpha)


def seeded_power(delta: float, sd_subject: float, n: int, sd_seed: float = 0.0, n_seeds: int = 1,
                 alpha: float = ALPHA) -> float:
    """Power of the two-sided test of the seeds-included interval (n subjects, n_seeds seeds) to detect a
    mean change `delta`. sd_subject: SD of the per-subject differences of seed-averaged scores; sd_seed:
    SD of the per-seed effect (ignored with fewer than 2 seeds). Without a seed term this is the exact
    power of the paired t-test (df = n - 1). With one, the Welch-Satterthwaite df falls towards
    n_seeds - 1 as subjects are added, so the power can dip slightly before its limit."""
    if n < 2 or not np.isfinite(sd_subject) or sd_subject < 0:
        return math.nan
    return float(_power(delta, sd_subject, [n], sd_seed, n_seeds, alpha)[0])


def paired_power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n subjects to detect a mean change `delta`."""
    return seeded_power(delta, sd, n, alpha=alpha)


def minimum_detectable_change(n_subjects: int, sd: float, alpha: float = ALPHA, power: float = POWER,
                              sd_seed: float = 0.0, n_seeds: int = 1) -> float:
    """The smallest mean change the test on n subjects (and n_seeds seeds) detects with the given power.

    sd: the SD of the per-subject differences between the two models (see
    `sd_of_differences` when only the between-subject SD of the score is known).
    NaN with fewer than 2 subjects or an unknown SD.
    """
    from scipy import optimize

    if n_subjects < 2 or not np.isfinite(sd) or sd < 0:
        return math.nan
    def gap(d):
        return seeded_power(d, sd, n_subjects, sd_seed, n_seeds, alpha) - power

    hi = max(sd, sd_seed if np.isfinite(sd_seed) else 0.0)
    if hi == 0:
        return 0.0
    while gap(hi) < 0:
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-9))


def subjects_needed(change: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                    max_subjects: int = 100_000, sd_seed: float = 0.0, n_seeds: int = 1) -> int | None:
    """The fewest paired subjects (>= 2) from which on a mean change `change` is detected with `power`.

    None when the SD is unknown, the change is 0, no count up to max_subjects reaches `power`, or the
    seeds' spread keeps the power below it with unlimited subjects (`seed_floor`). With a seed term
    the power is not monotone in n: as subjects are added the seed term's share grows and the
    Welch-Satterthwaite df falls towards n_seeds - 1, so the power can peak above its limit. A count
    that only reaches `power` on such a peak (adding subjects would lose it) is no plan: then None.
    """
    if not np.isfinite(sd) or sd < 0 or change == 0:
        return None
    if seeded_power(change, 0.0, 2, sd_seed, n_seeds, alpha) < power:  # the limit of unlimited subjects
        return None
    start = 2
    for stop in (1_000, 10_000, max_subjects + 1):
        ns = np.arange(start, min(stop, max_subjects + 1))
        if ns.size:
            hits = np.flatnonzero(_power(change, sd, ns, sd_seed, n_seeds, alpha) >= power)
            if hits.size:
                return int(ns[hits[0]])
        start = stop
    return None


def seed_floor(sd_seed: float, n_seeds: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest change detectable with `power` however many subjects, given the seeds' spread:
    below it, more seeds (not more subjects) are needed. NaN with fewer than 2 seeds."""
    if n_seeds < MIN_SEEDS_FOR_INTERVAL or not np.isfinite(sd_seed):
        return math.nan
    return minimum_detectable_change(2, 0.0, alpha, power, sd_seed, n_seeds)


def sd_interval(sd: float, df: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The chi-square confidence interval of an SD estimated with df degrees of freedom."""
    from scipy import stats

    if not (np.isfinite(sd) and np.isfinite(df) and df > 0):
        return math.nan, math.nan
    a = (1 - confidence) / 2
    return (float(sd * math.sqrt(df / stats.chi2.ppf(1 - a, df))),
            float(sd * math.sqrt(df / stats.chi2.ppf(a, df))))


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


def pooled_sd(deltas: Sequence) -> float:
    """Pooled SD of the per-subject differences of several comparisons (weights n - 1); NaN if none has
    2 subjects. Each comparison: a PairedDelta (sd_diff) or a SeededDelta (sd_subject)."""
    pairs = [(d.n_subjects - 1, getattr(d, "sd_subject", getattr(d, "sd_diff", math.nan))) for d in deltas]
    pairs = [(w, sd) for w, sd in pairs if w >= 1 and np.isfinite(sd)]
    den = sum(w for w, _ in pairs)
    return math.sqrt(sum(w * sd**2 for w, sd in pairs) / den) if den else math.nan


def pooled_seed_sd(deltas: Sequence[SeededDelta]) -> tuple[float, int]:
    """(pooled SD of the per-seed effects, the seeds behind it) of several comparisons (weights S - 1)."""
    pairs = [(d.n_seeds - 1, d.seed_sd) for d in deltas if d.n_seeds >= MIN_SEEDS_FOR_INTERVAL
             and np.isfinite(d.seed_sd)]
    den = sum(w for w, _ in pairs)
    if not den:
        return math.nan, max((d.n_seeds for d in deltas), default=0)
    return math.sqrt(sum(w * sd**2 for w, sd in pairs) / den), max(d.n_seeds for d in deltas)


# The fewest labeled real subjects from which "when to stop" estimates anything: with 2, the SD of
# the differences rests on 1 degree of freedom and its 95 % interval spans a factor of about 70.
MIN_SUBJECTS_TO_SIZE = 3
KIND_TITLES = {"remedy": "a remedy (another training recipe)",
               "real_subjects": "adding labeled real subjects"}


def when_to_stop_kind(n_subjects: int, sd_subject: float, df_subject: float, sd_seed: float, n_seeds: int,
                      change: float = 0.05, alpha: float = ALPHA, power: float = POWER,
                      confidence: float = CONFIDENCE) -> dict:
    """What the labeled real subjects can show for one kind of change, with ranges.

    sd_subject: that kind's SD of the per-subject differences (df_subject degrees of freedom);
    sd_seed: its SD of the per-seed effect over n_seeds seeds. The minimum detectable change
    now and the subjects a change of `change` needs, each at the SD's point estimate and at
    the ends of its chi-square interval (`*_range`: the lowest and highest over that interval; a
    null upper end: not reachable, see `seed_floor`). The minimum detectable change is never
    below `seed_floor`. Not estimable with fewer than 3 subjects.
    """
    out = {"n_subjects": int(n_subjects), "n_seeds": int(n_seeds), "sd_subject": float(sd_subject),
           "df_subject": float(df_subject), "sd_seed": float(sd_seed), "sd_subject_ci95": [math.nan, math.nan],
           "change": change, "alpha": alpha, "power": power, "estimable": False, "why": "",
           "minimum_detectable_change": math.nan, "minimum_detectable_change_range": [math.nan, math.nan],
           "subjects_needed": None, "subjects_needed_range": [None, None],
           "seed_floor": seed_floor(sd_seed, n_seeds, alpha, power)}
    if n_subjects < MIN_SUBJECTS_TO_SIZE:
        out["why"] = (f"{n_subjects} labeled real subject(s): the spread between subjects cannot be estimated "
                      f"from fewer than {MIN_SUBJECTS_TO_SIZE}")
        return out
    if not np.isfinite(sd_subject):
        out["why"] = "no spread between subjects was measured for this kind of change"
        return out
    lo, hi = sd_interval(sd_subject, df_subject, confidence)
    args = {"alpha": alpha, "power": power, "sd_seed": sd_seed, "n_seeds": n_seeds}
    sds = (lo, sd_subject, hi)
    # Never below the seed floor: with a seed term the power at n subjects can exceed its limit (the
    # Welch-Satterthwaite df fall as subjects are added), and a change that more subjects would hide
    # again is not one the study can count on detecting.
    floor = out["seed_floor"] if np.isfinite(out["seed_floor"]) else 0.0
    mdc = [max(minimum_detectable_change(n_subjects, sd, **args), floor) for sd in sds]
    needed = [subjects_needed(change, sd, **args) for sd in sds]
    reached = [n for n in needed if n is not None]
    out.update(
        estimable=True, sd_subject_ci95=[lo, hi], minimum_detectable_change=mdc[1],
        # The ends over the SD's interval (with a seed term they need not come from its ends in order).
        minimum_detectable_change_range=[min(mdc), max(mdc)], subjects_needed=needed[1],
        subjects_needed_range=[min(reached) if reached else None, None if None in needed else max(reached)],
    )
    return out


def when_to_stop(n_subjects: int, sd: float, change: float = 0.05, alpha: float = ALPHA,
                 power: float = POWER) -> dict:
    """The subject-only sizing (one score per subject, no seeds): the minimum detectable change now and
    the subjects `change` needs, at the SD's point estimate."""
    return {
        "n_subjects": int(n_subjects),
        "sd_diff": float(sd),
        "alpha": alpha,
        "power": power,
        "minimum_detectable_change": minimum_detectable_change(n_subjects, sd, alpha, power),
        "change": change,
        "subjects_needed": subjects_needed(change, sd, alpha, power),
    }


def when_to_stop_kind_text(kind: str, r: Mapping) -> str:
    """One kind of change's "when to stop" in words, from a `when_to_stop_kind` result."""
    title = KIND_TITLES.get(kind, kind)
    if not r["estimable"]:
        return f"For {title}: cannot be estimated ({r['why']})."
    (mlo, mhi), (nlo, nhi), needed = r["minimum_detectable_change_range"], r["subjects_needed_range"], \
        r["subjects_needed"]
    seeded = r["n_seeds"] >= MIN_SEEDS_FOR_INTERVAL and np.isfinite(r["sd_seed"])
    seeds = (f" and {r['n_seeds']} seeds per arm (between-seed SD of the effect {r['sd_seed']:.3f})" if seeded
             else " (one seed per arm: training noise is not included)")
    top = f"{mhi:.3f}" if mhi <= 1 else "beyond the Dice range"
    span = (f" (from {mlo:.3f} to {top} over that interval)" if f"{mlo:.3f}" != f"{mhi:.3f}" else
            " (the seeds' spread sets it, whatever the subjects' SD)")
    text = (f"For {title}: with {r['n_subjects']} labeled real subjects{seeds}, the SD of the per-subject "
            f"differences is {r['sd_subject']:.3f} (95% CI {r['sd_subject_ci95'][0]:.3f} to "
            f"{r['sd_subject_ci95'][1]:.3f}), so the smallest detectable change in real-image Dice is "
            f"{r['minimum_detectable_change']:.3f}{span}. ")
    if needed is None and nlo is None:
        floor = (f" (with unlimited subjects the seeds' spread alone leaves {r['seed_floor']:.3f}: train more "
                 "seeds)" if seeded and np.isfinite(r["seed_floor"]) else "")
        return text + f"A change of {r['change']:.2f} cannot be shown with any number of subjects here{floor}."
    span = f"{nlo} to {nhi}" if nhi is not None else f"{nlo} to more than can be reached"
    return text + (f"A change of {r['change']:.2f} needs "
                   f"{'more than can be reached' if needed is None else needed} labeled real subjects "
                   f"({span} over that interval).")


def when_to_stop_text(result: Mapping) -> str:
    """The plain-language sentence of a subject-only `when_to_stop` result."""
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
                           value: str = "value", seed: str = "seed", confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per training-set size (`level`, ascending): the mean over test subjects of the seed-averaged
    scores with its seeds-included interval (`seeded_mean`), and the change from the previous size
    (step_*, `seeded_delta` on the subjects both sizes score; NaN on the first row).

    scores: long table, one row per (level, test subject, seed) with that model's subject-level score;
    without a `seed` column every row is one seed (then no interval: training noise is unmeasured).
    """
    missing = [c for c in (level, subject, value) if c not in scores.columns]
    if missing:
        raise ValueError(f"learning_curve_summary: column(s) {', '.join(missing)} missing from the scores table.")
    scores = scores if seed in scores.columns else scores.assign(**{seed: 0})
    rows = []
    previous = None
    for lvl, group in sorted(scores.groupby(level), key=lambda kv: kv[0]):
        if group.duplicated([subject, seed]).any():
            raise ValueError(f"learning curve level {lvl}: a subject appears more than once for one seed.")
        table = group.pivot(index=subject, columns=seed, values=value)
        table.index = table.index.map(str)
        at = seeded_mean(table, confidence)
        row = {"level": lvl, "mean": at["mean"], "ci_lo": at["ci_lo"], "ci_hi": at["ci_hi"],
               "n_subjects": at["n_subjects"], "step_delta": math.nan, "step_ci_lo": math.nan,
               "step_ci_hi": math.nan, "step_n_subjects": 0, "n_seeds": at["n_seeds"], "seed_sd": at["seed_sd"],
               "step_seed_sd": math.nan}
        if previous is not None:
            common = previous.index.intersection(table.index)
            step = seeded_delta(previous.loc[common], table.loc[common], confidence)
            row.update(step_delta=step.delta, step_ci_lo=step.ci_lo, step_ci_hi=step.ci_hi,
                       step_n_subjects=step.n_subjects, step_seed_sd=step.seed_sd)
        rows.append(row)
        previous = table
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


def gap_closure_row(remedy: str, test_set: str, metric: str, comparison) -> dict:
    """One row of gap_closure.csv from a comparison: a SeededDelta (or a one-score-per-subject PairedDelta,
    which is one seed)."""
    return {
        "remedy": remedy, "test_set": test_set, "metric": metric,
        "baseline": comparison.baseline, "value": comparison.value, "delta": comparison.delta,
        "ci_lo": comparison.ci_lo, "ci_hi": comparison.ci_hi, "n_subjects": comparison.n_subjects,
        "n_seeds": getattr(comparison, "n_seeds", 1), "seed_sd": getattr(comparison, "seed_sd", math.nan),
    }


def seed_effect_rows(remedy: str, test_set: str, metric: str, comparison: SeededDelta,
                     baseline: pd.DataFrame, arm: pd.DataFrame) -> list[dict]:
    """The rows of seed_effects.csv of one comparison: per seed offset, both arms' mean over the paired
    subjects and the effect D_k."""
    subjects = list(comparison.subjects)
    base, new = _matrix(baseline, "baseline scores"), _matrix(arm, "arm scores")
    out = []
    for k, effect in zip(base.columns, comparison.seed_deltas):
        out.append({"remedy": remedy, "test_set": test_set, "metric": metric, "seed": int(k),
                    "baseline": float(np.nanmean(base.loc[subjects, k])) if subjects else math.nan,
                    "value": float(np.nanmean(new.loc[subjects, k])) if subjects else math.nan,
                    "delta": float(effect)})
    return out


def seed_effect_table(rows: Sequence[Mapping]) -> pd.DataFrame:
    """seed_effects.csv: the contract's columns, sorted by remedy, test set, metric and seed."""
    df = pd.DataFrame(list(rows), columns=SEED_EFFECT_COLUMNS)
    return df.sort_values(["remedy", "test_set", "metric", "seed"], kind="stable").reset_index(drop=True)


def scalar_row(remedy: str, test_set: str, metric: str, baseline: float, value: float,
               ci: tuple[float, float] | None = None, n_subjects: int | None = None,
               n_seeds: int | None = None, seed_sd: float | None = None) -> dict:
    """A row for a quantity that is not a per-subject score (domain AUC, training seconds).

    ci: an interval of the delta when the quantity has one (else NaN); n_subjects, n_seeds and
    seed_sd: when known (else NaN, never a made-up count).
    """
    lo, hi = ci if ci is not None else (math.nan, math.nan)
    return {
        "remedy": remedy, "test_set": test_set, "metric": metric,
        "baseline": float(baseline), "value": float(value), "delta": float(value) - float(baseline),
        "ci_lo": lo, "ci_hi": hi, "n_subjects": n_subjects if n_subjects is not None else math.nan,
        "n_seeds": n_seeds if n_seeds is not None else math.nan,
        "seed_sd": seed_sd if seed_sd is not None else math.nan,
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
    """gap_closure.csv nested for `dvc metrics show` and `dvc metrics diff`: remedy -> test_set -> metric
    -> {baseline, value, delta, ci_lo, ci_hi, n_subjects, n_seeds, seed_sd}; no number is null."""
    out: dict = {}
    for row in closure.to_dict("records"):
        entry = {k: _json_number(row[k]) for k in ("baseline", "value", "delta", "ci_lo", "ci_hi")}
        for count in ("n_subjects", "n_seeds"):
            n = row[count]
            entry[count] = None if n is None or pd.isna(n) else int(n)
        entry["seed_sd"] = _json_number(row["seed_sd"])
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
