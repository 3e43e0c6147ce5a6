"""The classifier two-sample test: can a subject-grouped, cross-validated linear classifier tell two domains apart?

Its out-of-fold AUC with an interval (widened by the permutation null's
spread, except at the permutation floor) and a subject-level permutation p-value; usseg.diagnostics.domain_shift
runs it on image features, usseg.remedies.domain_check on remedied images.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps
from scipy.special import comb
from sklearn.metrics import roc_curve
from sklearn.model_selection import StratifiedGroupKFold


def auc_interval(
    scores: np.ndarray, y: np.ndarray, groups: np.ndarray, level: float = 0.95
) -> np.ndarray:
    """AUC with a cluster-robust interval, vectorised over rows: (..., 3) of (auc, low, high).

    `scores` and `y` are (n,) or (R, n) (R datasets of n images each);
    `groups` (n,) names each image's subject. The variance is Obuchowski's
    (1997) for clustered data: DeLong's structural components summed per
    subject, so frames of one subject count as one unit. Each subject lies
    on one side only (a subject is either real or simulated), so the
    covariance term vanishes. The interval uses Student's t with one
    degree of freedom fewer than the smaller side's subjects; a normal
    quantile with 4 real subjects would exclude chance far too often
    (tests/test_diagnostics_interval.py measures the rate under random labels).
    With so few subjects that even a perfect separation of them is not
    significant (2 / C(subjects, subjects on one side) > 1 - level, e.g. 3
    vs 3), the interval is widened to include 0.5: no test on that many
    subjects can exclude chance.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    yy = np.broadcast_to(np.atleast_2d(np.asarray(y)).astype(bool), s.shape)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    onehot = np.zeros((codes.size, codes.max() + 1))
    onehot[np.arange(codes.size), codes] = 1.0
    n1 = yy.sum(axis=1).astype(float)
    n0 = yy.shape[1] - n1
    ranks = sps.rankdata(s, axis=1)
    rank_pos = sps.rankdata(np.where(yy, s, np.inf), axis=1)
    rank_neg = sps.rankdata(np.where(yy, np.inf, s), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        v10 = np.where(yy, (ranks - rank_pos) / n0[:, None], 0.0)  # negatives below each positive
        v01 = np.where(yy, 0.0, (n1[:, None] - (ranks - rank_neg)) / n1[:, None])  # positives above each negative
        auc = v10.sum(axis=1) / n1
        var = np.zeros_like(auc)
        n_subjects = []
        for v, side, n in ((v10, yy, n1), (v01, ~yy, n0)):
            t = v @ onehot  # per subject: sum of its images' components
            m = side.astype(float) @ onehot  # per subject: its images on this side
            present = m > 0
            k = present.sum(axis=1)
            dev = np.where(present, t - m * auc[:, None], 0.0)
            var += k / ((k - 1) * n) * (dev**2).sum(axis=1) / n
            n_subjects.append(k)
        dof = np.maximum(np.minimum(*n_subjects) - 1, 1)
        half = sps.t.ppf(0.5 + level / 2, dof) * np.sqrt(var)
    low, high = np.clip(auc - half, 0, 1), np.clip(auc + half, 0, 1)
    hopeless = 2 / comb(n_subjects[0] + n_subjects[1], n_subjects[0]) > 1 - level
    low = np.where(hopeless, np.minimum(low, 0.5), low)
    high = np.where(hopeless, np.maximum(high, 0.5), high)
    out = np.stack([auc, low, high], axis=-1)
    return out[0] if np.ndim(scores) == 1 else out


RIDGE = 1.0  # L2 penalty of the linear discriminant, on standardised features


def subject_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple]:
    """k (train, test) index pairs; every subject's frames stay on one side, both domains in every fold."""
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((len(y), 1)), y, groups))


def out_of_fold_scores(X: np.ndarray, Y: np.ndarray, folds) -> np.ndarray:
    """Out-of-fold scores of a ridge linear discriminant for each column of labels Y (n, B).

    Per fold the features are standardised on the training images and
    w = (Z'Z + RIDGE I)^-1 Z'(y - mean y): least squares on centred labels,
    i.e. Fisher's discriminant with shrinkage. Closed form, so B label
    vectors (the observed one and the permutations) cost one solve per fold.
    A fold whose training side holds one domain only scores 0 (no
    information: ties that pull the AUC towards 0.5).
    """
    Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
    out = np.zeros_like(Y)
    for train, test in folds:
        mu = X[train].mean(axis=0)
        sd = X[train].std(axis=0)
        sd[sd == 0] = 1.0
        Z = (X[train] - mu) / sd
        Yc = Y[train] - Y[train].mean(axis=0)
        W = np.linalg.solve(Z.T @ Z + RIDGE * np.eye(Z.shape[1]), Z.T @ Yc)
        out[test] = ((X[test] - mu) / sd) @ W
    return out


def permutation_p(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds, auc: float, n_perm: int, seed: int
) -> tuple[float | None, np.ndarray]:
    """Subject-grouped permutation p-value of the out-of-fold AUC, (1 + #{AUC_perm >= AUC}) / (1 + n_perm),
    and the permutation AUCs.

    Domain labels are shuffled between subjects (each subject keeps all its
    frames and one label; each side keeps its number of subjects) and the
    discriminant is refit on every fold, so the null distribution includes
    the classifier's own optimism and the correlation of a subject's frames.
    The subject folds are those of the observed test.
    """
    if n_perm <= 0:
        return None, np.zeros(0)
    subjects, inverse = np.unique(groups, return_inverse=True)
    subject_label = np.zeros(subjects.size)
    subject_label[np.unique(inverse[y == 1])] = 1
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(subject_label) for _ in range(n_perm)])[:, inverse]  # (B, n)
    scores = out_of_fold_scores(X, perms.T, folds).T
    aucs = auc_interval(scores, perms, groups)[:, 0]
    return float((1 + np.sum(aucs >= auc - 1e-12)) / (1 + n_perm)), aucs


def widen_by_null_spread(interval, null_aucs: np.ndarray, level: float = 0.95) -> np.ndarray:
    """(auc, low, high) with the half-width at least the null distribution's `level` half-spread.

    The cluster-robust interval treats subjects as independent, but the
    out-of-fold scores of one fold share that fold's fitted model, so under
    no difference it excludes 0.5 too often (about 15 % at 10 vs 10 subjects).
    The permutation AUCs carry that cross-validation noise; taking the
    larger half-width makes the interval exclude 0.5 only when the
    permutation test would too, and is conservative far from 0.5.
    """
    auc, low, high = np.asarray(interval, dtype=float)
    spread = float(np.quantile(np.abs(null_aucs - np.median(null_aucs)), level))
    return np.array([auc, min(low, max(auc - spread, 0.0)), max(high, min(auc + spread, 1.0))])


def at_permutation_floor(p: float | None, n_perm: int) -> bool:
    """Whether no relabelling of the subjects reached the observed AUC (p = 1 / (1 + n_perm)).

    The widening (widen_by_null_spread) makes the interval exclude 0.5 only
    when the permutation test would; at the floor the permutation test
    excludes chance as strongly as it can, so the interval is not widened
    by the null's spread there (it would read as uncertainty no relabelling showed).
    """
    return p is not None and n_perm > 0 and p <= 1.0 / (1 + n_perm) + 1e-12


def classifier_two_sample_test(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int, n_perm: int = 0
) -> dict:
    """Out-of-fold AUC of a ridge linear discriminant telling y=1 from y=0, folds grouped by subject,
    with its cluster-robust 95% interval and (n_perm > 0) a subject-grouped permutation p-value."""
    n_subj = [np.unique(groups[y == c]).size for c in (0, 1)]
    k = min(folds, *n_subj)
    if k < 2:
        return {
            "possible": False,
            "why": f"a subject-grouped test needs at least 2 subjects per domain (have {n_subj[0]} and {n_subj[1]})",
        }
    folds = subject_folds(y, groups, k, seed)
    oof = out_of_fold_scores(X, y, folds)[:, 0]
    interval = auc_interval(oof, y, groups)
    p, null_aucs = permutation_p(X, y, groups, folds, float(interval[0]), n_perm, seed)
    at_floor = bool(null_aucs.size) and at_permutation_floor(p, null_aucs.size)
    if null_aucs.size and not at_floor:
        interval = widen_by_null_spread(interval, null_aucs)
    auc, low, high = interval
    n_done = int(null_aucs.size)
    fpr, tpr, _ = roc_curve(y, oof)
    return {
        "possible": True,
        "auc": float(auc),
        "ci95": [float(low), float(high)],
        "permutation_p": p,
        "permutations": n_done,
        "at_permutation_floor": at_floor,
        "folds": k,
        "oof": oof,
        "roc": (fpr, tpr),
    }
