"""Shared figure helpers: one style, colours per domain, saving.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg
renderer and never through pyplot, so the diagnostics neither depend on nor
change a global backend (they run inside Snakemake jobs and tests).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from usseg.figure_text import DPI, MAX_WIDTH_IN, save_png

# Colour-blind-safe pair for the two domains; extra modalities take the next tab10 colours.
DOMAIN_COLOURS = {"synthetic": "#3B75AF", "real": "#E1812C"}
UNLABELED_COLOUR = "#C9C9C9"
STATUS_COLOURS = {"PASS": "#2E8540", "WARN": "#C98A00", "FAIL": "#C0392B"}
_EXTRA = ["#519E3E", "#8D69B8", "#84584E", "#D57FBE", "#7F7F7F", "#BCBD22", "#17BECF"]

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 14,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
}


@contextmanager
def style():
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure at most the report's text column wide (usseg.figure_text), so it is shown at its natural size."""
    return Figure(figsize=(min(width, MAX_WIDTH_IN), height), layout="constrained")


def save(fig: Figure, path, dpi: int = DPI) -> Path:
    """Save as PNG with its smallest text size recorded (usseg.figure_text.save_png)."""
    path = Path(path)
    save_png(fig, path, dpi=dpi)
    return path


def modality_colours(modalities, domain_of) -> dict[str, str]:
    """One colour per modality: the domain's colour for the first modality of each domain."""
    used: set[str] = set()
    extra = iter(_EXTRA)
    out = {}
    for m in modalities:
        colour = DOMAIN_COLOURS.get(domain_of(m))
        if colour is None or colour in used:
            colour = next(extra, "#555555")
        used.add(colour)
        out[m] = colour
    return out


def message_figure(path, title: str, message: str) -> Path:
    """A figure that states why there is nothing to plot (e.g. a modality without masks)."""
    with style():
        fig = new_figure(8, 2.5)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.set_title(title)
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=12)
        return save(fig, path)


def label_bars(ax, bars, values, fmt="{:d}", inside=False, fontsize=9):
    """Write each bar's value on or above it (skipping zeros); inside, on a white box so hatching stays readable."""
    for bar, v in zip(bars, values):
        if not v:
            continue
        x = bar.get_x() + bar.get_width() / 2
        if inside:
            y = bar.get_y() + bar.get_height() / 2
            ax.text(
                x,
                y,
                fmt.format(v),
                ha="center",
                va="center",
                fontsize=fontsize,
                bbox={
                    "boxstyle": "round,pad=0.2",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.85,
                },
            )
        else:
            ax.annotate(
                fmt.format(v),
                (x, bar.get_y() + bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=fontsize,
            )
