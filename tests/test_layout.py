"""docs/development.md's layout section names every top-level entry of the repository, and nothing else."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO


def layout_block() -> str:
    text = (REPO / "docs" / "development.md").read_text()
    section = text[text.index("## Layout") :]
    return section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n") + 4)]


def test_readme_layout_matches_the_tree():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    top = {path.split("/")[0] for path in tracked} - {"README.md", ".gitignore"}
    named = set()
    for line in layout_block().splitlines():
        if line[:1].strip():  # an entry starts the line; continuation lines are indented
            named.add(line.split()[0].split("/")[0])
        # entries named inside the description (".dvc/ and .dvcignore")
        named |= {m for m in re.findall(r"(\.[\w-]+)/?", line) if (REPO / m).exists()}
    assert top <= named, f"not in the layout of docs/development.md: {sorted(top - named)}"
    assert named <= top | {"src"}, f"in the layout of docs/development.md but not in the repository: {sorted(named - top)}"
