"""The headline of an evaluation: the one number per experiment and test set that a run ends with
(usseg.console) and that `dvc metrics show` lists (headline.json beside each summary.json).

Which number that is (summary.json's `mean_foreground`: the class-macro mean Dice of usseg.composite,
subject level, with its 95 % interval and the subjects it rests on) is decided in `headline` alone, so a
change of the definition is made here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from usseg.contracts import read_summary


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def headline_dice(summary: dict) -> float | None:
    """Mean foreground Dice of an evaluation summary: its `dice_mean_foreground`, else the
    mean of the per-class `dice` values that are numbers."""
    value = _number(summary.get("dice_mean_foreground"))
    if value is not None:
        return value
    per_class = summary.get("dice")
    if isinstance(per_class, dict):
        values = [v for v in map(_number, per_class.values()) if v is not None]
        if values:
            return sum(values) / len(values)
    return None


@dataclass(frozen=True)
class Headline:
    """The one number per experiment and test set, with its 95 % interval and its subjects."""

    dice: float | None
    ci95: tuple[float, float] | None
    n_subjects: int | None

    def cell(self) -> str:
        """'0.714 [0.00, 1.00] (4 subj.)'; '(no interval)' where the summary gives none."""
        if self.dice is None:
            return "n/a"
        text = f"{self.dice:.3f}"
        text += f" [{self.ci95[0]:.2f}, {self.ci95[1]:.2f}]" if self.ci95 is not None else " (no interval)"
        if self.n_subjects is not None:
            text += f" ({self.n_subjects} subj.)"
        return text


def headline(summary: dict) -> Headline:
    """The headline of one evaluation summary: the one place that decides which number it is.

    summary.json's `mean_foreground` block (its Dice, `ci95` and the subjects
    it is over) when there is one; else `headline_dice` with the summary's
    subject count and no interval.
    """
    block = summary.get("mean_foreground")
    if isinstance(block, dict) and _number(block.get("dice")) is not None:
        ci = block.get("ci95")
        interval = (tuple(float(v) for v in ci) if isinstance(ci, (list, tuple)) and len(ci) == 2
                    and all(_number(v) is not None for v in ci) else None)
        n = block.get("n_subjects")
        return Headline(float(block["dice"]), interval, n if isinstance(n, int) else None)
    n = summary.get("n_subjects")
    return Headline(headline_dice(summary), None, n if isinstance(n, int) else None)


def headline_metrics(summary: dict) -> dict:
    """The headline as DVC metrics: a few flat keys, so `dvc metrics show` stays one short row per evaluation."""
    h = headline(summary)
    return {"dice": h.dice, "ci95_lo": h.ci95[0] if h.ci95 else None, "ci95_hi": h.ci95[1] if h.ci95 else None,
            "n_subjects": h.n_subjects}


def write_headline(summary_json, out_json) -> None:
    """headline.json of an evaluation, from its summary.json."""
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(headline_metrics(read_summary(summary_json)), indent=2) + "\n")
