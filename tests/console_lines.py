"""What may appear on a run's console: usseg's own lines and Snakemake's, nothing a library printed.

Snakemake's lines are listed by their formats (Snakemake 9's, with the
workstation profile's `quiet: [rules]`); a line in none of them is someone
else's (an nnU-Net print, a progress bar, a library's warning) and fails the
tests that use `foreign_lines`.
"""

from __future__ import annotations

import re

USSEG = [
    r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) usseg(\.[\w.]+)?: .*",  # usseg.step's log format
    r"usseg: .*",  # usseg's own messages (a stopped rule, the start-up check)
]
SNAKEMAKE = [
    r"",
    r"Using workflow specific profile .* for setting default command line arguments\.",
    r"Config file .* is extended by additional config specified via the command line\.",
    r"Assuming unrestricted shared filesystem usage\.",
    r"SNAKEMAKE", r"=+",
    r"  (Date|Workflow ID|Platform|Host|User|Snakemake version|Python version|Command|Snakefile|Base directory"
    r"|Run directory|Working directory|Config file\(s\)|Config MD5): .*",
    r"Building DAG of jobs\.\.\.", r"Using shell: .*", r"Provided cores: \d+",
    r"Rules claiming more threads will be scaled down\.", r"Provided resources: .*", r"Conda environments: ignored",
    r"Job stats:", r"job +count", r"-+ +-+", r"[a-z_]+ {2,}\d+",
    r"Select jobs to execute\.\.\.", r"Execute \d+ jobs\.\.\.",
    r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]",
    r"Finished jobid: \d+ \(Rule: \w+\)", r"\d+ of \d+ steps \(\d+%\) done",
    r"DAG of jobs will be updated after completion\.", r"Updating checkpoint dependencies\.",
    r"Nothing to be done \(all requested files are present and up to date\)\.",
    r"Complete log\(s\): .*", r"Elapsed time: .*",
]
_KNOWN = re.compile("|".join(f"(?:{p})" for p in USSEG + SNAKEMAKE))


def foreign_lines(text: str) -> list[str]:
    """The lines of `text` (a run's stderr) that are neither usseg's nor Snakemake's."""
    return [line for line in text.splitlines() if not _KNOWN.fullmatch(line)]
