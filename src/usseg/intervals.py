"""Confidence intervals for few subjects, and the simulation that measures their coverage.

The subject (patient) is the unit of evaluation: each subject contributes one
value (the mean over its images), and an interval is about the mean over
subjects. Test sets here have 4 to 20 subjects, where the usual percentile
bootstrap is too narrow: it resamples only the n values seen, ignores that
the spread itself is estimated, and covers about 80 % instead of 95 % at n = 4.

The method used is the Student t interval on the subject values (n - 1 degrees
of freedom), clipped to the metric's range. Its coverage is measured by
`coverage_table` (run `python -m usseg.intervals` to print it; the recorded
table is in docs/experiments.md) and checked by tests/test_intervals.py:
at least 90 % for a nominal 95 % from 3 subjects up, for the single-peaked
distributions of subject Dice used there, and reported (not promised) for the
hard cases: a mixture in which some subjects fail outright, and Welch
settings whose two sides differ in spread, shape and number of subjects.

Rules that hold for every interval usseg reports:

- fewer than MIN_SUBJECTS_FOR_INTERVAL subjects: no interval (estimable false);
- all subjects with the same value: no interval (a zero-width interval would
  claim a certainty that 3 or 4 subjects cannot give);
- every interval carries the per-subject minimum and maximum (`range`, with
  the subjects' names) and names any subject far from the others
  (`far_subjects`, `far_from_others`); `describe` shows the range beside an
  interval from fewer than RANGE_BELOW_SUBJECTS subjects, where the coverage
  table shows that one failing subject can leave the interval far off.

The simulator-to-real drop compares two different sets of subjects, so it
uses Welch's unpaired two-sample t interval (`difference_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95
# With 2 subjects the t interval has 1 degree of freedom (t = 12.7): it spans
# the whole Dice range and says nothing; 3 is the least that says something.
MIN_SUBJECTS_FOR_INTERVAL = 3

T_METHOD = "t interval on subject means (Student t, n-1 df), clipped to the metric's range"
WELCH_METHOD = "Welch unpaired two-sample t interval on subject means (different subjects in each test set)"


# Below this many subjects an interval is shown with the per-subject minimum
# and maximum (`describe`): the coverage table shows that with few subjects
# one failing subject can leave the interval far from the truth, and the range
# lets a reader see that subject.
RANGE_BELOW_SUBJECTS = 10
# A subject is "far from the others" when its distance from the median of the
# other subjects exceeds both FAR_MIN_DISTANCE (in the metric's units: Dice)
# and FAR_SPREAD_RATIO times the others' own largest distance from that
# median. Three subjects near 0.65 and one at 0.02: the one is 0.63 away, the
# others within 0.02 of each other, so it is named.
FAR_MIN_DISTANCE = 0.1
FAR_SPREAD_RATIO = 3.0


def no_interval_note(n: int) -> str:
    """The words shown in place of an interval that is not estimable from n subjects."""
    return f"n = {n} subject{'' if n == 1 else 's'}: no interval"


def t_half_width(sd: float, n: int, level: float = LEVEL) -> float:
    """Half the width of the t interval of a mean of n values with standard deviation sd."""
    return float(stats.t.ppf(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n))


def _finite(values, subjects) -> tuple[np.ndarray, list[str]]:
    """The finite values and their subjects' names (position numbers when no names are given)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    names = [str(s) for s in subjects] if subjects is not None else [f"subject {k + 1}" for k in range(v.size)]
    if len(names) != v.size:
        raise ValueError(f"{v.size} values but {len(names)} subject names")
    keep = np.isfinite(v)
    return v[keep], [n for n, k in zip(names, keep) if k]


def far_from_others(values, subjects=None, min_distance: float = FAR_MIN_DISTANCE,
                    ratio: float = FAR_SPREAD_RATIO) -> list[dict]:
    """Subjects far from the others: [{"subject", "value", "others_median"}], farthest first.

    A subject is far when |value - median of the others| exceeds both
    `min_distance` and `ratio` times the others' largest distance from their
    own median (needs MIN_SUBJECTS_FOR_INTERVAL subjects; NaN left out).
    """
    v, names = _finite(values, subjects)
    if v.size < MIN_SUBJECTS_FOR_INTERVAL:
        return []
    out = []
    for k in range(v.size):
        others = np.delete(v, k)
        centre = float(np.median(others))
        spread = float(np.max(np.abs(others - centre)))
        distance = abs(float(v[k]) - centre)
        if distance > min_distance and distance > ratio * spread:
            out.append({"subject": names[k], "value": float(v[k]), "others_median": centre,
                        "distance": distance})
    out.sort(key=lambda d: -d["distance"])
    return [{k: d[k] for k in ("subject", "value", "others_median")} for d in out]


def subject_range(values, subjects=None) -> dict | None:
    """{"min", "max", "min_subject", "max_subject"} of the finite values; None when there are none."""
    v, names = _finite(values, subjects)
    if not v.size:
        return None
    lo, hi = int(np.argmin(v)), int(np.argmax(v))
    return {"min": float(v[lo]), "max": float(v[hi]), "min_subject": names[lo], "max_subject": names[hi]}


def subject_mean_interval(values: Sequence[float], level: float = LEVEL,
                          bounds: tuple[float, float] = (0.0, 1.0), subjects: Sequence | None = None,
                          far_distance: float = FAR_MIN_DISTANCE) -> dict:
    """Mean of one value per subject with its t interval.

    Returns {"estimate", "n_subjects", "ci95" ([low, high] or None),
    "ci_method", "estimable", "note", "range", "far_subjects"}; NaN values (a
    subject without the class) are left out. `bounds` clip the interval to the
    metric's range; `subjects` name the values (for `range` and
    `far_subjects`, see far_from_others; `far_distance` in the metric's units).
    """
    v, names = _finite(values, subjects)
    n = int(v.size)
    out = {"estimate": float(v.mean()) if n else None, "n_subjects": n, "ci95": None, "ci_method": T_METHOD,
           "estimable": False, "note": "", "range": subject_range(v, names),
           "far_subjects": far_from_others(v, names, min_distance=far_distance)}
    if n < MIN_SUBJECTS_FOR_INTERVAL:
        out["note"] = no_interval_note(n)
        return out
    sd = float(v.std(ddof=1))
    if np.ptp(v) == 0.0:  # exactly equal values (std would show rounding noise)
        out["note"] = f"all {n} subjects have the same value: no interval (it would have zero width)"
        return out
    half = t_half_width(sd, n, level)
    out["ci95"] = [max(bounds[0], out["estimate"] - half), min(bounds[1], out["estimate"] + half)]
    out["estimable"] = True
    return out


def difference_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL,
                        subjects_a: Sequence | None = None, subjects_b: Sequence | None = None) -> dict:
    """mean(a) - mean(b) for two independent sets of subjects, with Welch's t interval.

    Returns {"estimate", "n_a", "n_b", "ci95", "ci_method", "estimable", "note",
    "range_a", "range_b", "far_a", "far_b"}; needs MIN_SUBJECTS_FOR_INTERVAL
    subjects on each side and some spread.
    """
    a, names_a = _finite(a, subjects_a)
    b, names_b = _finite(b, subjects_b)
    out = {"estimate": float(a.mean() - b.mean()) if a.size and b.size else None, "n_a": int(a.size),
           "n_b": int(b.size), "ci95": None, "ci_method": WELCH_METHOD, "estimable": False, "note": "",
           "range_a": subject_range(a, names_a), "range_b": subject_range(b, names_b),
           "far_a": far_from_others(a, names_a), "far_b": far_from_others(b, names_b)}
    n_min = min(a.size, b.size)
    if n_min < MIN_SUBJECTS_FOR_INTERVAL:
        out["note"] = no_interval_note(int(n_min))
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if np.ptp(a) == 0.0 and np.ptp(b) == 0.0:
        out["note"] = "every subject has the same value on both sides: no interval (it would have zero width)"
        return out
    df = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + level / 2.0, df) * math.sqrt(se2)
    out["ci95"] = [max(-1.0, out["estimate"] - half), min(1.0, out["estimate"] + half)]
    out["estimable"] = True
    return out


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def range_text(rng: dict | None, digits: int = 2) -> str:
    """'subjects 0.00 (ct12) to 0.96 (ct10)': the per-subject minimum and maximum with their names."""
    if not rng:
        return ""
    if rng["min"] == rng["max"]:
        return f"every subject {_num(rng['min'], digits)}"
    return (f"subjects {_num(rng['min'], digits)} ({rng['min_subject']}) to "
            f"{_num(rng['max'], digits)} ({rng['max_subject']})")


def far_text(far: list[dict], digits: int = 2) -> str:
    """'ct12 (0.00) is far from the others (median 0.95)' for each subject far from the others."""
    return "; ".join(f"{f['subject']} ({_num(f['value'], digits)}) is far from the others (median "
                     f"{_num(f['others_median'], digits)})" for f in far)


def describe_parts(iv: dict, digits: int = 2) -> tuple[str, str]:
    """('estimate [low, high]', 'n subjects; range; far subjects') of an interval result (see describe)."""
    est = iv.get("estimate")
    n = int(iv.get("n_subjects") or 0)
    if est is None:
        return "n/a", iv.get("note") or no_interval_note(n)
    ci = iv.get("ci95")
    head = _num(est, digits)
    head += (f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]" if ci else f" ({iv.get('note') or 'no interval'})")
    parts = [f"{n} subject{'' if n == 1 else 's'}"]
    if 1 < n < RANGE_BELOW_SUBJECTS and iv.get("range"):
        parts.append(range_text(iv["range"], digits))
    if iv.get("far_subjects"):
        parts.append(far_text(iv["far_subjects"], digits))
    return head, "; ".join(parts)


def describe(iv: dict, digits: int = 2) -> str:
    """An interval result as words: 'estimate [low, high], n subjects', with the range below
    RANGE_BELOW_SUBJECTS subjects and any subject far from the others named.

    Accepts a subject_mean_interval result (or any dict with its keys).
    """
    head, tail = describe_parts(iv, digits)
    return f"{head}, {tail}" if iv.get("estimate") is not None else f"{head} ({tail})"


# ----------------------------------------------------------------------------- coverage by simulation

# Distributions of a subject's Dice, named as in the docs' coverage table:
# (sampler(rng, shape), true mean). Beta shapes cover a good model (mass near
# 1, skewed left), a middling one, a poor one (skewed right) and a flat one.
DISTRIBUTIONS: dict[str, tuple[Callable, float]] = {
    "Beta(8, 2)": (lambda rng, shape: rng.beta(8, 2, shape), 0.8),
    "Beta(4, 4)": (lambda rng, shape: rng.beta(4, 4, shape), 0.5),
    "Beta(2, 5)": (lambda rng, shape: rng.beta(2, 5, shape), 2 / 7),
    "Uniform(0, 1)": (lambda rng, shape: rng.uniform(0, 1, shape), 0.5),
}


def _failing_mixture(fail_share: float, good: tuple[float, float], bad: tuple[float, float]) -> tuple[Callable, float]:
    """A population where a share of subjects fails outright: Beta(good) with probability
    1 - fail_share, else Beta(bad); (sampler, true mean)."""
    def sampler(rng, shape):
        return np.where(rng.random(shape) < fail_share, rng.beta(*bad, shape), rng.beta(*good, shape))

    mean = (1 - fail_share) * good[0] / sum(good) + fail_share * bad[0] / sum(bad)
    return sampler, mean


# Beta(369, 199): mean 0.65, SD 0.02; Beta(3.9, 191): mean 0.02, SD 0.01; Beta(180, 10): mean 0.95, SD 0.016.
NEAR_065, NEAR_002, NEAR_095 = (369, 199), (3.9, 191), (180, 10)

# Hard cases, reported beside them and not promised: populations in which some
# subjects fail outright. The demo's own pattern is the second: three subjects
# near 0.65 and one at 0.02 (liver on test_rus; ct12 on test_aus is the same
# pattern near 0.95).
HARD_DISTRIBUTIONS: dict[str, tuple[Callable, float]] = {
    "mixture 75 % Beta(8, 2), 25 % Beta(1, 9)": _failing_mixture(0.25, (8, 2), (1, 9)),
    "demo pattern: 75 % near 0.65, 25 % fail near 0.02": _failing_mixture(0.25, NEAR_065, NEAR_002),
    "10 % fail: 90 % near 0.65, 10 % near 0.02": _failing_mixture(0.10, NEAR_065, NEAR_002),
}

# Welch settings whose two sides differ (the simulator-to-real drop): name ->
# (side a's distribution, side b's distribution, subjects on side a as a
# function of the column's n, which is side b's). The `welch` method rows of
# the table are the symmetric case (b = a halved, the same n).
_SIDES = {**DISTRIBUTIONS, **HARD_DISTRIBUTIONS,
          "near 0.95 (SD 0.016)": (lambda rng, shape: rng.beta(*NEAR_095, shape), NEAR_095[0] / sum(NEAR_095)),
          "demo pattern near 0.95: 75 % near 0.95, 25 % fail near 0.02": _failing_mixture(0.25, NEAR_095, NEAR_002)}
WELCH_SETTINGS: dict[str, tuple[str, str, Callable[[int], int]]] = {
    "a: near 0.95 (SD 0.016), n; b: Uniform(0, 1), n": ("near 0.95 (SD 0.016)", "Uniform(0, 1)", lambda n: n),
    "a: Beta(8, 2), 12 subjects; b: Beta(2, 5), n": ("Beta(8, 2)", "Beta(2, 5)", lambda n: 12),
    "a: Beta(8, 2), n; b: demo pattern, n": ("Beta(8, 2)", "demo pattern: 75 % near 0.65, 25 % fail near 0.02",
                                             lambda n: n),
    "demo drop: a: 75 % near 0.95, 25 % fail, n; b: demo pattern, n": (
        "demo pattern near 0.95: 75 % near 0.95, 25 % fail near 0.02",
        "demo pattern: 75 % near 0.65, 25 % fail near 0.02", lambda n: n),
}


def t_intervals(samples: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """(n_sims, 2) t intervals of the rows of `samples` (n_sims, n), clipped to [0, 1]; vectorised."""
    n = samples.shape[1]
    mean = samples.mean(axis=1)
    half = stats.t.ppf(0.5 + level / 2.0, n - 1) * samples.std(axis=1, ddof=1) / math.sqrt(n)
    return np.column_stack([np.maximum(0.0, mean - half), np.minimum(1.0, mean + half)])


def percentile_bootstrap_intervals(samples: np.ndarray, rng: np.random.Generator, n_resamples: int = 400,
                                   level: float = LEVEL) -> np.ndarray:
    """(n_sims, 2) percentile-bootstrap intervals of the rows of `samples` (the method usseg used before)."""
    n_sims, n = samples.shape
    draws = rng.integers(0, n, size=(n_sims, n_resamples, n))
    means = np.take_along_axis(samples[:, None, :], draws, axis=2).mean(axis=2)
    alpha = (1.0 - level) / 2.0
    return np.quantile(means, [alpha, 1.0 - alpha], axis=1).T


def welch_intervals(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """(n_sims, 2) Welch intervals of mean(a) - mean(b), rows of a (n_sims, n_a) and b (n_sims, n_b)."""
    va = a.var(axis=1, ddof=1) / a.shape[1]
    vb = b.var(axis=1, ddof=1) / b.shape[1]
    se2 = va + vb
    with np.errstate(invalid="ignore", divide="ignore"):
        df = se2**2 / (va**2 / (a.shape[1] - 1) + vb**2 / (b.shape[1] - 1))
        half = stats.t.ppf(0.5 + level / 2.0, df) * np.sqrt(se2)
    diff = a.mean(axis=1) - b.mean(axis=1)
    return np.column_stack([diff - half, diff + half])


def _covered(ci: np.ndarray, truth: float) -> float:
    """Share of intervals containing the truth; a NaN interval (no spread at all) counts as a miss."""
    return float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1])))


def coverage(method: str, sampler: Callable, true_mean: float, n_subjects: int, n_sims: int,
             seed: int = 0, level: float = LEVEL) -> float:
    """Share of n_sims simulated test sets whose interval contains the true mean.

    method: "t" (usseg's), "percentile_bootstrap" (the old one) or "welch"
    (the drop: two independent test sets of n_subjects each, one from
    `sampler` and one from the same scaled by 0.5, true difference half the mean).
    """
    rng = np.random.default_rng(seed)
    samples = sampler(rng, (n_sims, n_subjects))
    if method == "t":
        ci = t_intervals(samples, level)
    elif method == "percentile_bootstrap":
        ci = percentile_bootstrap_intervals(samples, rng, level=level)
    elif method == "welch":
        other = sampler(rng, (n_sims, n_subjects)) * 0.5
        ci = welch_intervals(samples, other, level)
        true_mean = true_mean - 0.5 * true_mean
    else:
        raise ValueError(f"unknown interval method {method!r}")
    return _covered(ci, true_mean)


def welch_setting_coverage(setting: str, n_subjects: int, n_sims: int, seed: int = 0, level: float = LEVEL) -> float:
    """Coverage of Welch's interval in one of WELCH_SETTINGS, side b with n_subjects subjects."""
    name_a, name_b, n_a_of = WELCH_SETTINGS[setting]
    (sample_a, mean_a), (sample_b, mean_b) = _SIDES[name_a], _SIDES[name_b]
    rng = np.random.default_rng(seed)
    a = sample_a(rng, (n_sims, n_a_of(n_subjects)))
    b = sample_b(rng, (n_sims, n_subjects))
    return _covered(welch_intervals(a, b, level), mean_a - mean_b)


COVERAGE_SUBJECTS = (3, 4, 5, 8, 10, 20)


def coverage_table(methods: Sequence[str] = ("t", "percentile_bootstrap", "welch"),
                   subjects: Sequence[int] = COVERAGE_SUBJECTS, n_sims: int = 4000,
                   distributions: dict | None = None, welch_settings: Sequence[str] | None = None) -> list[dict]:
    """One row per (method, distribution) and per asymmetric Welch setting: the measured coverage at
    each number of subjects, and whether the row is a hard case (`hard`: not promised)."""
    dists = distributions if distributions is not None else {**DISTRIBUTIONS, **HARD_DISTRIBUTIONS}
    settings = list(WELCH_SETTINGS) if welch_settings is None else list(welch_settings)
    rows = []
    for method in methods:
        for name, (sampler, mean) in dists.items():
            row = {"method": method, "distribution": name, "hard": name not in DISTRIBUTIONS}
            for k, n in enumerate(subjects):
                row[n] = coverage(method, sampler, mean, n, n_sims, seed=k)
            rows.append(row)
    for name in settings:
        row = {"method": "welch", "distribution": name, "hard": True}
        for k, n in enumerate(subjects):
            row[n] = welch_setting_coverage(name, n, n_sims, seed=k)
        rows.append(row)
    return rows


def worst_cell(rows: list[dict], methods: Sequence[str] = ("t", "welch"),
               subjects: Sequence[int] = COVERAGE_SUBJECTS) -> dict:
    """The lowest coverage among the rows of `methods` (the ones usseg uses): {method, distribution, n, coverage}."""
    cells = [(r[n], r["method"], r["distribution"], n) for r in rows if r["method"] in methods for n in subjects]
    cov, method, dist, n = min(cells)
    return {"method": method, "distribution": dist, "n": n, "coverage": cov}


def main() -> None:
    """Print the coverage table (Markdown) recorded in docs/experiments.md, and its worst cell."""
    rows = coverage_table()
    print("| method | subject Dice drawn from | " + " | ".join(f"{n} subjects" for n in COVERAGE_SUBJECTS) + " |")
    print("|---|---|" + "---|" * len(COVERAGE_SUBJECTS))
    for r in rows:
        print(f"| {r['method']} | {r['distribution']}{' (hard case)' if r['hard'] else ''} | "
              + " | ".join(f"{100 * r[n]:.1f} %" for n in COVERAGE_SUBJECTS) + " |")
    w = worst_cell(rows)
    print(f"\nWorst cell of the intervals usseg reports (t, welch): {100 * w['coverage']:.1f} % "
          f"({w['method']}, {w['distribution']}, {w['n']} subjects).")
    promised = [r for r in rows if not r["hard"]]
    w = worst_cell(promised)
    print(f"Worst single-peaked cell: {100 * w['coverage']:.1f} % ({w['method']}, {w['distribution']}, "
          f"{w['n']} subjects).")


if __name__ == "__main__":
    main()
