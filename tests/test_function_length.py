"""House rule: no function in src/usseg longer than MAX_LINES lines unless its docstring says why.

The reason is a sentence starting with "Long because" in the function's docstring. A function's
length runs from its `def` line to its last line (decorators not counted); methods and nested
functions are measured on their own, named by their qualified name (Class.method, outer.inner).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

MAX_LINES = 80
REASON = "Long because"
SRC = Path(__file__).resolve().parents[1] / "src" / "usseg"

# Long functions allowed for a while (e.g. in a module another branch is changing), each to be split
# or given its reason; test_pending_functions_are_still_long fails once an entry is no longer needed.
PENDING: set[str] = set()


def long_functions(source: str, max_lines: int = MAX_LINES) -> dict[str, int]:
    """Qualified name -> lines of every function in `source` longer than `max_lines` whose docstring
    lacks REASON."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > max_lines and REASON not in (ast.get_docstring(child) or ""):
                        found[name] = lines
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def long_functions_in(root: Path = SRC) -> dict[str, int]:
    """'path/relative/to/root.py:qualified.name' -> lines, for every module under `root`."""
    return {
        f"{path.relative_to(root).as_posix()}:{name}": lines
        for path in sorted(root.rglob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8")).items()
    }


def test_no_function_is_long_without_a_reason():
    unexplained = {k: v for k, v in long_functions_in().items() if k not in PENDING}
    listing = "\n".join(f"  {name}: {lines} lines" for name, lines in sorted(unexplained.items()))
    assert not unexplained, (
        f"functions over {MAX_LINES} lines without '{REASON} ...' in their docstring "
        f"(split them into named pieces, or say why they read best whole):\n{listing}"
    )


def test_pending_functions_are_still_long():
    """PENDING names only functions that are still long and unexplained: a stale entry would hide a new one."""
    stale = PENDING - set(long_functions_in())
    assert not stale, f"no longer long (or gone): delete from PENDING: {sorted(stale)}"


def _function(name: str, body_lines: int, docstring: str = "") -> str:
    doc = f'    """{docstring}"""\n' if docstring else ""
    return f"def {name}():\n{doc}" + "    x = 0\n" * body_lines


def test_finder_finds_a_planted_long_function():
    source = "\n".join(
        [
            _function("short", 79),  # 80 lines with its def: allowed
            _function("too_long", 80),  # 81 lines
            _function("explained", 90, "Long because one table is built in one place."),
            _function("docstring_without_reason", 90, "A long function."),
            "class Holder:\n" + textwrap.indent(_function("method", 85), "    "),
            "def outer():\n" + textwrap.indent(_function("inner", 85), "    "),
        ]
    )
    assert long_functions(source) == {
        "too_long": 81,
        "docstring_without_reason": 92,
        "Holder.method": 86,
        "outer": 87,
        "outer.inner": 86,
    }


def test_finder_names_the_module_of_a_planted_long_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(_function("planted", 100))
    (tmp_path / "fine.py").write_text(_function("small", 5))
    assert long_functions_in(tmp_path) == {"pkg/mod.py:planted": 101}
