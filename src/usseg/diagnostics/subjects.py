"""Check 2: count subjects, not images.

Frames of one subject share anatomy, scanner settings and noise, so the size
of a dataset for evaluation is bounded by its independent subjects. The check
counts distinct subjects per modality and split, the labeled frames of each
subject, and the effective sample size of the target domain's labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from usseg.contracts import split_rank
from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import PASS, CheckResult, status_below

DEFAULT_THRESHOLDS = {"warn_below": 10, "fail_below": 5}


def kish_effective_size(frames_per_subject) -> float:
    """(sum n)^2 / sum n^2: how many equally sized subjects the frames are worth.

    A frame-averaged metric over subjects with n_i frames each varies as if
    it came from this many equally weighted subjects; it equals the subject
    count only when every subject contributes the same number of frames.
    """
    n = np.asarray(frames_per_subject, dtype=float)
    n = n[n > 0]
    if n.size == 0:
        return 0.0
    return float(n.sum() ** 2 / (n**2).sum())


def frames_per_subject(inputs: DiagnosticInputs) -> pd.DataFrame:
    df = inputs.images
    rows = []
    for (m, subj), sub in df.groupby(["modality", "subject_id"], sort=True):
        rows.append(
            {
                "modality": m,
                "domain": inputs.domain_of(m),
                "subject_id": subj,
                "n_frames": len(sub),
                "n_labeled_frames": int(sub["has_mask"].sum()),
                "splits": ";".join(sorted(sub["split"].unique(), key=_split_key)),
                "orig_splits": ";".join(sorted(sub["orig_split"].unique())),
            }
        )
    cols = [
        "modality",
        "domain",
        "subject_id",
        "n_frames",
        "n_labeled_frames",
        "splits",
        "orig_splits",
    ]
    out = pd.DataFrame(rows, columns=cols)
    order = {m: i for i, m in enumerate(inputs.modalities)}
    return out.sort_values(
        ["modality", "n_labeled_frames", "subject_id"],
        ascending=[True, False, True],
        key=lambda c: c.map(order) if c.name == "modality" else c,
    ).reset_index(drop=True)


def _split_key(s: str) -> tuple:
    return split_rank(s)


def subjects_table(inputs: DiagnosticInputs) -> pd.DataFrame:
    """Distinct subjects (all and labeled) and images per modality and split, plus an 'all' row per modality."""
    df = inputs.images
    rows = []
    for m in inputs.modalities:
        dm = df[df["modality"] == m]
        if dm.empty:
            continue
        groups = [
            (s, dm[dm["split"] == s]) for s in sorted(dm["split"].unique(), key=_split_key)
        ] + [("all", dm)]
        for s, sub in groups:
            lab = sub[sub["has_mask"]]
            rows.append(
                {
                    "modality": m,
                    "domain": inputs.domain_of(m),
                    "split": s,
                    "n_subjects": sub["subject_id"].nunique(),
                    "n_labeled_subjects": lab["subject_id"].nunique(),
                    "n_images": len(sub),
                    "n_labeled_images": len(lab),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "modality",
            "domain",
            "split",
            "n_subjects",
            "n_labeled_subjects",
            "n_images",
            "n_labeled_images",
        ],
    )


def _frames_text(fps: pd.DataFrame, limit: int = 8) -> str:
    items = [f"{r.subject_id} {r.n_labeled_frames}" for r in fps.itertuples()][:limit]
    more = len(fps) - limit
    return ", ".join(items) + (f", ... ({more} more)" if more > 0 else "")


def plot(
    table: pd.DataFrame, fps: pd.DataFrame, summary: dict, inputs: DiagnosticInputs, path
) -> None:
    """subjects.png: (a) subjects per modality and split, (b) labeled frames per target subject with the
    check's thresholds, (c) labeled frames per subject of the other modalities."""
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    with figures.style():
        fig = figures.new_figure(10.4, 7.6)
        gs = fig.add_gridspec(2, 2, height_ratios=[1, 1])
        _subjects_per_split_panel(fig, fig.add_subplot(gs[0, 0]), table, inputs, colours)
        _target_frames_panel(fig.add_subplot(gs[0, 1]), fps, summary, inputs, colours)
        _other_frames_panel(fig.add_subplot(gs[1, :]), fps, inputs, colours)
        fig.suptitle("Subjects: the independent units behind the images")
        figures.save(fig, path)


def _subjects_per_split_panel(fig, ax, table: pd.DataFrame, inputs: DiagnosticInputs, colours) -> None:
    """(a) Stacked bars per modality and split: subjects with labels, then without; the figure's legend."""
    t = table[table["split"] != "all"].reset_index(drop=True)
    x = np.arange(len(t))
    c = [colours[m] for m in t["modality"]]
    b1 = ax.bar(x, t["n_labeled_subjects"], color=c, edgecolor="black", linewidth=0.5)
    b2 = ax.bar(
        x,
        t["n_subjects"] - t["n_labeled_subjects"],
        bottom=t["n_labeled_subjects"],
        color=figures.UNLABELED_COLOUR,
        hatch="//",
        edgecolor="black",
        linewidth=0.5,
    )
    figures.label_bars(ax, b1, t["n_labeled_subjects"].tolist(), inside=True)
    figures.label_bars(
        ax, b2, (t["n_subjects"] - t["n_labeled_subjects"]).tolist(), inside=True
    )
    ax.set_xticks(x, [f"{m}\n{s}" for m, s in zip(t["modality"], t["split"])], fontsize=9)
    ax.set_ylabel("distinct subjects")
    ax.set_xlabel("modality and split (splits.csv)")
    ax.set_title("Subjects per modality and split")
    handles = [
        Patch(facecolor=colours[m], edgecolor="black", label=f"{m}: with labels")
        for m in inputs.modalities
        if m in set(t["modality"])
    ]
    handles.append(
        Patch(
            facecolor=figures.UNLABELED_COLOUR, hatch="//", edgecolor="black", label="no labels"
        )
    )
    # Outside the axes: a legend never hides a bar.
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    ax.set_ylim(0, max(1, int(t["n_subjects"].max())) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _target_frames_panel(ax, fps: pd.DataFrame, summary: dict, inputs: DiagnosticInputs, colours) -> None:
    """(b) Labeled frames per target subject; the title carries the subject count, thresholds and Kish size."""
    target = inputs.target_modality
    tf = fps[(fps["modality"] == target) & (fps["n_labeled_frames"] > 0)]
    if tf.empty:
        ax.axis("off")
        ax.text(
            0.5, 0.5, f"no labeled {target} subjects", ha="center", va="center", fontsize=13
        )
    else:
        bars = ax.bar(
            tf["subject_id"],
            tf["n_labeled_frames"],
            color=colours[target],
            edgecolor="black",
            linewidth=0.5,
        )
        figures.label_bars(ax, bars, tf["n_labeled_frames"].tolist(), fontsize=10)
        ax.set_xlabel(f"{target} subject")
        ax.set_ylabel("labeled frames")
        ax.margins(y=0.12)
    th = summary["thresholds"]
    # Two short lines: the panel is half the figure wide, and a longer title would be cut.
    ax.set_title(
        f"Labeled {target} ({inputs.domain_of(target)}) frames per subject\n"
        f"{summary['n_labeled_target_subjects']} subjects (WARN < {th['warn_below']}, "
        f"FAIL < {th['fail_below']}); effective {summary['kish_effective_size']:.1f} (Kish)"
    )
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _other_frames_panel(ax, fps: pd.DataFrame, inputs: DiagnosticInputs, colours) -> None:
    """(c) Labeled frames per subject of the other modalities, by modality and split, largest first."""
    of = fps[(fps["modality"] != inputs.target_modality) & (fps["n_labeled_frames"] > 0)]
    if of.empty:
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "no labeled subjects in the other modalities",
            ha="center",
            va="center",
            fontsize=13,
        )
        return
    of = of.assign(_order=[_split_key(sp.split(";")[0]) for sp in of["splits"]])
    of = of.sort_values(
        ["modality", "_order", "n_labeled_frames", "subject_id"],
        ascending=[True, True, False, True],
        kind="stable",
    )
    xs = np.arange(len(of))
    bars = ax.bar(
        xs,
        of["n_labeled_frames"],
        color=[colours[m] for m in of["modality"]],
        edgecolor="black",
        linewidth=0.5,
    )
    figures.label_bars(ax, bars, of["n_labeled_frames"].tolist(), fontsize=8)
    rotate = 90 if len(of) > 20 else 0
    ax.set_xticks(
        xs,
        [
            f"{s}\n{sp}" if not rotate else s
            for s, sp in zip(of["subject_id"], of["splits"])
        ],
        fontsize=8 if len(of) > 14 else 9,
        rotation=rotate,
    )
    ax.set_xlabel("subject (and split)" if not rotate else "subject")
    ax.set_ylabel("labeled frames")
    ax.margins(y=0.12)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    mods = ", ".join(f"{m} ({inputs.domain_of(m)})" for m in dict.fromkeys(of["modality"]))
    ax.set_title(f"Labeled frames per subject: {mods}")


def check_subjects(inputs: DiagnosticInputs, outputs: DiagnosticsOutputs) -> CheckResult:
    table = subjects_table(inputs)
    fps = frames_per_subject(inputs)
    table.to_csv(outputs.subjects_csv, index=False)
    fps.to_csv(outputs.frames_per_subject, index=False)
    target = inputs.target_modality
    domain = inputs.domain_of(target)
    tf = fps[(fps["modality"] == target) & (fps["n_labeled_frames"] > 0)]
    n_subj = len(tf)
    summary = {
        "n_labeled_target_subjects": n_subj,
        "n_labeled_target_frames": int(tf["n_labeled_frames"].sum()),
        "kish_effective_size": kish_effective_size(tf["n_labeled_frames"]),
        "labeled_frames_per_target_subject": dict(
            zip(tf["subject_id"], tf["n_labeled_frames"].astype(int))
        ),
        "subjects_per_modality": {
            m: int(fps[fps["modality"] == m]["subject_id"].nunique()) for m in inputs.modalities
        },
    }
    thresholds = inputs.opt("min_labeled_target_subjects", DEFAULT_THRESHOLDS)
    summary["thresholds"] = thresholds
    plot(table, fps, summary, inputs, outputs.subjects)
    status = status_below(n_subj, thresholds)
    kish = summary["kish_effective_size"]
    if n_subj == 0:
        reason = f"no labeled {target} ({domain}) subjects: nothing can be evaluated on the target domain."
    else:
        frames = f"{summary['n_labeled_target_frames']} labeled frames: {_frames_text(tf)}"
        if status == PASS:
            reason = f"{n_subj} labeled {target} ({domain}) subjects ({frames})"
        else:
            reason = (
                f"only {n_subj} labeled {target} ({domain}) subjects ({frames}): "
                f"a subject-grouped test on {domain} images will be unstable"
            )
        reason += (
            f"; effective number of subjects {kish:.1f} (Kish: the {n_subj} subjects' unequal frame counts "
            f"make a frame-averaged metric vary like {kish:.1f} equally sized subjects, not "
            f"{summary['n_labeled_target_frames']} independent images)."
        )
    return CheckResult(
        id="subjects",
        title="Subjects, not images",
        status=status,
        value=n_subj,
        threshold=f"labeled {target} subjects: WARN < {thresholds['warn_below']}, FAIL < {thresholds['fail_below']}",
        reason=reason,
        details=summary,
    )
