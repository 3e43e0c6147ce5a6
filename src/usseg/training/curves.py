"""The training curves (curves.png): loss and validation Dice per epoch, drawn for the report.

Apart from usseg.training.history, which every rule's bridge (usseg.step) imports:
the figure code would otherwise be code of every rule.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from usseg.training.history import history_columns


def plot_curves(history: list[dict], class_names: list[str], name: str, best_epoch: int, path: Path) -> None:
    """Loss (train, val) and validation Dice per class against epochs, best epoch marked.

    The legends sit beside the axes (usseg.figure_text: made for the report), so they never hide a curve
    or the best-epoch mark.
    """
    from usseg.figure_text import MAX_WIDTH_IN, pyplot, save_png

    plt = pyplot()

    df = pd.DataFrame(history, columns=history_columns(class_names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.9), layout="constrained",
                                   width_ratios=[1, 1.15])
    marker = "o" if len(df) <= 20 else None
    ax1.plot(df["epoch"], df["train_loss"], marker=marker, label="train")
    ax1.plot(df["epoch"], df["val_loss"], marker=marker, label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("Loss")
    ax1.grid(alpha=0.3)
    for c in class_names[1:]:
        ax2.plot(df["epoch"], df[f"val_dice_{c}"], marker=marker, lw=1, alpha=0.8, label=c)
    ax2.plot(df["epoch"], df["val_dice_mean"], marker=marker, lw=2.5, color="black", label="mean (foreground)")
    if best_epoch:
        for ax in (ax1, ax2):
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label="best epoch" if ax is ax2 else None)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("Dice")
    ax2.set_title("Validation Dice (images with the organ)")
    ax2.grid(alpha=0.3)
    ax1.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2, frameon=False, fontsize=9)
    ax2.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    for ax in (ax1, ax2):
        if len(df) == 1:  # the forest: one fit, no epochs
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
            ax.set_xlabel("single fit (no epochs)")
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Training curves: {name}", fontsize=11)
    save_png(fig, path)
    plt.close(fig)
