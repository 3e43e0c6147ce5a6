"""What a training run writes besides its model: history.csv, timing.csv, the curves and the epoch line.

Shared by the network's trainer (usseg.training.loop), the semi-supervised ones (usseg.training.semi)
and the random forest's (usseg.training.forest).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import pandas as pd

# One line per epoch goes to this logger: the job's log file keeps every line,
# the console leaves them out (usseg.step.configure_logging), since a default
# run trains for thousands of epochs in all (the overfit checks alone 500 each).
EPOCH_LOGGER = "usseg.epochs"
epoch_log = logging.getLogger(EPOCH_LOGGER)


def history_columns(class_names: list[str]) -> list[str]:
    return ["epoch", "train_loss", "val_loss", *[f"val_dice_{c}" for c in class_names[1:]], "val_dice_mean", "lr"]


# Wall-clock time per epoch measures the machine, not the model: it lives in
# timing.csv, so history.csv (and the model) of two identical runs are byte-identical.
TIMING_COLUMNS = ["epoch", "seconds"]


def fmt(v: float, spec: str = ".2f") -> str:
    return "nan" if v is None or not math.isfinite(v) else format(v, spec)


def fmt_lr(lr: float) -> str:
    if not math.isfinite(lr):
        return "n/a"
    mant, exp_ = f"{lr:.1e}".split("e")
    return f"{mant}e{int(exp_)}"


def epoch_line(row: dict, epochs: int, class_names: list[str]) -> str:
    """'epoch 3/8 train_loss 0.412 val_loss 0.398 val_dice liver 0.71 mean 0.71 lr 1.2e-3 4.1s'"""
    dice = " ".join(f"{c} {fmt(row[f'val_dice_{c}'])}" for c in class_names[1:])
    return (
        f"epoch {row['epoch']}/{epochs} train_loss {fmt(row['train_loss'], '.3f')} val_loss {fmt(row['val_loss'], '.3f')} "
        f"val_dice {dice} mean {fmt(row['val_dice_mean'])} lr {fmt_lr(row['lr'])} {row['seconds']:.1f}s"
    )


def write_history(history: list[dict], class_names: list[str], path: Path) -> None:
    """history.csv at `path` and, beside it, timing.csv (the seconds of each epoch)."""
    for columns, target in ((history_columns(class_names), path), (TIMING_COLUMNS, path.with_name("timing.csv"))):
        df = pd.DataFrame(history, columns=columns)
        tmp = target.with_name(target.name + ".tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, target)


def plot_curves(history: list[dict], class_names: list[str], name: str, best_epoch: int, path: Path) -> None:
    """Loss (train, val) and validation Dice per class against epochs, best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(history, columns=history_columns(class_names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    marker = "o" if len(df) <= 20 else None
    ax1.plot(df["epoch"], df["train_loss"], marker=marker, label="train")
    ax1.plot(df["epoch"], df["val_loss"], marker=marker, label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("Loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for c in class_names[1:]:
        ax2.plot(df["epoch"], df[f"val_dice_{c}"], marker=marker, lw=1, alpha=0.8, label=c)
    ax2.plot(df["epoch"], df["val_dice_mean"], marker=marker, lw=2.5, color="black", label="mean (foreground)")
    if best_epoch:
        for ax in (ax1, ax2):
            ax.axvline(best_epoch, color="grey", ls="--", lw=1)
        ax2.annotate("best epoch", (best_epoch, 0.0), xytext=(-4, 4), textcoords="offset points", color="grey",
                     ha="right", fontsize=8)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("Dice")
    ax2.set_title("Validation Dice (images where the organ is present)")
    ax2.legend(fontsize=8, ncol=2 if len(class_names) > 5 else 1, loc="lower right")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        if len(df) == 1:  # the forest: one fit, no epochs
            ax.set_xlim(0.5, 1.5)
            ax.set_xticks([1])
            ax.set_xlabel("single fit (no epochs)")
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Training curves: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
