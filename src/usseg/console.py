"""The few lines a run ends with: the verdict, the headline Dice per experiment and test set,
and where the report is (printed by the Snakefile's onsuccess handler).

Reads only files the run made, and is tolerant: a run that stopped short of the
report (a partial target) prints what exists, and summary.json may carry more
keys than the ones read here.
"""

from __future__ import annotations

import math
from pathlib import Path

from usseg.contracts import read_checklist, read_summary
from usseg.errors import DataError

# A name column wider than this is cut, so no line grows with long experiment names.
NAME_WIDTH = 28


def _read(reader, path) -> dict | None:
    """A contract file read and checked by usseg.contracts; None when it is absent or unusable."""
    try:
        return reader(path)
    except (DataError, OSError):
        return None


def headline_dice(summary: dict) -> float | None:
    """Mean foreground Dice of an evaluation summary: its `dice_mean_foreground`, else the
    mean of the per-class `dice` values that are numbers."""
    value = summary.get("dice_mean_foreground")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    per_class = summary.get("dice")
    if isinstance(per_class, dict):
        values = [v for v in per_class.values() if isinstance(v, (int, float)) and math.isfinite(v)]
        if values:
            return sum(values) / len(values)
    return None


def headline_cell(summary: dict) -> str:
    """'0.714 [0.00, 1.00] (4 subj.)': the headline with its interval and the subjects the estimate rests on
    (summary.json mean_foreground's n_subjects, not the test set's), '(no interval)' where none is given."""
    dice = headline_dice(summary)
    if dice is None:
        return "n/a"
    fg = summary.get("mean_foreground") if isinstance(summary.get("mean_foreground"), dict) else {}
    ci, n = fg.get("ci95"), fg.get("n_subjects", summary.get("n_subjects"))
    cell = f"{dice:.3f}"
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        cell += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    elif fg:
        cell += " (no interval)"
    if isinstance(n, int):
        cell += f" ({n} subj.)"
    return cell


def run_summary(checklist, summaries, report) -> str:
    """The closing lines of a run, from the paths the rules declare ("" when none exists yet)."""
    lines = []
    checks = _read(read_checklist, checklist)
    if checks is not None:
        flagged = [
            f"{c.get('id', '?')} {c.get('status', '?')}"
            for c in checks.get("checks", [])
            if c.get("status") != "PASS"
        ]
        detail = f" ({', '.join(flagged)})" if flagged else ""
        lines.append(f"Dataset readiness: {checks['overall']}{detail}. Details: {Path(checklist).with_suffix('.md')}")

    table: dict[str, dict[str, str]] = {}
    test_sets: list[str] = []
    for path in summaries:
        summary = _read(read_summary, path)
        if summary is None:
            continue
        experiment = str(summary.get("experiment", Path(path).parents[2].name))
        test_set = str(summary.get("test_set", Path(path).parent.name))
        cell = headline_cell(summary)
        table.setdefault(experiment, {})[test_set] = cell
        if test_set not in test_sets:
            test_sets.append(test_set)
    if table:
        width = min(NAME_WIDTH, max(len(e) for e in table))
        cols = [max(len(t), *(len(row.get(t, "-")) for row in table.values())) for t in test_sets]
        lines.append("Class-macro mean Dice [95 % interval] (subjects it rests on) per experiment and test set:")
        lines.append("  " + "experiment".ljust(width) + "".join(f"  {t:>{w}}" for t, w in zip(test_sets, cols)))
        for experiment, row in table.items():
            name = experiment if len(experiment) <= width else experiment[: width - 1] + "~"
            lines.append(
                "  " + name.ljust(width) + "".join(f"  {row.get(t, '-'):>{w}}" for t, w in zip(test_sets, cols))
            )
    if Path(report).is_file():
        lines.append(f"Report: {report}")
    return "\n".join(lines)


def print_run_summary(checklist, summaries, report) -> None:
    text = run_summary(checklist, summaries, report)
    if text:
        print(text, flush=True)
