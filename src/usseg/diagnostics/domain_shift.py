"""Check 4: do the training images look like the target domain's?

Two views of the same question. Descriptive: grey-level histograms inside the
field of view per modality and their distances (Kolmogorov-Smirnov,
Wasserstein-1, Jensen-Shannon). Decisive: a classifier two-sample test - if
a simple model on cheap intensity and texture features tells the domains
apart on subjects it has not seen, a segmentation model trained on one domain
meets a different distribution on the other. AUC 0.5 means indistinguishable.

The comparison is the target modality (dataset.target_modality, the real
scanner here) against every other modality (the simulator here), so the same
check covers scanner A vs scanner B.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from usseg.diagnostics import figures
from usseg.diagnostics.fov import field_of_view
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import write_json
from usseg.diagnostics.status import PASS, WARN, CheckResult, status_above
from usseg.diagnostics.survey import PERCENTILES, Survey, hist_mean_std, percentiles_from_hist

DEFAULT_AUC = {"warn_above": 0.75, "fail_above": 0.9}


# ----------------------------------------------------------------------------- distances


def intensity_stats(hist: np.ndarray) -> dict:
    mean, std = hist_mean_std(hist)
    out = {"n_pixels": int(hist.sum()), "mean": mean, "std": std}
    out.update({f"p{q}": v for q, v in zip(PERCENTILES, percentiles_from_hist(hist))})
    return out


def distribution_distances(hist_a: np.ndarray, hist_b: np.ndarray, bins: int) -> dict:
    """KS statistic and Wasserstein-1 (grey levels) of two 256-level histograms; JS divergence (bits) on `bins` bins."""
    pa = hist_a / hist_a.sum()
    pb = hist_b / hist_b.sum()
    diff = np.cumsum(pa) - np.cumsum(pb)
    edges = np.linspace(0, 256, bins + 1).astype(int)
    ca = np.add.reduceat(pa, edges[:-1])
    cb = np.add.reduceat(pb, edges[:-1])
    js = float(jensenshannon(ca, cb, base=2) ** 2)
    return {
        "ks_statistic": float(np.abs(diff).max()),
        "wasserstein1_grey_levels": float(np.abs(diff).sum()),
        "js_divergence_bits": js,
    }


# ----------------------------------------------------------------------------- classifier test


def weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of `scores` for labels `y` under each row of `weights` (B, n): ties count one half."""
    order = np.argsort(scores, kind="stable")
    s, yy, w = scores[order], y[order].astype(bool), np.atleast_2d(weights)[:, order]
    wneg = np.where(yy, 0.0, w)
    wpos = np.where(yy, w, 0.0)
    cum = np.cumsum(wneg, axis=1)
    # Tie groups: negatives below the group, plus half of those inside it.
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], s.size]
    group = np.repeat(np.arange(starts.size), ends - starts)
    below = np.where(starts > 0, cum[:, np.maximum(starts - 1, 0)], 0.0)
    inside = cum[:, ends - 1] - below
    credit = below[:, group] + 0.5 * inside[:, group]
    num = (wpos * credit).sum(axis=1)
    den = wpos.sum(axis=1) * wneg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def subject_bootstrap_ci(
    scores, y, groups, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the AUC when subjects (not images) are resampled, within each class."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_boot, len(scores)))
    for cls in (0, 1):
        subj = np.unique(groups[y == cls])
        counts = rng.multinomial(subj.size, np.full(subj.size, 1 / subj.size), size=n_boot)
        idx = {g: k for k, g in enumerate(subj)}
        cols = np.flatnonzero(y == cls)
        weights[:, cols] = counts[:, [idx[g] for g in groups[cols]]]
    aucs = weighted_auc(np.asarray(scores, float), np.asarray(y), weights)
    aucs = aucs[np.isfinite(aucs)]
    alpha = (1 - level) / 2
    return float(np.quantile(aucs, alpha)), float(np.quantile(aucs, 1 - alpha))


def classifier_two_sample_test(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, n_boot: int, seed: int
) -> dict:
    """Out-of-fold AUC of a logistic regression telling y=1 from y=0, folds grouped by subject."""
    n_subj = [np.unique(groups[y == c]).size for c in (0, 1)]
    k = min(folds, *n_subj)
    if k < 2:
        return {
            "possible": False,
            "why": f"a subject-grouped test needs at least 2 subjects per domain (have {n_subj[0]} and {n_subj[1]})",
        }
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    oof = np.full(len(y), 0.5)
    for train, test in cv.split(X, y, groups):
        if np.unique(y[train]).size < 2:
            continue  # an uninformative fold keeps its 0.5 scores: it can only pull the AUC towards 0.5
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(X[train], y[train])
        oof[test] = model.predict_proba(X[test])[:, 1]
    auc = float(roc_auc_score(y, oof))
    low, high = subject_bootstrap_ci(oof, y, groups, n_boot, seed)
    fpr, tpr, _ = roc_curve(y, oof)
    return {
        "possible": True,
        "auc": auc,
        "ci95": [low, high],
        "folds": k,
        "oof": oof,
        "roc": (fpr, tpr),
    }


def effect_sizes(features: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Standardised mean difference (y=1 minus y=0, pooled SD) per feature."""
    a, b = features[y == 1], features[y == 0]
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2).replace(0, np.nan)
    return ((a.mean() - b.mean()) / pooled).fillna(0.0)


# ----------------------------------------------------------------------------- figure


def _example(inputs: DiagnosticInputs, survey: Survey, modality: str, threshold: int):
    """A typical image of the modality: the sampled one whose FOV mean is closest to the modality's median."""
    images = inputs.images.set_index("image_id")
    ids = [i for i in survey.sample_ids if images.at[i, "modality"] == modality]
    if not ids:
        return None
    means = survey.features.loc[ids, "mean"]
    iid = (means - means.median()).abs().sort_values(kind="stable").index[0]
    row = images.loc[iid].to_dict() | {"image_id": iid}
    gray = inputs.read_gray(row)
    return iid, gray, field_of_view(gray, threshold)


def plot(
    inputs,
    survey,
    mod_hists,
    per_mod,
    distances,
    test,
    threshold,
    bins,
    auc_thresholds,
    names,
    path,
) -> None:
    mods = [m for m in inputs.modalities if m in mod_hists]
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    with figures.style():
        fig = figures.new_figure(11, 9)
        gs = fig.add_gridspec(2, max(len(mods), 2), height_ratios=[1, 1.1])
        for k, m in enumerate(mods[:4]):
            ax = fig.add_subplot(gs[0, k] if len(mods) > 1 else gs[0, :])
            ex = _example(inputs, survey, m, threshold)
            ax.grid(False)
            ax.set_xticks([])
            ax.set_yticks([])
            if ex is None:
                continue
            iid, gray, fov = ex
            ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
            ax.contour(fov, levels=[0.5], colors=[colours[m]], linewidths=1.5)
            ax.set_title(f"{m} ({inputs.domain_of(m)}): {iid}\nfield of view outlined", fontsize=10)
        ax = fig.add_subplot(gs[1, 0])
        edges = np.linspace(0, 256, bins + 1).astype(int)
        for m in mods:
            h = np.add.reduceat(mod_hists[m], edges[:-1]).astype(float)
            dens = h / h.sum() / np.diff(edges)
            ax.stairs(
                dens,
                edges,
                color=colours[m],
                linewidth=1.8,
                fill=False,
                label=f"{m} ({inputs.domain_of(m)}): mean {per_mod[m]['mean']:.0f}, sd {per_mod[m]['std']:.0f}",
            )
            ax.stairs(dens, edges, color=colours[m], alpha=0.18, fill=True)
            ax.axvline(per_mod[m]["mean"], color=colours[m], linestyle="--", linewidth=1)
        ax.set_xlim(0, 255)
        ax.set_xlabel("grey level inside the field of view")
        ax.set_ylabel("density (share of pixels per grey level)")
        ax.set_title("Intensity histograms inside the field of view")
        ax.legend(loc="upper right", fontsize=9)
        if distances:
            ax.text(
                0.98,
                0.70,
                f"KS {distances['ks_statistic']:.2f}\nWasserstein-1 {distances['wasserstein1_grey_levels']:.1f}"
                f" grey levels\nJensen-Shannon {distances['js_divergence_bits']:.3f} bits",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"},
            )
        ax = fig.add_subplot(gs[1, 1:] if len(mods) > 2 else gs[1, 1])
        ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", label="indistinguishable (AUC 0.5)")
        if test.get("possible"):
            fpr, tpr = test["roc"]
            ax.plot(
                fpr,
                tpr,
                color="black",
                linewidth=2,
                label=f"AUC {test['auc']:.3f} [{test['ci95'][0]:.3f}, {test['ci95'][1]:.3f}]",
            )
            ax.set_title(
                f"Domain classifier, out of fold\n({test['folds']}-fold CV grouped by subject; 95% CI over subjects)",
                fontsize=11,
            )
            ax.text(
                0.97,
                0.22,
                f"WARN above AUC {auc_thresholds['warn_above']}\nFAIL above AUC {auc_thresholds['fail_above']}",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"},
            )
        else:
            ax.set_title("Domain classifier: not possible")
            ax.text(
                0.5,
                0.5,
                test.get("why", ""),
                ha="center",
                va="center",
                wrap=True,
                transform=ax.transAxes,
            )
        ax.set_xlim(-0.02, 1.02)  # keep a perfect curve off the frame
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        src, tgt = names["source_short"], names["target_short"]
        ax.set_xlabel(f"false positive rate ({src} called {tgt})")
        ax.set_ylabel(f"true positive rate ({tgt} called {tgt})")
        ax.legend(loc="lower right", fontsize=9)
        head = f"Domain shift: {names['source']} vs {names['target']}"
        if test.get("possible"):
            head += f" (domain classifier AUC {test['auc']:.2f}; 0.5 = indistinguishable)"
        fig.suptitle(head)
        figures.save(fig, path)


# ----------------------------------------------------------------------------- check


def check_domain_shift(inputs: DiagnosticInputs, survey: Survey, out_dir) -> CheckResult:
    bins = int(inputs.opt("histogram_bins", 64))
    threshold = int(inputs.opt("fov_threshold", 12))
    folds = int(inputs.opt("domain_cv_folds", 4))
    n_boot = int(inputs.opt("domain_bootstrap", 1000))
    seed = int(inputs.opt("seed", 0))
    thresholds = inputs.opt("domain_auc", DEFAULT_AUC)

    meta = inputs.images.set_index("image_id").loc[survey.sample_ids]
    modality = meta["modality"].to_numpy()
    mod_hists = {
        m: np.sum(
            [survey.histograms[i] for i, mm in zip(survey.sample_ids, modality) if mm == m], axis=0
        )
        for m in inputs.modalities
        if (modality == m).any()
    }
    per_mod = {
        m: intensity_stats(h)
        | {"n_images": int((modality == m).sum()), "domain": inputs.domain_of(m)}
        for m, h in mod_hists.items()
    }

    edges = np.linspace(0, 256, bins + 1).astype(int)
    rows = []
    for m, h in mod_hists.items():
        binned = np.add.reduceat(h, edges[:-1])
        for lo, hi, c in zip(edges[:-1], edges[1:], binned):
            rows.append(
                {
                    "modality": m,
                    "domain": inputs.domain_of(m),
                    "bin_left": int(lo),
                    "bin_right": int(hi),
                    "count": int(c),
                    "fraction": float(c / max(h.sum(), 1)),
                }
            )
    pd.DataFrame(
        rows, columns=["modality", "domain", "bin_left", "bin_right", "count", "fraction"]
    ).to_csv(f"{out_dir}/intensity_histograms.csv", index=False)

    target = inputs.target_modality
    y = (modality == target).astype(int)
    names = comparison_names(inputs, sorted(set(modality) - {target}, key=inputs.modalities.index))
    has_both = bool(y.any() and (y == 0).any())
    distances, test, effects = {}, {"possible": False, "why": ""}, pd.Series(dtype=float)
    if has_both:
        side_hist = [
            np.sum([survey.histograms[i] for i, yy in zip(survey.sample_ids, y) if yy == k], axis=0)
            for k in (0, 1)
        ]
        distances = distribution_distances(side_hist[0], side_hist[1], bins)
        groups = np.array([f"{m}:{s}" for m, s in zip(modality, meta["subject_id"])])
        X = survey.features.loc[survey.sample_ids]
        test = classifier_two_sample_test(X.to_numpy(float), y, groups, folds, n_boot, seed)
        effects = effect_sizes(X, y)
    else:
        present = ", ".join(sorted(set(modality))) or "no"
        test["why"] = (
            f"only {present} images are present: there is no other domain to compare {target} with"
        )

    plot(
        inputs,
        survey,
        mod_hists,
        per_mod,
        distances,
        test,
        threshold,
        bins,
        thresholds,
        names,
        f"{out_dir}/domain_shift.png",
    )

    top = effects.abs().sort_values(ascending=False).index[:5].tolist()
    report = {
        "field_of_view": {
            "threshold": threshold,
            "method": "grey > threshold, closing, largest component, holes filled",
        },
        "per_modality": per_mod,
        "compared": {"target": names["target"], "source": names["source"]},
        "distances_source_vs_target": distances,
        "classifier": {
            "possible": test["possible"],
            "why_not": test.get("why"),
            "model": "standardised features + logistic regression",
            "features": list(survey.features.columns),
            "cv": f"StratifiedGroupKFold grouped by subject, {test.get('folds', 0)} folds",
            "auc": test.get("auc"),
            "ci95": test.get("ci95"),
            "bootstrap": n_boot,
            "seed": seed,
            "n_images": {m: int((modality == m).sum()) for m in sorted(set(modality))},
            "n_subjects": {
                m: int(meta.loc[modality == m, "subject_id"].nunique())
                for m in sorted(set(modality))
            },
            "cap_per_domain": int(inputs.opt("domain_max_images", 400)),
            "most_different_features": {f: round(float(effects[f]), 3) for f in top},
        },
        "unreadable_images": survey.unreadable,
    }
    write_json(f"{out_dir}/domain_shift.json", report)

    title = f"Domain shift ({names['source_domains']} vs {names['target_domain']})"
    auc_text = (
        f"warn > {thresholds['warn_above']}, fail > {thresholds['fail_above']} (out-of-fold AUC)"
    )
    if not test["possible"]:
        status = PASS if not has_both else WARN
        return CheckResult(
            "domain_shift",
            title,
            status,
            None,
            auc_text,
            f"no classifier test: {test['why']}.",
            report,
        )
    auc, (low, high) = test["auc"], test["ci95"]
    status = status_above(auc, thresholds)
    n_src, n_tgt = int((y == 0).sum()), int((y == 1).sum())
    src = pixel_weighted_mean(per_mod, [m for m in per_mod if m != target])
    tgt = pixel_weighted_mean(per_mod, [target])
    desc = (
        f"FOV mean grey level {src:.0f} ({names['source_short']}) vs {tgt:.0f} ({names['target_short']}); "
        f"KS {distances['ks_statistic']:.2f}, "
        f"Wasserstein-1 {distances['wasserstein1_grey_levels']:.1f} grey levels, JS {distances['js_divergence_bits']:.3f} bits"
    )
    head = (
        f"a logistic regression on intensity/texture features, asked to tell {names['target']} from "
        f"{names['source']} images, reaches out-of-fold AUC {auc:.3f} [95% CI {low:.3f}-{high:.3f}] ({test['folds']}-fold CV grouped by subject, "
        f"{n_src}+{n_tgt} images)"
    )
    if status == PASS:
        verdict = "the domains are hard to tell apart"
    elif status == WARN:
        verdict = "a moderate domain gap"
    else:
        verdict = "a clear domain gap: a model trained on one domain meets a different distribution on the other"
    reason = f"{head}: {verdict}. {desc}; most different: {', '.join(top[:3])}."
    if status != PASS and low <= thresholds["warn_above"] < auc:
        reason += " The interval reaches below the WARN threshold: few subjects make the estimate uncertain."
    return CheckResult(
        "domain_shift",
        title,
        status,
        round(auc, 3),
        auc_text,
        reason,
        report,
    )


def pixel_weighted_mean(per_mod: dict, modalities) -> float:
    """FOV mean grey level over the modalities' pixels."""
    items = [
        (per_mod[m]["mean"], per_mod[m]["n_pixels"]) for m in modalities if per_mod[m]["n_pixels"]
    ]
    if not items:
        return float("nan")
    means, weights = zip(*items)
    return float(np.average(means, weights=weights))


def comparison_names(inputs: DiagnosticInputs, sources: list[str]) -> dict:
    """How the figure and the reason name the two sides, e.g. 'AUS (synthetic)' vs 'RUS (real)'.

    Domain names are short and telling ('synthetic called real'); when the
    target shares its domain with a source (scanner A vs scanner B), modality
    names are used instead.
    """
    target = inputs.target_modality
    tgt_domain = inputs.domain_of(target)
    src_domains = list(dict.fromkeys(inputs.domain_of(m) for m in sources))
    by_domain = tgt_domain not in src_domains
    return {
        "target": f"{target} ({tgt_domain})",
        "target_short": tgt_domain if by_domain else target,
        "target_domain": tgt_domain if by_domain else target,
        "source": ", ".join(f"{m} ({inputs.domain_of(m)})" for m in sources) or "nothing",
        "source_short": "/".join(src_domains if by_domain else sources) or "-",
        "source_domains": "/".join(src_domains if by_domain else sources) or "-",
    }
