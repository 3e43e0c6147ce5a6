"""What a training run writes besides its model: history.csv, timing.csv and the epoch line (the curves:
usseg.training.curves, apart because every rule's bridge, usseg.step, imports this module).

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


def write_history(history: list[dict], class_names: list[str], history_path: Path, timing_path: Path) -> None:
    """The history at `history_path` and the seconds of each epoch at `timing_path`."""
    for columns, target in ((history_columns(class_names), history_path), (TIMING_COLUMNS, timing_path)):
        df = pd.DataFrame(history, columns=columns)
        tmp = target.with_name(target.name + ".tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, target)
