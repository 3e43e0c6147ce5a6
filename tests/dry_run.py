"""Reading the job blocks of a `snakemake --dry-run` log, for tests that check which jobs would run.

The default profile hides these blocks (`quiet: [rules]`); pass QUIET_KEEPS_JOBS to see them.
"""

from __future__ import annotations

import re

# Command-line options that override the profile's `quiet: [rules]`, so job blocks are printed.
QUIET_KEEPS_JOBS = ("--quiet=host",)  # one word: "--quiet host report" would read report as a quiet level

_JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")


def job_name(rule: str, wildcards: dict[str, str]) -> str:
    """`rule`, `rule@a` or `rule@a-b` (wildcard values in the order of their sorted names)."""
    if not wildcards:
        return rule
    return f"{rule}@" + "-".join(str(wildcards[w]) for w in sorted(wildcards))


def parse_dry_run(text: str) -> list[dict]:
    """The jobs of a `snakemake --dry-run` log: [{rule, wildcards, reason}], one per job."""
    jobs: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        header = _JOB_HEADER.match(line.strip()) if not line.startswith(" ") else None
        if header:
            current = {"rule": header.group(1), "wildcards": {}, "reason": ""}
            jobs.append(current)
            continue
        if current is None:
            continue
        stripped = line.strip()
        if not line.startswith(" ") or not stripped:
            current = None
        elif stripped.startswith("wildcards:"):
            for pair in stripped[len("wildcards:") :].split(","):
                key, _, value = pair.strip().partition("=")
                current["wildcards"][key] = value
        elif stripped.startswith("reason:"):
            current["reason"] = stripped[len("reason:") :].strip()
    return jobs
