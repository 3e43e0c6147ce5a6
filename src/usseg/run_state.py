"""Results that never look more current than they are: the checks the workflow runs at start-up and after a failure.

Snakemake decides what to run from file times, and by design it does not
rebuild a missing intermediate file whose consumers are up to date: after a
deleted `results/splits.csv`, a deleted model or a deleted label file,
`snakemake report` says "Nothing to be done" and the report keeps showing
files that are gone. And after a failed step, the report from before stays on
disk with its old numbers. So:

- At start-up (`check_at_start`, called by the Snakefile in the run's own
  process, not in its jobs) every provenance record is compared with the files
  now, cheaply (no hashing): a report whose input is gone is marked out of
  date, which also makes Snakemake rebuild it and, with it, the missing file;
  a folder output that lost or gained files (one label file deleted) is marked
  older than its inputs, so Snakemake runs its rule again.
- After a failed run (`check_after_failure`, the Snakefile's onerror) a report
  whose inputs are gone or newer than the page is marked out of date.

"Marked out of date" (`mark_report_out_of_date`) means: a banner at the top
of the page says so, why, and the command that rebuilds it (with the run's own
options, usseg.rerun), and the file's time is set back, so Snakemake sees the
page older than its inputs and rebuilds it on the next `snakemake report`.
The report rule replaces the whole file when it runs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from usseg.provenance import SNAKEMAKE_TIMESTAMP, folder_files

# The time an out-of-date file is set back to (1980-01-01, UTC): older than any input it can have,
# and a time every archive format can hold.
OUT_OF_DATE_MTIME = 315_532_800
BANNER_TEMPLATE = "out_of_date.html"
BANNER_START, BANNER_END = "<!-- usseg:out-of-date -->", "<!-- /usseg:out-of-date -->"
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)
_OLD_BANNER = re.compile(re.escape(BANNER_START) + ".*?" + re.escape(BANNER_END), re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """A recorded file that is not what its record says: `why` in words."""

    path: str
    why: str


def read_record(path) -> dict | None:
    """A provenance record, or None when it is missing or unreadable (then it says nothing)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _count(desc: dict) -> int | None:
    n = (desc or {}).get("files")
    return n if isinstance(n, int) else None


def folder_problem(path: str, desc: dict, rule: str) -> Problem | None:
    """A recorded folder that lost or gained files since `rule` recorded it (a quick count, no hashing)."""
    expected, folder = _count(desc), Path(path)
    if expected is None or not folder.is_dir():
        return None
    found = len(folder_files(folder))
    if found == expected:
        return None
    return Problem(path, f"holds {found} files, {expected} when rule {rule} wrote it")


def _run_files(record: dict, results) -> list[str]:
    """The inputs of a record that are files of the run (below `results`): the workflow's own code, which a
    copied or moved run may find elsewhere, is Snakemake's to judge."""
    base = os.path.abspath(results)
    return [p for paths in (record.get("inputs") or {}).values() for p in paths or {}
            if os.path.commonpath([os.path.abspath(p), base]) == base]


def missing_inputs(record: dict, results) -> list[Problem]:
    """The inputs of a (report's) record below `results` that are gone now."""
    return [Problem(p, "is missing") for p in _run_files(record, results) if not os.path.exists(p)]


def _mtime(path: str) -> float | None:
    """A file's time as Snakemake reads it: a folder output's by its timestamp marker, when it has one."""
    marker = os.path.join(path, SNAKEMAKE_TIMESTAMP)
    for candidate in (marker, path) if os.path.isdir(path) else (path,):
        try:
            return os.stat(candidate).st_mtime
        except OSError:
            continue
    return None


def newer_inputs(record: dict, than: float, results) -> list[Problem]:
    """The inputs of a record below `results` written again after time `than` (a later job replaced them)."""
    out = []
    for p in _run_files(record, results):
        t = _mtime(p)
        if t is not None and t > than:
            out.append(Problem(p, "was written again after the report was made"))
    return out


def set_back(path: str) -> None:
    """Make Snakemake see `path` (a file, or a folder output) as older than its inputs."""
    targets = [os.path.join(path, SNAKEMAKE_TIMESTAMP), path] if os.path.isdir(path) else [path]
    for target in targets:
        if os.path.exists(target):
            os.utime(target, (OUT_OF_DATE_MTIME, OUT_OF_DATE_MTIME))


def banner(why: str, problems: list[Problem], command: str) -> str:
    """The out-of-date banner (templates/report/out_of_date.html), its text escaped."""
    import jinja2

    text = resources.files("usseg").joinpath("templates", "report", BANNER_TEMPLATE).read_text()
    body = jinja2.Environment(autoescape=True).from_string(text).render(
        why=why, problems=[f"{p.path} {p.why}" for p in problems], command=command)
    return f"{BANNER_START}{body}{BANNER_END}"


def mark_report_out_of_date(html, why: str, problems: list[Problem], command: str) -> bool:
    """Put the banner at the top of the report `html` (replacing an earlier one) and set its time back.

    Returns False (and leaves it) when the file is not a usseg report page.
    """
    path = Path(html)
    try:
        page = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    page = _OLD_BANNER.sub("", page)
    body = _BODY.search(page)
    if body is None:
        return False
    page = page[: body.end()] + banner(why, problems, command) + page[body.end():]
    tmp = path.with_name(f".{path.name}.out-of-date.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    set_back(str(path))
    return True


def is_marked(html) -> bool:
    try:
        return BANNER_START in Path(html).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def damaged_folders(prov_dir) -> list[Problem]:
    """Folder outputs of every record under `prov_dir` whose number of files changed since their rule ran."""
    out = []
    for record_path in sorted(Path(prov_dir).rglob("*.json")) if Path(prov_dir).is_dir() else []:
        record = read_record(record_path) or {}
        for paths in (record.get("outputs") or {}).values():
            for p, desc in (paths or {}).items():
                problem = folder_problem(p, desc or {}, str(record.get("rule", "?")))
                if problem is not None:
                    out.append(problem)
    return out


def check_at_start(prov_dir, reports: dict[str, tuple[str, str]]) -> list[str]:
    """The start-up check: mark damaged folders and out-of-date reports; return what to tell the user.

    `reports` maps each report page to (its provenance record, the command that
    rebuilds it, with the run's options: usseg.rerun). A damaged folder
    is set back, so its rule runs again; a report that showed a file now gone
    (or a damaged folder) is marked out of date, so it is rebuilt, and with it
    every missing file it needs.
    """
    lines = []
    folders = damaged_folders(prov_dir)
    for problem in folders:
        set_back(problem.path)
        lines.append(f"{problem.path} {problem.why}: marked out of date, so its rule runs again")
    for html, (record_path, command) in reports.items():
        record = read_record(record_path)
        if record is None or not os.path.isfile(html):
            continue
        recorded = {p for paths in (record.get("inputs") or {}).values() for p in paths or {}}
        problems = missing_inputs(record, Path(prov_dir).parent) + [f for f in folders if f.path in recorded]
        if not problems:
            continue
        mark_report_out_of_date(html, "Files this page shows have gone or changed since it was made.",
                                problems, command)
        lines += [f"{p.path} {p.why}" for p in problems if p not in folders]
        lines.append(f"{html} no longer matches the files: marked out of date; `{command}` rebuilds it "
                     "and what it needs")
    return lines


def check_after_failure(prov_dir, reports: dict[str, tuple[str, str]]) -> list[str]:
    """After a failed run: mark each report whose inputs are gone or newer than it; return what to tell the user.

    A report without its record (made before records were written) is marked
    too: nothing shows that it still matches the files.
    """
    lines = []
    for html, (record_path, command) in reports.items():
        if not os.path.isfile(html) or is_marked(html):
            continue
        record = read_record(record_path)
        if record is None:
            problems = [Problem(record_path, "is missing, so nothing shows that the page matches the files")]
        else:
            results = Path(prov_dir).parent
            problems = missing_inputs(record, results) + newer_inputs(record, os.stat(html).st_mtime, results)
        if not problems:
            continue
        mark_report_out_of_date(html, "A step of the last run failed: this page shows the results from before "
                                "it, which no longer match the files.", problems, command)
        lines.append(f"{html} is out of date (a step failed): marked so on its first screen; after fixing the "
                     f"error, `{command}` rebuilds it")
    return lines
