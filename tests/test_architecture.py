"""docs/architecture.md is the code's own account of the house: its tables are generated
(usseg.architecture) and must match the rules, the scripts and the import graph; and the house keeps
one owner per block of wiring (no block of six lines repeated across scripts or rules)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from usseg import architecture

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "architecture.md"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _snakemake(*args: str) -> str:
    return subprocess.run([str(SNAKEMAKE), *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def test_the_page_tables_are_the_code_s(tmp_path):
    page = PAGE.read_text()
    assert architecture.fill(page, architecture.generated_blocks(REPO)) == page, (
        "docs/architecture.md is stale: run python tools/architecture.py")


def test_every_rule_of_the_workflow_has_a_row_and_every_script_a_rule():
    listed = set(_snakemake("--list-rules").split())
    rules = architecture.parse_rules(REPO)
    assert {r.name for r in rules} == listed
    used = {r.script for r in rules if r.script}
    assert used == {f"scripts/{p.name}" for p in (REPO / "scripts").glob("*.py")}
    # Every script calls one library function inside its step (rules and scripts only wire).
    assert all(architecture.entry_point(REPO / s) for s in used), [s for s in used
                                                                     if not architecture.entry_point(REPO / s)]


def test_the_drawn_rule_graph_has_every_rule_of_the_workflow():
    dot = _snakemake("--rulegraph", "--quiet", "all")
    rules = set(re.findall(r'label = "(\w+)"', dot))
    svg = (REPO / "docs" / "img" / "rulegraph.svg").read_text()
    drawn = set(re.findall(r">(\w+)</text>", svg))
    assert rules and rules == drawn, "docs/img/rulegraph.svg is stale: run python tools/architecture.py"


def test_an_entry_point_is_the_usseg_function_the_step_calls(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("from usseg.data import PreparedData\nfrom usseg.step import snakemake_step\n"
                      "from usseg import gap\n\nwith snakemake_step(snakemake):\n"
                      "    gap.write_summary(PreparedData.from_rule(snakemake.input), 1)\n")
    assert architecture.entry_point(script) == "usseg.gap.write_summary"


def test_layers_put_each_module_above_what_it_imports():
    graph = {"usseg.a": set(), "usseg.b": {"usseg.a"}, "usseg.c": {"usseg.a", "usseg.b"}}
    assert architecture.layers(graph) == [["usseg.a"], ["usseg.b"], ["usseg.c"]]


def _blocks(lines: list[str], size: int):
    for i in range(len(lines) - size + 1):
        yield tuple(lines[i:i + size]), i


def repeated_blocks(files: list[Path], size: int = 6) -> list[str]:
    """Places where the same `size` non-blank lines (stripped, comments kept) appear twice."""
    seen: dict[tuple[str, ...], str] = {}
    repeats = []
    for path in files:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        for block, i in _blocks(lines, size):
            where = f"{path.relative_to(REPO)} (block from non-blank line {i + 1})"
            if block in seen and not seen[block].startswith(str(path.relative_to(REPO)) + " "):
                repeats.append(f"{where} repeats {seen[block]}: {block[0]!r}...")
            seen.setdefault(block, where)
    return repeats


def test_no_two_scripts_or_rules_repeat_a_block_of_six_lines():
    files = [*(REPO / "scripts").glob("*.py"), *architecture.workflow_files(REPO)]
    assert repeated_blocks(sorted(files)) == []


def test_a_repeated_block_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    block = "".join(f"line {i}\n" for i in range(6))
    (tmp_path / "a.py").write_text(block)
    (tmp_path / "b.py").write_text("x\n" + block)
    assert len(repeated_blocks([tmp_path / "a.py", tmp_path / "b.py"])) == 1
