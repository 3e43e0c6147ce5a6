"""Label shift: do the organs themselves differ between the domains?

A domain gap is not only grey levels. If real-image organs are smaller,
rarer or elsewhere in the fan than simulator organs, a model trained on the
simulator meets shapes it never saw, whatever the intensities. Per class and
modality this module measures, from the decoded labels:

- presence: the share of labeled images (and the number of subjects) in
  which the class appears;
- area: the class's pixels as a share of the field of view (so images of
  different sizes compare), per image where the class is present;
- position: the centre of the class's pixels in field-of-view coordinates
  (depth 0 at the top of the fan, 1 at its bottom; lateral 0 left, 1 right).

The subject is the unit: each subject's images are summarised by their
median first, then the domain by the median over its subjects. Between the
target modality and the others, per class: the size factor (ratio of the
median areas, shown as the larger over the smaller), the Wasserstein-1
distance between the log2 areas (in doublings, each subject weighted
equally), the subject-level Mann-Whitney p-value of the log areas, the
distance between the median positions and the difference in presence share.
A class whose size factor, position distance or presence difference exceeds
its `label_shift` threshold in config, with a subject-level Mann-Whitney
p-value below `label_shift.alpha`, is named in the domain-shift verdict.
Classes a domain never labels are class balance's finding, not a shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from scipy.stats import mannwhitneyu, wasserstein_distance

from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.label_stats import LabelStats
from usseg.diagnostics.outputs import DiagnosticsOutputs, write_json

DEFAULTS = {
    "size_factor_above": 1.33,
    "position_distance_above": 0.15,
    "presence_difference_above": 0.25,
    "min_subjects": 2,
    "alpha": 0.05,
}
TABLE_COLUMNS = [
    "class",
    "modality",
    "domain",
    "n_labeled_images",
    "n_images_present",
    "presence_share",
    "n_subjects_present",
    "area_fov_share_median",
    "area_fov_share_q25",
    "area_fov_share_q75",
    "depth_median",
    "lateral_median",
]


def label_shift_config(inputs: DiagnosticInputs) -> dict:
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in (inputs.opt("label_shift", {}) or {}).items() if v is not None})
    return cfg


def per_image_geometry(inputs: DiagnosticInputs, stats: LabelStats, fov_box: dict) -> pd.DataFrame:
    """Long table: one row per (labeled image, class present) with FOV-relative area and position."""
    names = inputs.class_names
    meta = inputs.images.set_index("image_id")
    rows = []
    for k, iid in enumerate(stats.image_ids):
        if iid in stats.bad_shape or iid not in fov_box or meta.at[iid, "decode_flagged"]:
            continue
        top, bottom, left, right, fov_px = fov_box[iid]
        for c in range(1, len(names)):
            n = int(stats.counts[k, c])
            if n == 0:
                continue
            r, col = stats.centroids[k, c]
            rows.append(
                {
                    "image_id": iid,
                    "modality": meta.at[iid, "modality"],
                    "subject_id": meta.at[iid, "subject_id"],
                    "class": names[c],
                    "area": n / max(fov_px, 1),
                    "depth": (r - top) / max(bottom - top, 1),
                    "lateral": (col - left) / max(right - left, 1),
                }
            )
    return pd.DataFrame(
        rows, columns=["image_id", "modality", "subject_id", "class", "area", "depth", "lateral"]
    )


def usable_frames(inputs: DiagnosticInputs, stats: LabelStats) -> pd.DataFrame:
    """Every labeled frame the label shift uses, with the set of classes it contains."""
    names = inputs.class_names
    meta = inputs.images.set_index("image_id")
    rows = []
    for k, iid in enumerate(stats.image_ids):
        if iid in stats.bad_shape or meta.at[iid, "decode_flagged"]:
            continue
        present = {names[c] for c in range(1, len(names)) if stats.counts[k, c] > 0}
        rows.append(
            {
                "image_id": iid,
                "modality": meta.at[iid, "modality"],
                "subject_id": meta.at[iid, "subject_id"],
                "classes": present,
            }
        )
    return pd.DataFrame(rows, columns=["image_id", "modality", "subject_id", "classes"])


def _subject_medians(geo: pd.DataFrame) -> pd.DataFrame:
    return geo.groupby(["class", "modality", "subject_id"])[["area", "depth", "lateral"]].median()


def shift_table(inputs: DiagnosticInputs, stats: LabelStats, geo: pd.DataFrame) -> pd.DataFrame:
    """Presence, area and position per class and modality (label_shift.csv)."""
    meta = inputs.images.set_index("image_id")
    usable = [i for i in stats.image_ids if i not in stats.bad_shape and not meta.at[i, "decode_flagged"]]
    n_labeled = meta.loc[usable, "modality"].value_counts()
    subj = _subject_medians(geo)
    rows = []
    for name in inputs.class_names[1:]:
        for m in inputs.modalities:
            if n_labeled.get(m, 0) == 0:
                continue
            g = geo[(geo["class"] == name) & (geo["modality"] == m)]
            s = subj.loc[(name, m)] if (name, m) in subj.index.droplevel(2) else None
            rows.append(
                {
                    "class": name,
                    "modality": m,
                    "domain": inputs.domain_of(m),
                    "n_labeled_images": int(n_labeled[m]),
                    "n_images_present": len(g),
                    "presence_share": len(g) / int(n_labeled[m]),
                    "n_subjects_present": 0 if s is None else len(s),
                    "area_fov_share_median": np.nan if s is None else float(s["area"].median()),
                    "area_fov_share_q25": np.nan if s is None else float(s["area"].quantile(0.25)),
                    "area_fov_share_q75": np.nan if s is None else float(s["area"].quantile(0.75)),
                    "depth_median": np.nan if s is None else float(s["depth"].median()),
                    "lateral_median": np.nan if s is None else float(s["lateral"].median()),
                }
            )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def subject_weighted_wasserstein(a: pd.DataFrame, b: pd.DataFrame, column: str) -> float:
    """Wasserstein-1 between two samples of `column`, each subject's images weighing 1 in total."""
    wa = 1.0 / a.groupby("subject_id")[column].transform("size")
    wb = 1.0 / b.groupby("subject_id")[column].transform("size")
    return float(wasserstein_distance(a[column], b[column], wa, wb))


def _mw(a, b) -> float:
    """Two-sided Mann-Whitney p-value of two samples of subject summaries (1.0 when one is constant-equal)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0 or b.size == 0 or np.ptp(np.r_[a, b]) == 0:
        return 1.0
    return float(mannwhitneyu(a, b).pvalue)


def subject_presence(frames: pd.DataFrame, name: str) -> np.ndarray:
    """Per subject: the share of its labeled frames that contain class `name`."""
    return frames.groupby("subject_id")["classes"].agg(lambda s: np.mean([name in c for c in s])).to_numpy()


def class_distances(
    inputs: DiagnosticInputs,
    table: pd.DataFrame,
    geo: pd.DataFrame,
    cfg: dict,
    frames: pd.DataFrame | None = None,
) -> dict:
    """Per class: target vs the other modalities, with the reasons a class counts as shifted.

    A class counts as shifted in size, position or presence when the effect
    exceeds its threshold AND a subject-level Mann-Whitney test (subjects'
    medians or presence shares) gives p below `alpha`: an effect that a
    handful of subjects could show by chance is reported, not named.
    `frames` (image_id, modality, subject_id, classes) lists every usable
    labeled frame, those without any organ included.
    """
    target = inputs.target_modality
    subj = _subject_medians(geo).reset_index()
    if frames is None:
        frames = geo.groupby(["image_id", "modality", "subject_id"])["class"].agg(set).rename("classes")
        frames = frames.reset_index()
    geo_all_t = frames[frames["modality"] == target]
    geo_all_s = frames[frames["modality"] != target]
    out = {}
    for name in inputs.class_names[1:]:
        entry = _presence_entry(table[table["class"] == name], target)
        if entry is None:
            continue
        if entry["n_subjects_target"] == 0 or entry["n_subjects_source"] == 0:
            side = target if entry["n_subjects_target"] == 0 else "the other modalities"
            entry["note"] = f"never labeled in {side}: see class balance"
            entry["shifted"] = []
            out[name] = entry
            continue
        entry["presence_difference"] = entry["presence_share_target"] - entry["presence_share_source"]
        g_t, g_s = _sides(geo, name, target)
        s_t, s_s = _sides(subj, name, target)
        entry.update(_size_and_position(g_t, g_s, s_t, s_s))
        shifted = _size_and_position_tests(entry, s_t, s_s, cfg)
        entry["presence_mannwhitney_p"] = _mw(
            subject_presence(geo_all_t, name), subject_presence(geo_all_s, name)
        )
        if (
            abs(entry["presence_difference"]) > cfg["presence_difference_above"]
            and entry["presence_mannwhitney_p"] < float(cfg["alpha"])
        ):
            shifted.append("presence")
        entry["shifted"] = shifted
        out[name] = entry
    return out


def _presence_entry(t: pd.DataFrame, target: str) -> dict | None:
    """A class's presence on each side from its rows of the shift table; None when a side has no labeled
    images."""
    tgt, src = t[t["modality"] == target], t[t["modality"] != target]
    if tgt.empty or src.empty:
        return None
    src_images = int(src["n_labeled_images"].sum())
    src_present = int(src["n_images_present"].sum())
    return {
        "presence_share_target": float(tgt["presence_share"].iloc[0]),
        "presence_share_source": src_present / src_images if src_images else None,
        "n_subjects_target": int(tgt["n_subjects_present"].iloc[0]),
        "n_subjects_source": int(src["n_subjects_present"].sum()),
    }


def _sides(df: pd.DataFrame, name: str, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of class `name` in the target modality, and in the others."""
    is_class = df["class"] == name
    return df[is_class & (df["modality"] == target)], df[is_class & (df["modality"] != target)]


def _size_and_position(g_t: pd.DataFrame, g_s: pd.DataFrame, s_t: pd.DataFrame, s_s: pd.DataFrame) -> dict:
    """Size and position effects of a class, target vs source, from per-image rows (g_) and the subjects'
    medians (s_)."""
    ratio = float(s_t["area"].median() / s_s["area"].median())
    return {
        "area_ratio_target_over_source": ratio,
        "size_factor": float(max(ratio, 1 / ratio)) if ratio > 0 else None,
        "area_wasserstein_log2": subject_weighted_wasserstein(
            g_t.assign(la=np.log2(g_t["area"])), g_s.assign(la=np.log2(g_s["area"])), "la"
        ),
        "position_distance": float(
            np.hypot(
                s_t["depth"].median() - s_s["depth"].median(),
                s_t["lateral"].median() - s_s["lateral"].median(),
            )
        ),
        "depth_difference": float(s_t["depth"].median() - s_s["depth"].median()),
    }


def _size_and_position_tests(entry: dict, s_t: pd.DataFrame, s_s: pd.DataFrame, cfg: dict) -> list[str]:
    """Adds the subject-level tests of size and position to `entry` (or a note when a side has too few
    subjects) and returns which of the two count as shifted."""
    if min(len(s_t), len(s_s)) < int(cfg["min_subjects"]):
        entry["note"] = (
            f"fewer than {cfg['min_subjects']} subjects with the class on a side: size and position not compared"
        )
        return []
    alpha = float(cfg["alpha"])
    shifted = []
    entry["area_mannwhitney_p"] = _mw(np.log2(s_t["area"]), np.log2(s_s["area"]))
    # Two coordinates, two tests: Bonferroni.
    entry["position_mannwhitney_p"] = min(
        1.0,
        2 * min(_mw(s_t["depth"], s_s["depth"]), _mw(s_t["lateral"], s_s["lateral"])),
    )
    if (
        entry["size_factor"]
        and entry["size_factor"] > cfg["size_factor_above"]
        and entry["area_mannwhitney_p"] < alpha
    ):
        shifted.append("size")
    if (
        entry["position_distance"] > cfg["position_distance_above"]
        and entry["position_mannwhitney_p"] < alpha
    ):
        shifted.append("position")
    return shifted


def describe(name: str, d: dict, target: str) -> str:
    """One phrase per shifted class, e.g. 'kidney 1.8x smaller in RUS (p = 0.01, 4 vs 9 subjects)'."""
    parts = []
    if "size" in d["shifted"]:
        word = "smaller" if d["area_ratio_target_over_source"] < 1 else "larger"
        p = d.get("area_mannwhitney_p")
        parts.append(
            f"{d['size_factor']:.1f}x {word} in {target}"
            + (f" (subject-level p = {p:.2g}" if p is not None else " (")
            + f", {d['n_subjects_target']} vs {d['n_subjects_source']} subjects)"
        )
    if "position" in d["shifted"]:
        where = "deeper" if d["depth_difference"] > 0 else "shallower"
        parts.append(
            f"centre moved {d['position_distance']:.2f} field-of-view units ({where}; "
            f"p = {d['position_mannwhitney_p']:.2g})"
        )
    if "presence" in d["shifted"]:
        parts.append(
            f"in {100 * d['presence_share_target']:.0f}% of {target} vs "
            f"{100 * d['presence_share_source']:.0f}% of other images "
            f"(subject-level p = {d['presence_mannwhitney_p']:.2g})"
        )
    return f"{name} " + ", ".join(parts)


def plot(inputs: DiagnosticInputs, table: pd.DataFrame, geo: pd.DataFrame, distances, cfg, path):
    """label_shift.png: presence, organ size and organ centre per class and modality, and the size shift of
    each class labeled on both sides; one modality legend below the four panels."""
    names = [n for n in inputs.class_names[1:] if (table["class"] == n).any()]
    mods = [m for m in inputs.modalities if (table["modality"] == m).any()]
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    with figures.style():
        fig = figures.new_figure(10.4, 8.4)
        gs = fig.add_gridspec(2, 2)
        _presence_panel(fig.add_subplot(gs[0, 0]), inputs, table, names, mods, colours)
        _size_panel(fig.add_subplot(gs[0, 1]), _subject_medians(geo).reset_index(), names, mods, colours)
        _position_panel(fig.add_subplot(gs[1, 0]), inputs, table, mods, colours)
        _size_shift_panel(fig.add_subplot(gs[1, 1]), inputs, names, distances, cfg)
        handles = [Patch(facecolor=colours[m], edgecolor="black", label=f"{m} ({inputs.domain_of(m)})")
                   for m in mods]
        # One legend for the modalities, outside the panels: it never hides a bar or a point.
        fig.legend(handles=handles, loc="outside lower center", ncol=max(len(handles), 1), frameon=False)
        fig.suptitle(
            f"Label shift: organ presence, size and position, {inputs.target_modality} vs the other modalities"
        )
        figures.save(fig, path)


def _group_offsets(names: list[str], mods: list[str]) -> tuple[np.ndarray, float]:
    """Class positions on the x axis and the width of one modality's slot within a class."""
    return np.arange(len(names)), 0.8 / max(len(mods), 1)


def _presence_panel(ax, inputs: DiagnosticInputs, table: pd.DataFrame, names, mods, colours) -> None:
    """Bars: the share of labeled images with each class, per modality."""
    x, width = _group_offsets(names, mods)
    for k, m in enumerate(mods):
        t = table[table["modality"] == m].set_index("class").reindex(names)
        ax.bar(
            x - 0.4 + width * (k + 0.5),
            100 * t["presence_share"].fillna(0),
            width,
            color=colours[m],
            edgecolor="black",
            linewidth=0.5,
            label=f"{m} ({inputs.domain_of(m)})",
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("labeled images with the class (%)")
    ax.set_title("Presence per class")


def _size_panel(ax, subj: pd.DataFrame, names, mods, colours) -> None:
    """Dots: each subject's median organ area (share of the field of view), a bar at the median."""
    x, width = _group_offsets(names, mods)
    for k, m in enumerate(mods):
        for j, n in enumerate(names):
            v = subj[(subj["class"] == n) & (subj["modality"] == m)]["area"].to_numpy()
            if v.size == 0:
                continue
            xs = np.full(v.size, x[j] - 0.4 + width * (k + 0.5))
            ax.scatter(xs, 100 * v, s=18, color=colours[m], edgecolor="black", linewidth=0.4, zorder=3)
            ax.hlines(100 * np.median(v), xs[0] - width / 2, xs[0] + width / 2, color="black", linewidth=2)
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("area, % of the field of view (log scale)")
    ax.set_title("Organ size: a dot per subject, bar = median")


def _position_panel(ax, inputs: DiagnosticInputs, table: pd.DataFrame, mods, colours) -> None:
    """Each class's median centre per modality, in field-of-view coordinates, depth running down."""
    for m in mods:
        t = table[table["modality"] == m].dropna(subset=["depth_median"])
        ax.scatter(t["lateral_median"], t["depth_median"], s=50, color=colours[m], edgecolor="black",
                   label=f"{m} ({inputs.domain_of(m)})", zorder=3)
        for n, lat, dep in zip(t["class"], t["lateral_median"], t["depth_median"]):
            ax.annotate(n, (lat, dep), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)  # depth runs down, as in the image
    ax.set_xlabel("lateral position in the field of view (0 left, 1 right)")
    ax.set_ylabel("depth in the field of view (0 top)")
    ax.set_title("Median organ centre per modality")


def _size_shift_panel(ax, inputs: DiagnosticInputs, names, distances: dict, cfg: dict) -> None:
    """Horizontal bars: log2 of the target's median area over the others', shifted classes highlighted,
    the test and subjects beside each class name."""
    cls = [n for n in names if n in distances and "size_factor" in distances[n]]
    if cls:
        factors = [distances[n]["size_factor"] for n in cls]
        ratio = [distances[n]["area_ratio_target_over_source"] for n in cls]
        bar_colours = [
            figures.STATUS_COLOURS["WARN"] if "size" in distances[n]["shifted"] else "0.6" for n in cls
        ]
        ax.barh(cls, np.log2(ratio), color=bar_colours, edgecolor="black", linewidth=0.5)
        tick_labels = []
        for i, (n, f, r) in enumerate(zip(cls, factors, ratio)):
            p = distances[n].get("area_mannwhitney_p")
            subjects = f"{distances[n]['n_subjects_target']} vs {distances[n]['n_subjects_source']} subj."
            test = f"p {p:.2g}" if p is not None else "too few subjects"
            # The test beside the class name (laid out with the axes, never cut); the factor on the
            # side of zero away from the bar, short enough to stay inside the axes.
            tick_labels.append(f"{n}\n{test}, {subjects}")
            ax.annotate(f"{f:.2f}x {'smaller' if r < 1 else 'larger'}",
                        (max(np.log2(r), 0.0), i), xytext=(4, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=9)
        ax.set_yticks(range(len(cls)), tick_labels, fontsize=9)
        lim = np.log2(cfg["size_factor_above"])
        ax.axvspan(-lim, lim, color="0.9", zorder=0)
        ax.axvline(0, color="black", linewidth=0.8)
        span = max(1.5, float(np.abs(np.log2(ratio)).max()) * 1.8)  # room for the annotations
        ax.set_xlim(-span, span)
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no class is labeled in both domains", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(f"log2 of the median area, {inputs.target_modality} over the others")
    ax.set_title(f"Size shift per class (grey band: within {cfg['size_factor_above']}x;\n"
                 f"highlighted: beyond it, p < {cfg['alpha']})")


def check_label_shift(inputs: DiagnosticInputs, stats: LabelStats, survey, outputs: DiagnosticsOutputs) -> dict:
    """Write label_shift.csv, label_shift.json and label_shift.png; return the summary the verdict uses."""
    cfg = label_shift_config(inputs)
    geo = per_image_geometry(inputs, stats, survey.fov_box)
    table = shift_table(inputs, stats, geo)
    table.to_csv(outputs.label_shift_csv, index=False)
    distances = class_distances(inputs, table, geo, cfg, usable_frames(inputs, stats))
    if geo.empty:
        figures.message_figure(
            outputs.label_shift,
            "Label shift",
            "no decoded masks with organs: organ presence, size and position cannot be compared",
        )
    else:
        plot(inputs, table, geo, distances, cfg, outputs.label_shift)
    shifted = {n: d for n, d in distances.items() if d["shifted"]}
    summary = {
        "target": inputs.target_modality,
        "thresholds": cfg,
        "units": {
            "area": "share of the field of view",
            "position": "field-of-view coordinates (depth 0 top, lateral 0 left)",
            "area_wasserstein_log2": "doublings of area, each subject weighted equally",
        },
        "classes": distances,
        "shifted_classes": sorted(shifted, key=inputs.class_names.index),
        "phrases": [describe(n, d, inputs.target_modality) for n, d in shifted.items()],
    }
    write_json(outputs.label_shift_json, summary)
    return summary
