"""Figures of the evaluation: pixel confusion per test set, subjects as points, and the forest plot.

plot_confusion is drawn by rule evaluate (one per experiment and test set);
per_subject_png and forest_png by the report, from the evaluation summaries
of every experiment, as PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(counts: np.ndarray, class_names: Sequence[str], title: str, path) -> None:
    """Row-normalised pixel confusion matrix (reference class x predicted class), counts in the cells."""
    plt = _pyplot()
    counts = np.asarray(counts, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.6 * n), layout="constrained")
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}\n{counts[i, j]}", ha="center", va="center", fontsize=6,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{c} ({rows[i, 0]} px)" for i, c in enumerate(class_names)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("reference class (pixels)")
    ax.set_title(f"{title}: pixel confusion, share of each reference row", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


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
                    classes: Sequence[str]) -> bytes:
    """One panel per experiment: each subject's Dice as a point, per class and test set; the bar is the mean."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(experiments), 1, figsize=(11, 2.6 * len(experiments) + 0.6), squeeze=False,
                             layout="constrained")
    markers = "os^Dvp"
    for ax, exp in zip(axes[:, 0], experiments):
        ticks, labels, x = [], [], 0
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
                               color=f"C{k}", alpha=0.8, label=ts if cls == classes[0] or not ticks else None)
                    ax.hlines(np.mean(values), x - 0.3, x + 0.3, color="black", lw=1.2)
                ticks.append(x)
                labels.append(f"{ts.removeprefix('test_')}\nn={len(values)}")
                x += 1
            if x > first:  # the class name above its test sets
                ax.text((first + x - 1) / 2, 1.1, cls, ha="center", va="center", fontsize=8)
            x += 0.5
        ax.set_xticks(ticks, labels, fontsize=7)
        # At least room for 6 columns, so that one class does not stretch over the whole width.
        ax.set_xlim(-0.7, max(x - 0.8, 5.5))
        ax.set_ylim(-0.03, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("Dice per subject")
        ax.set_title(exp, fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], marker=markers[k % len(markers)], color=f"C{k}", ls="", label=ts)
               for k, ts in enumerate(test_sets)]
    handles.append(plt.Line2D([], [], color="black", label="mean over subjects"))
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), frameon=False, fontsize=8)
    return _png(fig)


def forest_png(summaries: dict, experiments: Sequence[str], test_sets: Sequence[str],
               classes: Sequence[str]) -> bytes:
    """Every experiment's subject-level Dice with its 95 % interval, per test set and class (and mean)."""
    plt = _pyplot()
    rows = []
    for ts in test_sets:
        for cls in [*classes, "mean foreground"]:
            for exp in experiments:
                s = summaries[(exp, ts)]
                if cls == "mean foreground":
                    e = s.get("mean_foreground") or {"dice": s.get("dice_mean_foreground"), "ci95": None}
                    label = f"{exp} · {ts} · class-macro mean ({', '.join(e.get('classes') or []) or '?'})"
                elif cls in (s.get("dice") or {}):
                    e = class_entry(s, cls)
                    label = f"{exp} · {ts} · {cls}"
                else:
                    continue
                if _number(e.get("dice")) is None:
                    continue
                note = e.get("interval_note") or f"n = {e.get('n_subjects')} subjects: no interval"
                rows.append((label, _number(e["dice"]), e.get("ci95"), note, f"C{test_sets.index(ts)}"))
    fig, ax = plt.subplots(figsize=(11, 0.24 * max(len(rows), 4) + 1.2), layout="constrained")
    for i, (_label, value, ci, note, colour) in enumerate(rows):
        y = len(rows) - 1 - i
        if isinstance(ci, list) and all(_number(v) is not None for v in ci):
            ax.hlines(y, ci[0], ci[1], color=colour, lw=1.5)
            ax.plot(value, y, "o", color=colour, ms=4)
        else:
            ax.plot(value, y, "o", mfc="white", color=colour, ms=4)
            ax.text(1.02, y, note, va="center", fontsize=6, transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Dice, mean over subjects, with 95 % t interval (hollow: no interval)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
