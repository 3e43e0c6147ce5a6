"""Check 4: do the training images look like the target domain's?

Descriptive: grey-level histograms inside the field of view per modality and
their distances (Kolmogorov-Smirnov, Wasserstein-1, Jensen-Shannon), on the
raw grey levels and on what a model sees (grey / 255 resized to the
experiments' image_size, usseg.data's only normalisation).

Decisive: a classifier two-sample test - if a simple model on cheap intensity
and texture features tells the domains apart on subjects it has not seen, a
segmentation model trained on one domain meets a different distribution on
the other. AUC 0.5 means indistinguishable. To be fair the features are
computed on harmonised copies (one grid, one JPEG quality, inside the field
of view; see survey.py), and a *format control* - the same classifier on file
properties only (format, width, height, channels, JPEG quantisation)
- says how far the files alone give the domain away. The AUC comes with a
subject-grouped permutation p-value and an interval (`auc_interval`,
`widen_by_null_spread`) that excludes 0.5 under random labels about as
often as it should (tests/test_diagnostics_interval.py); it is not widened at
the permutation floor, where no relabelling came near. Label shift (organ
presence, size, position; label_shift.py) is part of the gap: a shifted class
raises the check to at least WARN.

A separable shift is *detectable*, not yet shown to harm: mean grey level
alone can separate two domains that a segmentation model bridges. So this
check, which runs before any training, WARNs ("detectable shift") and never
FAILs; the run's final verdict (usseg.verdict, results/verdict/checklist.json)
raises it to FAIL when the trained models also show harm (a drop from a
model's own domain to the target whose interval lies above
verdict.harm_min_drop). `detectable_shift` in domain_shift.json records the
first half.

The comparison is the target modality (dataset.target_modality, the real
scanner here) against every other modality (the simulator here), so the same
check covers scanner A vs scanner B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy.spatial.distance import jensenshannon

from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs, write_json
from usseg.diagnostics.status import FAIL, PASS, WARN, CheckResult, status_above, worst
from usseg.diagnostics.survey import PERCENTILES, Survey, hist_mean_std, percentiles_from_hist
from usseg.diagnostics.two_sample import (  # noqa: F401 (tests and remedies import them from here)
    auc_interval,
    classifier_two_sample_test,
    out_of_fold_scores,
    permutation_p,
    subject_folds,
    widen_by_null_spread,
)
from usseg.fov import field_of_view

DEFAULT_AUC = {"warn_above": 0.75, "fail_above": 0.9}
DEFAULT_HARMONISE = {"grid": 128, "jpeg_quality": 75}


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


def effect_sizes(features: pd.DataFrame, y: np.ndarray) -> pd.Series:
    """Standardised mean difference (y=1 minus y=0, pooled SD) per feature."""
    a, b = features[y == 1], features[y == 0]
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2).replace(0, np.nan)
    return ((a.mean() - b.mean()) / pooled).fillna(0.0)


def model_input_distances(hist_a: np.ndarray, hist_b: np.ndarray, bins: int) -> dict:
    """distribution_distances on [0, 1] model-input histograms, Wasserstein-1 in input units (0-1)."""
    d = distribution_distances(hist_a, hist_b, bins)
    return {
        "ks_statistic": d["ks_statistic"],
        "wasserstein1": d["wasserstein1_grey_levels"] / 255,
        "js_divergence_bits": d["js_divergence_bits"],
    }


def side_histogram(hists: dict, ids, y, side: int) -> np.ndarray:
    return np.sum([hists[i] for i, yy in zip(ids, y) if yy == side and i in hists], axis=0)


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


def _histogram_panel(ax, hists: dict, colours, inputs, bins, scale, xlabel, title):
    """Histograms of 256-bin counts drawn on `bins` bins over [0, scale]; the means go in the title."""
    edges = np.linspace(0, 256, bins + 1).astype(int)
    means = []
    for m, hist in hists.items():
        mean = hist_mean_std(hist)[0] * scale / 255
        h = np.add.reduceat(hist, edges[:-1]).astype(float)
        dens = h / h.sum() / np.diff(edges) * 255 / scale
        x = edges * scale / 255
        ax.stairs(dens, x, color=colours[m], linewidth=1.8, fill=False)
        ax.stairs(dens, x, color=colours[m], alpha=0.18, fill=True)
        ax.axvline(mean, color=colours[m], linestyle="--", linewidth=1)
        means.append(f"{m} {mean:.{2 if scale == 1 else 0}f}")
    ax.set_xlim(0, scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(f"{title}\nmean (dashed): {', '.join(means)}", fontsize=11)


def plot(inputs, survey, mod_hists, model_hists, test, fmt, threshold, bins, auc_thresholds, names,
         model_note, path) -> None:
    """Example images and the classifier's ROC on top, the two histograms below; legends outside the data."""
    mods = [m for m in inputs.modalities if m in mod_hists]
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    with figures.style():
        fig = figures.new_figure(10.4, 7.4)
        gs = fig.add_gridspec(2, 2, height_ratios=[1.05, 1])
        top = gs[0, 0].subgridspec(1, max(min(len(mods), 4), 1))
        for k, m in enumerate(mods[:4]):
            ax = fig.add_subplot(top[0, k])
            ex = _example(inputs, survey, m, threshold)
            ax.grid(False)
            ax.set_xticks([])
            ax.set_yticks([])
            if ex is None:
                continue
            iid, gray, fov = ex
            ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
            ax.contour(fov, levels=[0.5], colors=[colours[m]], linewidths=1.5)
            ax.set_title(f"{m} ({inputs.domain_of(m)})\n{iid}", fontsize=10)
        _roc_panel(fig.add_subplot(gs[0, 1]), test, fmt, auc_thresholds, names)
        _histogram_panel(fig.add_subplot(gs[1, 0]), mod_hists, colours, inputs, bins, 255,
                         "grey level inside the field of view", "Raw grey levels")
        ax = fig.add_subplot(gs[1, 1])
        if model_hists:
            _histogram_panel(ax, model_hists, colours, inputs, bins, 1,
                             "model input (grey / 255 at the experiments' image size)", "What a model sees")
        else:
            ax.axis("off")
            ax.text(0.5, 0.5, model_note, ha="center", va="center", wrap=True, transform=ax.transAxes)
        handles = [Line2D([], [], color=colours[m], linewidth=1.8, label=f"{m} ({inputs.domain_of(m)})")
                   for m in mods]
        fig.legend(handles=handles, loc="outside lower center", ncol=max(len(handles), 1), frameon=False)
        head = f"Domain shift: {names['source']} vs {names['target']}; field of view outlined"
        if test.get("possible"):
            head += f"\ndomain classifier AUC {test['auc']:.2f} (0.5 = indistinguishable)"
        fig.suptitle(head)
        figures.save(fig, path)


def _roc_panel(ax, test, fmt, auc_thresholds, names) -> None:
    """The domain classifier's ROC (and the format control's), its legend beside the axes, off the curves."""
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", label="indistinguishable\n(AUC 0.5)")
    if test.get("possible"):
        fpr, tpr = test["roc"]
        ax.plot(fpr, tpr, color="black", linewidth=2,
                label=f"harmonised images:\nAUC {test['auc']:.2f} [{test['ci95'][0]:.2f}, {test['ci95'][1]:.2f}]")
        if fmt.get("possible"):
            ffpr, ftpr = fmt["roc"]
            ax.plot(ffpr, ftpr, color="0.45", linewidth=1.5, linestyle="--",
                    label=f"file properties only:\nAUC {fmt['auc']:.2f}")
        p = test.get("permutation_p")
        ax.set_title(
            f"Domain classifier, {test['folds']}-fold by subject\n"
            + (f"permutation p = {p:.2g}; " if p is not None else "")
            + f"WARN > {auc_thresholds['warn_above']}, FAIL > {auc_thresholds['fail_above']}",
            fontsize=10,
        )
    else:
        ax.set_title("Domain classifier: not possible")
        ax.text(0.5, 0.5, test.get("why", ""), ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xlim(-0.02, 1.02)  # keep a perfect curve off the frame
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    src, tgt = names["source_short"], names["target_short"]
    ax.set_xlabel(f"false positive rate\n({src} called {tgt})")
    ax.set_ylabel(f"true positive rate\n({tgt} called {tgt})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)


# ----------------------------------------------------------------------------- check


def _histogram_rows(inputs, mod_hists, bins, scale, space) -> list[dict]:
    edges = np.linspace(0, 256, bins + 1).astype(int)
    rows = []
    for m, h in mod_hists.items():
        binned = np.add.reduceat(h, edges[:-1])
        for lo, hi, c in zip(edges[:-1], edges[1:], binned):
            rows.append(
                {
                    "space": space,
                    "modality": m,
                    "domain": inputs.domain_of(m),
                    "bin_left": round(float(lo) * scale / 255, 4) if scale != 255 else int(lo),
                    "bin_right": round(float(hi) * scale / 255, 4) if scale != 255 else int(hi),
                    "count": int(c),
                    "fraction": float(c / max(h.sum(), 1)),
                }
            )
    return rows


def _per_modality_hists(hists: dict, ids, modality) -> dict:
    out = {}
    for m in dict.fromkeys(modality):
        sel = [hists[i] for i, mm in zip(ids, modality) if mm == m and i in hists]
        if sel:
            out[m] = np.sum(sel, axis=0)
    return out


def domain_status(test: dict, thresholds: dict, alpha: float) -> str:
    """The separability of the images by AUC: PASS, WARN (moderate) or FAIL (clear: above fail_above with
    the permutation p below alpha; without that p, WARN). This is `image_status`, the classifier's
    reading; the check's own status is at most WARN (`is_detectable`, module docstring)."""
    status = status_above(test["auc"], thresholds)
    p = test.get("permutation_p")
    if status == FAIL and p is not None and p >= alpha:
        return WARN
    return status


def is_detectable(test: dict, thresholds: dict, alpha: float) -> bool:
    """A detectable shift: the AUC above the WARN threshold and, when permutations ran, p below alpha."""
    if not test.get("possible"):
        return False
    p = test.get("permutation_p")
    return test["auc"] > thresholds["warn_above"] and (p is None or p < alpha)


@dataclass(frozen=True)
class _Settings:
    """The diagnostics settings (config.yaml `diagnostics:`) this check reads, with their defaults."""

    bins: int
    threshold: int
    folds: int
    n_perm: int
    alpha: float
    seed: int
    thresholds: dict
    harmonise: dict
    max_images: int

    @classmethod
    def read(cls, inputs: DiagnosticInputs) -> _Settings:
        return cls(
            bins=int(inputs.opt("histogram_bins", 64)),
            threshold=int(inputs.opt("fov_threshold", 12)),
            folds=int(inputs.opt("domain_cv_folds", 4)),
            n_perm=int(inputs.opt("domain_permutations", 1000)),
            alpha=float(inputs.opt("domain_alpha", 0.05)),
            seed=int(inputs.opt("seed", 0)),
            thresholds=inputs.opt("domain_auc", DEFAULT_AUC),
            harmonise=DEFAULT_HARMONISE | (inputs.opt("domain_harmonise", {}) or {}),
            max_images=int(inputs.opt("domain_max_images", 400)),
        )


@dataclass
class _Measured:
    """What the check measures on the survey's sample, before it writes anything."""

    meta: pd.DataFrame  # the sampled images' manifest rows, indexed by image_id
    modality: np.ndarray  # the modality of each sampled image
    y: np.ndarray  # 1 for the target modality, 0 for every other
    names: dict  # how the two sides are named (comparison_names)
    mod_hists: dict  # modality -> 256-level grey histogram inside the field of view
    model_hists: dict  # modality -> 256-bin histogram of the model input, empty when not measured
    per_mod: dict  # modality -> intensity_stats (grey levels) | n_images, domain
    model_per_mod: dict  # modality -> intensity_stats in model-input units | n_images
    model_note: str  # what the model sees, or why it was not measured
    distances: dict = field(default_factory=dict)  # source vs target, grey levels
    model_distances: dict = field(default_factory=dict)  # source vs target, model input
    test: dict = field(default_factory=lambda: {"possible": False, "why": ""})  # the domain classifier
    fmt: dict = field(default_factory=lambda: {"possible": False, "why": ""})  # the format control
    effects: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # per feature, target minus source

    @property
    def has_both(self) -> bool:
        return bool(self.y.any() and (self.y == 0).any())

    @property
    def top(self) -> list[str]:
        """The five features that differ most between the sides (absolute standardised difference)."""
        return self.effects.abs().sort_values(ascending=False).index[:5].tolist()


def check_domain_shift(
    inputs: DiagnosticInputs, survey: Survey, outputs: DiagnosticsOutputs, label_shift: dict | None = None,
    model_image_size=None,
) -> CheckResult:
    """Check 4 (module docstring): writes the histogram table, the figure and domain_shift.json, and returns
    the checklist row, at most WARN before training. `label_shift` is label_shift.py's result."""
    settings = _Settings.read(inputs)
    label_shift = label_shift or {"shifted_classes": [], "classes": {}}
    m = _measure_intensities(inputs, survey, model_image_size)
    write_histogram_table(inputs, m.mod_hists, m.model_hists, settings.bins, outputs.histograms)
    _compare_sides(m, survey, inputs.target_modality, settings)
    plot(inputs, survey, m.mod_hists, m.model_hists, m.test, m.fmt, settings.threshold, settings.bins,
         settings.thresholds, m.names, m.model_note, outputs.domain_shift)
    report = _report(m, survey, settings, label_shift, model_image_size)
    write_json(outputs.domain_shift_json, report)
    return _check_result(m, inputs.target_modality, settings, label_shift, report)


def _measure_intensities(inputs: DiagnosticInputs, survey: Survey, model_image_size) -> _Measured:
    """Histograms and intensity statistics per modality, raw and at the model's input, in config order."""
    meta = inputs.images.set_index("image_id").loc[survey.sample_ids]
    modality = meta["modality"].to_numpy()
    order = {m: k for k, m in enumerate(inputs.modalities)}
    mod_hists = dict(sorted(_per_modality_hists(survey.histograms, survey.sample_ids, modality).items(),
                            key=lambda kv: order[kv[0]]))
    model_hists = dict(sorted(_per_modality_hists(survey.model_histograms, survey.sample_ids, modality).items(),
                              key=lambda kv: order[kv[0]]))
    per_mod = {
        m: intensity_stats(h)
        | {"n_images": int((modality == m).sum()), "domain": inputs.domain_of(m)}
        for m, h in mod_hists.items()
    }
    model_per_mod = {}
    for m, h in model_hists.items():
        st = intensity_stats(h)
        model_per_mod[m] = {k: (v / 255 if k not in ("n_pixels",) else v) for k, v in st.items()}
        model_per_mod[m]["n_images"] = int((modality == m).sum())
    target = inputs.target_modality
    return _Measured(
        meta=meta,
        modality=modality,
        y=(modality == target).astype(int),
        names=comparison_names(inputs, sorted(set(modality) - {target}, key=inputs.modalities.index)),
        mod_hists=mod_hists,
        model_hists=model_hists,
        per_mod=per_mod,
        model_per_mod=model_per_mod,
        model_note=_model_note(model_image_size),
    )


def _model_note(model_image_size) -> str:
    if model_image_size is not None:
        size = "x".join(str(int(v)) for v in model_image_size)
        return f"grey / 255, resized to {size} (bilinear, anti-aliased): usseg.data's only normalisation"
    return "model input not measured: the experiments' image_size was not given"


def write_histogram_table(inputs: DiagnosticInputs, mod_hists: dict, model_hists: dict, bins: int, path) -> None:
    """The binned histograms of both spaces (raw grey level, model input) as one CSV table."""
    rows = _histogram_rows(inputs, mod_hists, bins, 255, "raw grey level")
    rows += _histogram_rows(inputs, model_hists, bins, 1, "model input")
    pd.DataFrame(
        rows, columns=["space", "modality", "domain", "bin_left", "bin_right", "count", "fraction"]
    ).to_csv(path, index=False)


def _compare_sides(m: _Measured, survey: Survey, target: str, s: _Settings) -> None:
    """Fills in `m`: distances, the domain classifier, its format control and the effect sizes, when both
    sides are present; otherwise why no test was possible."""
    if not m.has_both:
        present = ", ".join(sorted(set(m.modality))) or "no"
        m.test["why"] = m.fmt["why"] = (
            f"only {present} images are present: there is no other domain to compare {target} with"
        )
        return
    ids, y = survey.sample_ids, m.y
    m.distances = distribution_distances(
        side_histogram(survey.histograms, ids, y, 0), side_histogram(survey.histograms, ids, y, 1), s.bins
    )
    if m.model_hists:
        m.model_distances = model_input_distances(
            side_histogram(survey.model_histograms, ids, y, 0),
            side_histogram(survey.model_histograms, ids, y, 1),
            s.bins,
        )
    groups = np.array([f"{mm}:{subj}" for mm, subj in zip(m.modality, m.meta["subject_id"])])
    X = survey.features.loc[ids]
    m.test = classifier_two_sample_test(X.to_numpy(float), y, groups, s.folds, s.seed, s.n_perm)
    F = survey.file_props.loc[ids]
    m.fmt = classifier_two_sample_test(F.to_numpy(float), y, groups, s.folds, s.seed, s.n_perm)
    m.effects = effect_sizes(X, y)


def _classifier_entry(t: dict, model: str, features: list[str], seed: int) -> dict:
    """domain_shift.json's account of one classifier two-sample test."""
    return {
        "possible": t["possible"],
        "why_not": t.get("why"),
        "model": model,
        "features": features,
        "cv": f"StratifiedGroupKFold grouped by subject, {t.get('folds', 0)} folds",
        "auc": t.get("auc"),
        "ci95": t.get("ci95"),
        "interval": (
            "cluster-robust (Obuchowski, Student t, subjects as clusters), widened to the permutation "
            "AUCs' 95% half-spread when that is larger"
        ),
        "permutation_p": t.get("permutation_p"),
        "permutations": t.get("permutations", 0),
        "seed": seed,
    }


def _report(m: _Measured, survey: Survey, s: _Settings, label_shift: dict, model_image_size) -> dict:
    """domain_shift.json: every number behind the check (docs/contracts.md)."""
    mods = sorted(set(m.modality))
    return {
        "field_of_view": {
            "threshold": s.threshold,
            "method": "grey > threshold, closing, largest component, holes filled",
        },
        "per_modality": m.per_mod,
        "compared": {"target": m.names["target"], "source": m.names["source"]},
        "distances_source_vs_target": m.distances,
        "classifier": _classifier_entry(
            m.test,
            "standardised intensity/texture features of harmonised images + ridge linear discriminant",
            list(survey.features.columns),
            s.seed,
        )
        | {
            "harmonisation": (
                f"decoded to grey, resized to {survey.grid}x{survey.grid} (area average; "
                f"domain_harmonise.grid {s.harmonise['grid']}, at most half the smallest side), "
                f"JPEG round trip at quality {s.harmonise['jpeg_quality']}, features inside the field of view"
            ),
            "n_images": {mod: int((m.modality == mod).sum()) for mod in mods},
            "n_subjects": {mod: int(m.meta.loc[m.modality == mod, "subject_id"].nunique()) for mod in mods},
            "cap_per_domain": s.max_images,
            "most_different_features": {f: round(float(m.effects[f]), 3) for f in m.top},
        },
        "format_control": _classifier_entry(
            m.fmt, "standardised file properties + ridge linear discriminant", list(survey.file_props.columns),
            s.seed,
        )
        | {
            "meaning": (
                "how well the file alone (format, size, encoding) tells the domains apart; high here "
                "and low above means the domains differ in their files, not in what was imaged"
            ),
        },
        "model_input_intensity": {
            "normalisation": m.model_note,
            "image_size": list(model_image_size) if model_image_size is not None else None,
            "per_modality": m.model_per_mod,
            "source_vs_target": m.model_distances,
        },
        "label_shift": {
            "shifted_classes": label_shift["shifted_classes"],
            "details": "label_shift.json",
        },
        "unreadable_images": survey.unreadable,
        # Read by the final verdict (usseg.verdict): a detectable shift becomes a FAIL only with measured harm.
        "detectable_shift": is_detectable(m.test, s.thresholds, s.alpha),
        "image_status": domain_status(m.test, s.thresholds, s.alpha) if m.test["possible"] else None,
    }


def _check_result(m: _Measured, target: str, s: _Settings, label_shift: dict, report: dict) -> CheckResult:
    """The checklist row: WARN for a detectable image shift or a label shift, else PASS (module docstring)."""
    title = f"Domain shift ({m.names['source_domains']} vs {m.names['target_domain']})"
    auc_text = _threshold_text(s.thresholds, s.alpha, label_shift.get("thresholds", {}))
    shift_phrases = label_shift.get("phrases", [])
    shift_text = (
        f" Label shift: {'; '.join(shift_phrases)} (label_shift.png)." if shift_phrases else ""
    )
    if not m.test["possible"]:
        status = (PASS if not m.has_both else WARN)
        if shift_phrases:
            status = worst([status, WARN])
        return CheckResult(
            "domain_shift", title, status, None, auc_text,
            f"no classifier test: {m.test['why']}.{shift_text}", report,
        )
    image_status = domain_status(m.test, s.thresholds, s.alpha)
    # Before training no harm is measured: a detectable shift WARNs (usseg.verdict may raise it).
    status = WARN if image_status != PASS or shift_phrases else PASS
    reason = (
        f"{_classifier_head(m)}: {_auc_verdict(m.test, image_status, s.thresholds, s.alpha)}. "
        f"{_intensity_text(m, target)}; most different: {', '.join(m.top[:3])}."
    )
    reason += _format_control_text(m.fmt, image_status, s.thresholds)
    low, auc = m.test["ci95"][0], m.test["auc"]
    if image_status != PASS and low <= s.thresholds["warn_above"] < auc and not m.test.get("at_permutation_floor"):
        reason += " The interval reaches below the WARN threshold: few subjects make the estimate uncertain."
    reason += shift_text
    return CheckResult("domain_shift", title, status, round(auc, 3), auc_text, reason, report)


def _threshold_text(thresholds: dict, alpha: float, label_thresholds: dict) -> str:
    """The checklist's threshold column: the AUC thresholds, and the label shift's when it ran."""
    text = (
        f"AUC (harmonised images, out of fold): WARN > {thresholds['warn_above']} (detectable shift; clear above "
        f"{thresholds['fail_above']} with permutation p < {alpha:g}); FAIL only when the trained models also show "
        "harm (final verdict)"
    )
    if label_thresholds:
        text += (
            f"; label shift WARN: size factor > {label_thresholds['size_factor_above']}, centre moved > "
            f"{label_thresholds['position_distance_above']} FOV, presence differs > "
            f"{label_thresholds['presence_difference_above']}"
        )
    return text


def _classifier_head(m: _Measured) -> str:
    """What the classifier did and reached: its AUC with interval, permutation p and sample."""
    test = m.test
    auc, (low, high) = test["auc"], test["ci95"]
    p = test.get("permutation_p")
    n_src, n_tgt = int((m.y == 0).sum()), int((m.y == 1).sum())
    p_text = f", subject permutation p = {p:.3g}" if p is not None else ""
    if high - low > 0:
        ci_text = f"95% CI {low:.3f}-{high:.3f}"
    else:  # every subject separated: the cluster-robust variance is zero, and a zero-width interval claims too much
        ci_text = "no interval: every subject is separated, so the cluster-robust variance is zero"
    if test.get("at_permutation_floor"):
        p_text += ", no relabelling of the subjects came near"
    return (
        f"a linear classifier on intensity/texture features of harmonised images, asked to tell "
        f"{m.names['target']} from {m.names['source']} images, reaches out-of-fold AUC {auc:.3f} "
        f"[{ci_text}{p_text}] ({test['folds']}-fold CV grouped by subject, "
        f"{n_src}+{n_tgt} images)"
    )


def _auc_verdict(test: dict, image_status: str, thresholds: dict, alpha: float) -> str:
    """What the AUC means, by the images' status (domain_status)."""
    auc, p = test["auc"], test.get("permutation_p")
    if image_status == PASS:
        return f"the harmonised images are hard to tell apart (AUC <= {thresholds['warn_above']})"
    if image_status == WARN and auc > thresholds["fail_above"]:
        return (
            f"AUC above {thresholds['fail_above']} but not significant (p {p:.3g} >= {alpha:g}): too few "
            "subjects to call it a clear gap"
        )
    if image_status == WARN:
        return f"a detectable shift, moderate (AUC {thresholds['warn_above']}-{thresholds['fail_above']})"
    return (
        f"a detectable shift, clear (AUC > {thresholds['fail_above']}): a model trained on one domain meets a "
        "different distribution on the other. Detectable is not harmful: whether the shift costs the "
        "models Dice is measured after training, and the final verdict raises this check to FAIL only then"
    )


def _intensity_text(m: _Measured, target: str) -> str:
    """The mean grey levels and distances of the two sides, raw and at the model's input."""
    src = pixel_weighted_mean(m.per_mod, [mod for mod in m.per_mod if mod != target])
    tgt = pixel_weighted_mean(m.per_mod, [target])
    d = m.distances
    text = (
        f"FOV mean grey level {src:.0f} ({m.names['source_short']}) vs {tgt:.0f} ({m.names['target_short']}); "
        f"KS {d['ks_statistic']:.2f}, "
        f"Wasserstein-1 {d['wasserstein1_grey_levels']:.1f} grey levels, JS {d['js_divergence_bits']:.3f} bits"
    )
    if m.model_distances:
        s_m = pixel_weighted_mean(m.model_per_mod, [mod for mod in m.model_per_mod if mod != target])
        t_m = pixel_weighted_mean(m.model_per_mod, [target])
        text += (
            f"; at the model's input ({m.model_note.split(':')[0]}) mean {s_m:.2f} vs {t_m:.2f}, "
            f"Wasserstein-1 {m.model_distances['wasserstein1']:.3f}"
        )
    return text


def _format_control_text(fmt: dict, image_status: str, thresholds: dict) -> str:
    """What the format control (file properties only) adds to the reason; empty when it could not run."""
    if not fmt.get("possible"):
        return ""
    text = f" Format control (file properties only): AUC {fmt['auc']:.2f}"
    if fmt["auc"] > thresholds["warn_above"] and image_status == PASS:
        return text + " - the files give the domain away, the harmonised images do not."
    if fmt["auc"] > thresholds["warn_above"]:
        return text + (
            " - the files differ too, but the images still separate after harmonisation: the gap is in "
            "what was imaged, not only in how it was stored."
        )
    return text + "."


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
