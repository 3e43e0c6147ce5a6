"""Figures of the evaluation: pixel confusion per test set, subjects as points, and the forest plot.

plot_confusion is drawn by rule evaluate (one per experiment and test set);
per_subject_png and forest_png by the report, from the evaluation summaries
of every experiment, as PNG bytes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

from usseg.figure_text import MAX_WIDTH_IN, label_rows, png_bytes, pyplot, save_png


def _count(n: int) -> str:
    """A pixel count in a few characters (12, 4.5k, 238k, 1.2M), to fit a cell."""
    if n < 1000:
        return str(int(n))
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M"


def plot_confusion(counts: np.ndarray, class_names: Sequence[str], title: str, path) -> None:
    """Row-normalised pixel confusion matrix (reference class x predicted class), share and count in each cell.

    Sized for the report (usseg.figure_text): at least 4.2 inches wide, so that two classes still leave room
    for the axis labels, and cells large enough for their text at 8 points.
    """
    plt = pyplot()
    counts = np.asarray(counts, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(5.2, 2.6 + 0.62 * n), max(3.2, 1.9 + 0.5 * n)), layout="constrained")
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                shown = f"{share[i, j]:.2f}" if share[i, j] >= 0.005 else "<0.01"
                ax.text(j, i, f"{shown}\n{_count(counts[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center",
                  fontsize=9)
    ax.set_yticks(range(n), [f"{c} ({_count(rows[i, 0])} px)" for i, c in enumerate(class_names)], fontsize=9)
    ax.set_xlabel("predicted class", fontsize=10)
    ax.set_ylabel("reference class", fontsize=10)
    ax.set_title(f"{textwrap.fill(title, 44)}\nshare of each reference row", fontsize=10)
    ax.grid(False)
    # Tight: the square cells leave the constrained layout room that long class names may still overrun.
    save_png(fig, path, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def class_entry(summary: dict, cls: str) -> dict:
    """A class's subject-level Dice, interval and counts from a summary (older summaries: top-level keys)."""
    entry = (summary.get("per_class") or {}).get(cls)
    if entry is not None:
        return entry
    ci = (summary.get("ci95") or {}).get(cls)
    return {"dice": (summary.get("dice") or {}).get(cls), "ci95": ci if isinstance(ci, list) else None,
            "n_subjects": summary.get("n_subjects"), "estimable": isinstance(ci, list)}


def per_subject_png(summaries: dict, experiments: Sequence[str], test_sets: Sequence[str],
                    classes: Sequence[str], labels: Mapping[str, str] | None = None) -> bytes:
    """One panel per experiment: each subject's Dice as a point, per class and test set; the bar is the mean.

    `labels`: the name shown for an experiment or test set (usseg.names), else its key.
    """
    plt = pyplot()
    label = _labeller(labels)
    fig, axes = plt.subplots(len(experiments), 1, figsize=(MAX_WIDTH_IN, 2.3 * len(experiments) + 0.7),
                             squeeze=False, layout="constrained")
    markers = "os^Dvp"
    for ax, exp in zip(axes[:, 0], experiments):
        ticks, tick_labels, x = [], [], 0
        for cls in classes:
            first = x
            for k, ts in enumerate(test_sets):
                s = summaries[(exp, ts)]
                if cls not in (s.get("dice") or {}):
                    continue
                values = [_number(v.get(cls)) for v in (s.get("per_subject") or {}).values()]
                values = [v for v in values if v is not None]
                if values:
                    jitter = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else [0.0]
                    ax.scatter(x + np.asarray(jitter), values, s=18, marker=markers[k % len(markers)],
                               color=f"C{k}", alpha=0.8)
                    ax.hlines(np.mean(values), x - 0.3, x + 0.3, color="black", lw=1.2)
                ticks.append(x)
                tick_labels.append(f"{ts.removeprefix('test_')}\nn={len(values)}")
                x += 1
            if x > first:  # the class name above its test sets
                ax.text((first + x - 1) / 2, 1.1, cls, ha="center", va="center", fontsize=9)
            x += 0.5
        ax.set_xticks(ticks, tick_labels, fontsize=8)
        # At least room for 6 columns, so that one class does not stretch over the whole width.
        ax.set_xlim(-0.7, max(x - 0.8, 5.5))
        ax.set_ylim(-0.03, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("Dice per subject")
        ax.set_title(label(exp), fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[k % len(markers)], color=f"C{k}", ls="", label=label(ts))
               for k, ts in enumerate(test_sets)]
    handles.append(plt.Line2D([], [], color="black", label="mean over subjects"))
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), frameon=False, fontsize=9)
    return png_bytes(fig)


def _labeller(labels: Mapping[str, str] | None):
    return lambda key: str((labels or {}).get(key, key))


# The class-macro mean (usseg.composite): the same classes on every test set.
MEAN_ROW = "class-macro mean Dice"


def forest_rows(summaries: dict, experiments: Sequence[str], test_set: str, classes: Sequence[str]) -> list:
    """[(group, experiment, dice, ci95 or None)] of one test set: a group per class, then the mean."""
    out = []
    for cls in [*classes, MEAN_ROW]:
        for exp in experiments:
            s = summaries[(exp, test_set)]
            if cls == MEAN_ROW:
                e = s.get("mean_foreground") or {"dice": s.get("dice_mean_foreground"), "ci95": None}
            elif cls in (s.get("dice") or {}):
                e = class_entry(s, cls)
            else:
                continue
            ci = e.get("ci95")
            ci = ci if isinstance(ci, list) and len(ci) == 2 and all(_number(v) is not None for v in ci) else None
            out.append((cls, exp, _number(e.get("dice")), ci))
    return out


def forest_png(summaries: dict, experiments: Sequence[str], test_sets: Sequence[str],
               classes: Sequence[str], labels: Mapping[str, str] | None = None) -> bytes:
    """Every experiment's subject-level Dice with its 95 % interval: a panel per test set, rows grouped by class.

    Each group (a class, then the mean over each experiment's classes) has a heading row and one row per
    experiment that scores it; a class never in a test set's references shows "absent" there. Hollow
    points have no interval (fewer than 3 subjects, or no spread). `labels`: names shown (usseg.names).
    """
    plt = pyplot()
    label = _labeller(labels)
    groups: dict[str, list[str]] = {}
    for ts in test_sets:
        for cls, exp, _value, _ci in forest_rows(summaries, experiments, ts, classes):
            groups.setdefault(cls, [])
            if exp not in groups[cls]:
                groups[cls].append(exp)
    layout, y = [], 0  # (y, group or None, experiment or None)
    for cls, exps in groups.items():
        layout.append((y, cls, None))
        y += 1
        for exp in exps:
            layout.append((y, cls, exp))
            y += 1
    n_rows = max(y, 4)
    fig, axes = plt.subplots(1, len(test_sets), figsize=(MAX_WIDTH_IN, 0.23 * n_rows + 1.3), sharey=True,
                             squeeze=False, layout="constrained")
    for k, (ax, ts) in enumerate(zip(axes[0], test_sets)):
        values = {(cls, exp): (v, ci) for cls, exp, v, ci in forest_rows(summaries, experiments, ts, classes)}
        for row, cls, exp in layout:
            if exp is None:
                ax.axhspan(row - 0.5, row + 0.5, color="0.93", zorder=0)
                continue
            if (cls, exp) not in values:
                continue
            value, ci = values[(cls, exp)]
            if value is None:
                ax.text(0.01, row, "absent", va="center", fontsize=8, color="0.4")
            elif ci is not None:
                ax.hlines(row, ci[0], ci[1], color=f"C{k}", lw=1.8)
                ax.plot(value, row, "o", color=f"C{k}", ms=5)
            else:
                ax.plot(value, row, "o", mfc="white", color=f"C{k}", ms=5)
        ax.set_xlim(0, 1)
        ax.set_title(label(ts), fontsize=11)
        ax.set_xlabel("Dice (mean over subjects, 95 % interval)")
        ax.grid(axis="x", alpha=0.3)
    tick_labels = [(cls if exp is None else label(exp)) for _row, cls, exp in layout]
    label_rows(axes[0][0], [row for row, _c, _e in layout], tick_labels,
               [exp is None for _row, _c, exp in layout], n_rows)
    return png_bytes(fig)
