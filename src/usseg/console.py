"""The few lines a run ends with: the verdict (with its pipeline part), the headline Dice per
experiment and test set with its interval and subject count, what could not be trained, and
where the report is (printed by the Snakefile's onsuccess handler).

Printed only after a run that built a report (`report_built`): a run of another
target (`snakemake results/config.yaml`) ends without it, rather than with a
summary of an older run. Reads only files the run made, and is tolerant: a
file that is missing or does not follow its contract is left out, and
summary.json may carry more keys than the ones read here.
"""

from __future__ import annotations

import os
from pathlib import Path

from usseg.contracts import read_checklist, read_summary
from usseg.errors import DataError
from usseg.headline import Headline, headline, headline_dice  # noqa: F401 (the console's reading of a summary)
from usseg.rerun import command as rerun_command

# A name column wider than this is cut, so no line grows with long experiment names.
NAME_WIDTH = 28
# The check of the verdict's "Pipeline ruled out?" part, when the checklist has it.
PIPELINE_CHECK = "pipeline"
DEMO_CAVEAT = ("These results come from the generated demo dataset, not from real ultrasound images; "
               "set data_root to your dataset for a verdict on it.")


def _read(reader, path) -> dict | None:
    """A contract file read and checked by usseg.contracts; None when it is absent or unusable."""
    try:
        return reader(path)
    except (DataError, OSError):
        return None


def _verdict_lines(checklist) -> list[str]:
    checks = _read(read_checklist, checklist)
    if checks is None:
        return []
    flagged = [f"{c.get('id', '?')} {c.get('status', '?')}" for c in checks.get("checks", [])
               if c.get("status") != "PASS"]
    detail = f" ({', '.join(flagged)})" if flagged else ""
    lines = [f"Dataset readiness: {checks['overall']}{detail}. Details: {Path(checklist).with_suffix('.md')}"]
    pipeline = next((c for c in checks.get("checks", []) if c.get("id") == PIPELINE_CHECK), None)
    if pipeline is not None:
        reason = str(pipeline.get("reason") or "").split(". ")[0].rstrip(".")
        lines.append(f"Pipeline ruled out?: {pipeline.get('status', '?')}" + (f": {reason}." if reason else ""))
    return lines


def _dice_lines(summaries) -> list[str]:
    table: dict[str, dict[str, str]] = {}
    test_sets: list[str] = []
    for path in summaries:
        summary = _read(read_summary, path)
        if summary is None:
            continue
        experiment = str(summary.get("experiment", Path(path).parents[2].name))
        test_set = str(summary.get("test_set", Path(path).parent.name))
        table.setdefault(experiment, {})[test_set] = headline(summary).cell()
        if test_set not in test_sets:
            test_sets.append(test_set)
    if not table:
        return []
    width = min(NAME_WIDTH, max(len(e) for e in table))
    cols = [max(len(t), *(len(row.get(t, "-")) for row in table.values())) for t in test_sets]
    lines = ["Class-macro mean Dice [95 % interval] (subjects it rests on) per experiment and test set:",
             "  " + "experiment".ljust(width) + "".join(f"  {t:>{w}}" for t, w in zip(test_sets, cols))]
    for experiment, row in table.items():
        name = experiment if len(experiment) <= width else experiment[: width - 1] + "~"
        lines.append("  " + name.ljust(width) + "".join(f"  {row.get(t, '-'):>{w}}" for t, w in zip(test_sets, cols)))
    return lines


def _untrained_lines(untrained: dict[str, str] | None) -> list[str]:
    """One line per reason: the experiments that could not be trained on this data, and why."""
    by_reason: dict[str, list[str]] = {}
    for experiment, reason in (untrained or {}).items():
        by_reason.setdefault(reason, []).append(experiment)
    return [f"Not trained: {', '.join(names)}: {reason}." for reason, names in by_reason.items()]


def run_summary(checklist, summaries, report, *, data_is_demo: bool = False,
                untrained: dict[str, str] | None = None, note: str = "") -> str:
    """The closing lines of a run, from the paths the rules declare ("" when none of them exists yet).

    `untrained`: experiment -> why it could not be trained (usseg.trainability);
    `note`: a line about the run itself (e.g. that the report has the data checks only).
    """
    lines = _verdict_lines(checklist)
    if note:
        lines.append(note)
    lines += _untrained_lines(untrained)
    lines += _dice_lines(summaries)
    if lines and data_is_demo:
        lines.append(DEMO_CAVEAT)
    if lines and Path(report).is_file():
        lines.append(f"Report: {report}")
    return "\n".join(lines)


def modified_time(path) -> int | None:
    """A file's modification time in ns, or None when it is not there (for `report_built`)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def report_built(report, time_at_start: int | None) -> bool:
    """Whether this run wrote `report`: it exists and its time differs from the one at start-up.

    Compares the file's own times, not the clock, so a file system on another
    machine (a cluster's shared disk) cannot make an old report look new.
    """
    now = modified_time(report)
    return now is not None and now != time_at_start


def first_look() -> str:
    """The note after diagnostics_report: no training, and the command that trains (with the run's options)."""
    return f"First look: the verdict and the data checks, no training; `{rerun_command('report')}` trains and " \
           "evaluates the experiments."


def closing_summary(config: dict, report, with_training: bool, checklist, manifest_csv, splits_csv,
                    summaries: dict[str, list]) -> str:
    """The closing lines after a run that wrote `report` (with_training false: diagnostics_report).

    `summaries` maps every experiment to its evaluation summaries; only those
    of experiments this data could train are read (usseg.trainability).
    """
    from usseg.trainability import plan_of_run

    try:
        plan = plan_of_run(config, manifest_csv, splits_csv)
    except (DataError, OSError):
        plan = None
    untrained = plan.untrained if plan is not None else {}
    trained = [e for e in summaries if e not in untrained] if with_training else []
    return run_summary(
        checklist, [p for e in trained for p in summaries[e]], report,
        data_is_demo=config.get("data_root") is None, untrained=untrained,
        note="" if with_training else first_look(),
    )


def print_closing_summary(*args, **kwargs) -> None:
    text = closing_summary(*args, **kwargs)
    if text:
        print(text, flush=True)
