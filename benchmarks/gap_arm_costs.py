"""What each arm of a finished gap study cost, from its job's log.

    .venv/bin/python benchmarks/gap_arm_costs.py [RUN_DIR]

RUN_DIR (default: the current folder) is a workflow's working directory after
`snakemake results/gap/gap_closure.csv` (or `report`) with the gap study on.
Each arm's job (rules gap_arm, gap_loso_arm) logs one line "arm cost: ..."
(usseg.gap.arms.run_arm): the CPU seconds of its trainings, of its evaluations
and of its start-up (imports, tables), counted over every thread of the job's
process. This prints them as one table, with the CPU seconds per training and
per evaluation, and the totals, so epochs and seeds can be sized from them.
CPU seconds are the steadier number on a shared machine; say the load beside
them (docs/benchmarks.md).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

COST = re.compile(
    r"arm cost: (?P<arm>\S+), (?P<trainings>\d+) training\(s\) (?P<train>[\d.]+) CPU s, "
    r"(?P<evaluations>\d+) evaluation\(s\) (?P<eval>[\d.]+) CPU s, start-up (?P<startup>[\d.]+) CPU s"
)


def arm_costs(run: Path) -> list[dict]:
    """One dict per arm log under RUN/results/logs/gap/ that has an "arm cost" line (the last one)."""
    rows = []
    for log in sorted((run / "results" / "logs" / "gap").glob("arm_*.log")):
        matches = [m for m in map(COST.search, log.read_text(errors="replace").splitlines()) if m]
        if matches:
            m = matches[-1]
            rows.append({"arm": log.stem.removeprefix("arm_"), "trainings": int(m["trainings"]),
                         "train": float(m["train"]), "evaluations": int(m["evaluations"]),
                         "eval": float(m["eval"]), "startup": float(m["startup"])})
    return rows


def _per(total: float, n: int) -> str:
    return f"{total / n:.1f}" if n else "-"


def main(argv: list[str]) -> int:
    run = Path(argv[1]) if len(argv) > 1 else Path.cwd()
    rows = arm_costs(run)
    if not rows:
        print(f"{run}: no arm log with an 'arm cost' line under results/logs/gap/; run the gap study first.")
        return 1
    print("| arm | trainings | training CPU s | per training | evaluations | evaluation CPU s | per evaluation "
          "| start-up CPU s | total CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r["train"] + r["eval"] + r["startup"]
        print(f"| {r['arm']} | {r['trainings']} | {r['train']:.0f} | {_per(r['train'], r['trainings'])} "
              f"| {r['evaluations']} | {r['eval']:.0f} | {_per(r['eval'], r['evaluations'])} "
              f"| {r['startup']:.0f} | {total:.0f} |")
    train, evals = sum(r["train"] for r in rows), sum(r["eval"] for r in rows)
    startup = sum(r["startup"] for r in rows)
    n_train, n_eval = sum(r["trainings"] for r in rows), sum(r["evaluations"] for r in rows)
    print(f"| all {len(rows)} arms | {n_train} | {train:.0f} | {_per(train, n_train)} | {n_eval} | {evals:.0f} "
          f"| {_per(evals, n_eval)} | {startup:.0f} | {train + evals + startup:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
