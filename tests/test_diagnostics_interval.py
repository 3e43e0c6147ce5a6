"""The domain classifier's AUC interval under random labels: how often does it exclude chance (AUC 0.5)?

At nominal 95 % it should exclude 0.5 in about 5 % of datasets where the domains do not differ; the
percentile bootstrap it replaced did so in about 15 %. Both tests simulate many small datasets at once
(vectorised), with subject effects that make a subject's frames correlated and unequal frame counts, in
the demo's layout (4 real vs 9 simulator subjects) and a balanced one. The bound asserted is 7 %.
"""

import numpy as np
import pytest

from usseg.diagnostics.domain_shift import (
    auc_interval,
    out_of_fold_scores,
    permutation_p,
    subject_folds,
    widen_by_null_spread,
)

MAX_FALSE_EXCLUSION = 0.07


def _layout(rng, n_target, n_source):
    n = n_target + n_source
    groups = np.repeat(np.arange(n), rng.integers(2, 7, n))
    return groups, n


def _excludes_chance(out) -> np.ndarray:
    return (out[..., 1] > 0.5) | (out[..., 2] < 0.5)


@pytest.mark.parametrize(
    "n_target, n_source, subject_sd", [(4, 9, 0.0), (4, 9, 1.0), (4, 9, 3.0), (10, 10, 1.0)]
)
def test_interval_excludes_chance_rarely_when_scores_ignore_the_domain(n_target, n_source, subject_sd):
    rng = np.random.default_rng(0)
    reps = 2000
    groups, n = _layout(rng, n_target, n_source)
    scores = rng.normal(0, subject_sd, (reps, n))[:, groups] + rng.normal(0, 1, (reps, groups.size))
    labels = (np.argsort(rng.uniform(size=(reps, n)), axis=1) < n_target)[:, groups]  # random subjects
    rate = _excludes_chance(auc_interval(scores, labels, groups)).mean()
    assert rate <= MAX_FALSE_EXCLUSION, rate


@pytest.mark.parametrize("n_target, n_source", [(4, 9), (10, 10)])
def test_whole_test_on_random_features_excludes_chance_rarely(n_target, n_source):
    """Folds, per-fold standardisation, the discriminant, pooled out-of-fold scores, the cluster-robust
    interval widened by the permutation spread. Without the widening the rate is about 9 % and 15 %."""
    rng = np.random.default_rng(1)
    reps = 300
    groups, n = _layout(rng, n_target, n_source)
    y = (np.arange(n) < n_target).astype(int)[groups]
    folds = subject_folds(y, groups, 4, 0)
    feats = rng.normal(0, 1, (reps, n, 5))[:, groups] + rng.normal(0, 1, (reps, groups.size, 5))
    plain, widened = [], []
    for x in feats:
        interval = auc_interval(out_of_fold_scores(x, y, folds)[:, 0], y, groups)
        _, null = permutation_p(x, y, groups, folds, interval[0], 100, int(rng.integers(1 << 30)))
        plain.append(interval)
        widened.append(widen_by_null_spread(interval, null))
    rate = _excludes_chance(np.array(widened)).mean()
    assert rate <= MAX_FALSE_EXCLUSION, rate
    assert _excludes_chance(np.array(plain)).mean() > rate  # the widening is what makes it honest


def test_permutation_p_is_uniform_enough_and_small_for_a_real_gap():
    rng = np.random.default_rng(2)
    groups, n = _layout(rng, 5, 8)
    y = (np.arange(n) < 5).astype(int)[groups]
    folds = subject_folds(y, groups, 4, 0)
    ps = []
    for _ in range(40):
        x = rng.normal(0, 1, (n, 4))[groups] + rng.normal(0, 1, (groups.size, 4))
        auc = auc_interval(out_of_fold_scores(x, y, folds)[:, 0], y, groups)[0]
        ps.append(permutation_p(x, y, groups, folds, auc, 99, 0)[0])
    assert np.mean(np.array(ps) < 0.05) <= 0.15  # 40 null datasets: about 2 expected below 0.05
    x = rng.normal(0, 1, (groups.size, 4)) + 2.0 * y[:, None]
    auc = auc_interval(out_of_fold_scores(x, y, folds)[:, 0], y, groups)[0]
    assert auc > 0.9 and permutation_p(x, y, groups, folds, auc, 99, 0)[0] == pytest.approx(0.01)
