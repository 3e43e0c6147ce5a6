#!/usr/bin/env python3
"""Rewrite the generated parts of docs/architecture.md from the code (usseg.architecture).

    python tools/architecture.py           # rewrite the rule table, the module layers and docs/img/rulegraph.svg
    python tools/architecture.py --check   # exit 1 if the page's tables are stale (tests/test_architecture.py)

The rule graph is drawn by Snakemake's public `--rulegraph` and Graphviz's `dot` (Debian package
graphviz, installed by tools/install-system-deps.sh); the tables need neither.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from usseg.architecture import fill, generated_blocks  # noqa: E402

PAGE = REPO / "docs" / "architecture.md"
GRAPH = REPO / "docs" / "img" / "rulegraph.svg"


def draw_rulegraph() -> None:
    snakemake = Path(sys.executable).with_name("snakemake")
    dot = subprocess.run([str(snakemake), "--rulegraph", "--quiet", "all"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    dot = dot[dot.index("digraph"):]  # Snakemake may print a line about its profile before the graph
    GRAPH.write_bytes(subprocess.run(["dot", "-Tsvg"], input=dot.encode(), check=True, capture_output=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the page is current")
    args = parser.parse_args()
    page = PAGE.read_text()
    current = fill(page, generated_blocks(REPO))
    if args.check:
        if current != page:
            print(f"{PAGE.relative_to(REPO)} is stale: run python tools/architecture.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(current)
    draw_rulegraph()
    print(f"wrote {PAGE.relative_to(REPO)} and {GRAPH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
