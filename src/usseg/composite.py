"""The one composite score of a model on a test set, defined here and nowhere else.

**Class-macro mean Dice** (`NAME`): the mean over the composite's classes of
each class's subject-level Dice (usseg.evaluate's headline: per subject, the
mean over its frames where the class is in the reference or predicted; then
the mean over subjects). The composite's classes (`composite_classes`) are
those in the reference masks of at least MIN_SUBJECTS_PER_CLASS subjects on
every test set of the run (every subject, on a test set with fewer), so every
test set and every model is scored on the same organs, and no organ seen in
one or two subjects decides it.

Why not each subject's mean over the classes it has: subjects hold different
organs (one liver, kidney and spleen, another liver, gallbladder, kidney and
vessels), so that mean averages a different set of organs per subject and
disagrees with the per-class table.

Interval. The class-macro mean is linear in the subject values:
M = (1/K) sum_k (1/n_k) sum_{s in S_k} d_sk, where S_k are the n_k subjects
scored for class k. Each subject's term

    psi_s = M + (1/K) sum_{k : s in S_k} (n / n_k) (d_sk - m_k)

(m_k the class's mean) averages to M exactly over the n subjects, and the t
interval on the terms is the delta-method (influence-function) interval of M.
When every subject has every class, psi_s is the subject's mean over the
classes. A paired change (a remedy against the baseline on the same subjects)
is the mean of the per-subject differences of the two models' terms, each
computed on the subjects both models scored (`paired_terms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from usseg import intervals

NAME = "class-macro mean Dice"
# A class enters the composite when at least this many subjects of every test set
# have it in their reference (every subject of a test set with fewer): the least
# from which a class's own interval is given (usseg.intervals).
MIN_SUBJECTS_PER_CLASS = intervals.MIN_SUBJECTS_FOR_INTERVAL


def definition(classes: Sequence[str], test_sets: Sequence[str]) -> str:
    """The composite's definition in words, naming its classes and test sets."""
    over = ", ".join(classes) if classes else "no class"
    return (f"{NAME}: the mean over classes ({over}: those in the reference of at least "
            f"{MIN_SUBJECTS_PER_CLASS} subjects of every test set, {', '.join(test_sets)}) of each class's "
            "subject-level Dice; its interval is the t interval on each subject's term of that mean "
            "(docs/experiments.md)")


def composite_classes(subjects_with_class: Mapping[str, Mapping[str, int]],
                      subjects_per_test_set: Mapping[str, int], classes: Iterable[str]) -> list[str]:
    """The classes (in the order of `classes`) in the composite.

    subjects_with_class: test set -> class -> number of subjects with the
    class in their reference; subjects_per_test_set: test set -> its subjects.
    """
    out = []
    for c in classes:
        if all(subjects_with_class[ts].get(c, 0) >= max(1, min(MIN_SUBJECTS_PER_CLASS, n))
               for ts, n in subjects_per_test_set.items()):
            out.append(c)
    return out


def subject_terms(values: pd.DataFrame) -> pd.Series:
    """Each subject's term psi_s of the class-macro mean (module docstring); their mean is the composite.

    values: one row per subject (index: subject id), one column per
    composite class, NaN where the subject has no scored frame of the class.
    A subject with no value at all gets no term (NaN).
    """
    v = values.to_numpy(dtype=np.float64)
    has = np.isfinite(v)
    counts = has.sum(axis=0)
    if v.size == 0 or not counts.any():
        return pd.Series(np.nan, index=values.index, dtype=np.float64)
    scored = counts > 0
    v, has, counts = v[:, scored], has[:, scored], counts[scored]
    means = np.nansum(v, axis=0) / counts
    k = v.shape[1]
    rows = has.any(axis=1)
    n = int(rows.sum())
    deviations = np.where(has, (v - means) * (n / counts), 0.0)
    terms = means.mean() + deviations.sum(axis=1) / k
    return pd.Series(np.where(rows, terms, np.nan), index=values.index, dtype=np.float64)


def composite(values: pd.DataFrame) -> dict:
    """The class-macro mean of `values` (see subject_terms) with its interval.

    Returns usseg.intervals.subject_mean_interval's keys over the subjects'
    terms (estimate, n_subjects, ci95, ci_method, estimable, note, range,
    far_subjects), plus `name`. The estimate equals the mean over classes of
    the class means. No class: estimate None.
    """
    terms = subject_terms(values)
    iv = intervals.subject_mean_interval(terms.to_numpy(), subjects=[str(s) for s in terms.index])
    iv["ci_method"] = ("t interval on each subject's term of the class-macro mean (delta method; n-1 df), "
                       "clipped to [0, 1]")
    return {"name": NAME, **iv}


def paired_terms(base: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The two models' subject terms on the subjects both scored (index: subject), for a paired change.

    base, other: per-subject class values of the same composite classes
    (rows: subjects). Each model's terms are computed on the shared subjects
    only, so that each side's terms average to its composite on those subjects.
    """
    cols = [c for c in base.columns if c in other.columns]
    a, b = base[cols], other[cols]
    shared = [s for s in a.index if s in b.index and np.isfinite(a.loc[s].to_numpy(float)).any()
              and np.isfinite(b.loc[s].to_numpy(float)).any()]
    return subject_terms(a.loc[shared]), subject_terms(b.loc[shared])


def summary_values(summary: dict, classes: Sequence[str]) -> pd.DataFrame:
    """The per-subject class values of an evaluation summary.json (`per_subject`), restricted to
    `classes`: rows subjects (in the summary's order), NaN where a class is not scored."""
    per_subject = summary.get("per_subject") or {}
    rows = {s: [_number((v or {}).get(c)) for c in classes] for s, v in per_subject.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(classes), dtype=np.float64)


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
