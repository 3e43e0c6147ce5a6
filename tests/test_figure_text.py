"""Figures made for the page: the smallest text of a figure recorded in its PNG (usseg.figure_text)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from usseg import evaluation_figures  # noqa: E402
from usseg.figure_text import (  # noqa: E402
    FONT_KEY,
    MAX_WIDTH_PX,
    MIN_FONT_PX,
    min_font_px,
    png_min_font_px,
    png_text,
    save_png,
)
from usseg.training.curves import plot_curves  # noqa: E402


def test_the_smallest_visible_text_is_recorded_in_pixels(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("title", fontsize=12)
    ax.text(0.5, 0.5, "small", fontsize=6)
    ax.text(0.5, 0.2, "hidden", fontsize=2).set_visible(False)
    ax.tick_params(labelsize=9)
    data = save_png(fig, tmp_path / "f.png", dpi=100)
    plt.close(fig)
    assert png_min_font_px(data) == round(6 * 100 / 72, 2)  # 6 points at 100 dpi, the hidden text left out
    assert png_text((tmp_path / "f.png").read_bytes())[FONT_KEY] == f"{6 * 100 / 72:.2f}"
    assert png_min_font_px(b"not a png") is None


def test_tick_labels_outside_the_axes_do_not_count():
    fig, ax = plt.subplots()
    ax.set_xticks([0, 0.5, 1, 5], ["a", "b", "c", "far"])
    ax.set_xlim(0, 1)  # after the ticks, which would widen the limits to show every one
    ax.get_xticklabels()[-1].set_fontsize(3)  # a tick beyond the limits: never drawn
    ax.tick_params(axis="y", labelsize=10)
    for t in ax.get_xticklabels()[:-1]:
        t.set_fontsize(10)
    assert min_font_px(fig, 72) == 10
    plt.close(fig)


def test_evaluation_figures_are_made_for_the_page(tmp_path):
    """Sizes and fonts the report can show: the 2-class confusion figure (once 250 px with cut titles) too."""
    for n in (2, 9):
        counts = np.arange(n * n).reshape(n, n) * 1000 + np.eye(n, dtype=int) * 50_000
        path = tmp_path / f"confusion{n}.png"
        evaluation_figures.plot_confusion(counts, [f"class{i}" for i in range(n)], "an experiment on a test set", path)
        data = path.read_bytes()
        from PIL import Image

        with Image.open(path) as img:
            assert 300 <= img.width <= MAX_WIDTH_PX  # saved tight: nothing cut, and no wider than the column
        assert png_min_font_px(data) >= MIN_FONT_PX
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_dice_liver": 0.1 * e,
                "val_dice_mean": 0.1 * e, "lr": 0.01} for e in range(1, 6)]
    plot_curves(history, ["background", "liver"], "exp", 4, tmp_path / "curves.png")
    from PIL import Image

    with Image.open(tmp_path / "curves.png") as img:
        assert img.width <= MAX_WIDTH_PX
    assert png_min_font_px((tmp_path / "curves.png").read_bytes()) >= MIN_FONT_PX
