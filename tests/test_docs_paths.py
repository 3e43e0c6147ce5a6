"""Every repository file the docs, the config comments and the code's comments name exists: a moved or
renamed file must take its mentions with it (issue: docs that contradict the code)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A repository path as the docs write it: a top folder of the repository, then a file with its suffix.
PATH = re.compile(r"(?<![\w/.])((?:src|scripts|rules|docs|configs|tests|tools|benchmarks|profiles|envs)/"
                  r"[\w./-]*\.(?:py|md|smk|yaml|sh|json|svg|png|css|html|j2|txt|csv))")


def _texts() -> list[Path]:
    return [REPO / "README.md", REPO / "Snakefile", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md")),
            REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml")), *sorted((REPO / "src").rglob("*.py")),
            *sorted((REPO / "rules").glob("*.smk")), *sorted((REPO / "scripts").glob("*.py")),
            *sorted(p for p in (REPO / "tools").iterdir() if p.is_file())]


def missing_paths(files: list[Path]) -> list[str]:
    """"file:line: path" for every named repository path that is not there (package data is named
    relative to src/usseg, e.g. templates/report.css, and is not matched here)."""
    out = []
    for f in files:
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            for name in PATH.findall(line):
                name = name.rstrip(".")
                if not (REPO / name).exists():
                    out.append(f"{f.relative_to(REPO)}:{i}: {name}")
    return out


def test_every_path_the_docs_and_comments_name_exists():
    assert missing_paths(_texts()) == []


def test_a_stale_path_is_found(tmp_path, monkeypatch):
    doc = REPO / "docs" / "_stale_test.md"
    try:
        doc.write_text("See docs/no-such-page.md and `src/usseg/config.py`.\n")
        assert missing_paths([doc]) == ["docs/_stale_test.md:1: docs/no-such-page.md"]
    finally:
        doc.unlink()
