"""Which usseg files a script or module runs, derived from its imports.

A rule's `code` inputs and the training fingerprint both need "all the code
this job runs". Keeping that as a hand-written list goes stale the day someone
adds an import, so it is computed here instead: the file's `import` and
`from ... import` statements (anywhere in the file, lazy imports included) are
read with `ast`, the ones that name usseg modules are followed transitively,
and every package `__init__.py` on the way counts too.

Package data (non-Python files shipped in src/usseg, e.g. the report's
templates/report.css or config.schema.yaml) counts as code of a module whose
source names it in a string literal ("templates/report.css",
"config.schema.yaml"), which is how a module that reads such a file refers to it.

Nothing is imported or executed: this runs at every Snakemake start-up and
must stay fast and light (standard library only).
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "usseg"
SRC_ROOT = Path(__file__).resolve().parent  # src/usseg


def module_file(dotted: str, package_dir: Path = SRC_ROOT) -> Path | None:
    """The file of usseg module `dotted` ("usseg.a.b"): a/b.py or a/b/__init__.py; None if neither."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py")
    return None


def _module_name(path: Path, package_dir: Path) -> str | None:
    """Module name ("usseg.a.b") of package_dir/a/b.py (or a/b/__init__.py); None outside the package."""
    try:
        rel = path.resolve().relative_to(package_dir.resolve())
    except ValueError:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def _imported_names(tree: ast.AST, current: str | None, is_package: bool) -> set[str]:
    """Dotted names a module's import statements may load (module or module.attribute)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the current module's package
                if current is None:
                    continue
                base = current.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            # `from usseg import train` loads the module usseg.train; for
            # `from usseg.config import x`, usseg.config.x is not a module and is dropped.
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _files_for(dotted: str, package_dir: Path) -> list[Path]:
    """The module's file and the __init__.py of every package above it."""
    parts = dotted.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        found = module_file(".".join(parts[:i]), package_dir)
        if found is not None:
            files.append(found)
    return files


@cache
def _data_files(package_dir: Path) -> tuple[Path, ...]:
    return tuple(
        sorted(
            p
            for p in package_dir.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
        )
    )


def _named_data(tree: ast.AST, data_files: tuple[Path, ...], package_dir: Path) -> list[Path]:
    strings = {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    return [
        f
        for f in data_files
        if f.name in strings or f.relative_to(package_dir).as_posix() in strings
    ]


@cache
def _direct(path: Path, package_dir: Path) -> tuple[Path, ...]:
    """The usseg files one Python file names directly (its imports and the data files it names)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    name = _module_name(path, package_dir)
    found: list[Path] = []
    for dotted in sorted(_imported_names(tree, name, path.name == "__init__.py")):
        found.extend(_files_for(dotted, package_dir))
    found.extend(_named_data(tree, _data_files(package_dir), package_dir))
    return tuple(found)


@cache
def _code_files(path: Path, package_dir: Path) -> tuple[Path, ...]:
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.suffix == ".py":
            todo.extend(_direct(current, package_dir))
    # The script itself is the rule's `script:` (Snakemake tracks it); a module counts itself.
    return tuple(sorted(f for f in seen if f != path or _module_name(f, package_dir) is not None))


def code_files(path: str | Path, package_dir: str | Path = SRC_ROOT) -> list[Path]:
    """Every usseg file `path` (a script or a usseg module) runs, itself included when it is in the package.

    Sorted absolute paths: the transitive closure of its usseg imports, each
    package's __init__.py, and the package data files those modules name.
    """
    return list(_code_files(Path(path).resolve(), Path(package_dir).resolve()))


def module_code_files(dotted: str, package_dir: str | Path = SRC_ROOT) -> list[Path]:
    """code_files of a usseg module given by name, e.g. "usseg.train"."""
    found = module_file(dotted, Path(package_dir))
    if found is None:
        raise ValueError(f"{dotted!r} is not a module of the usseg package in {package_dir}")
    return code_files(found, package_dir)


def _modules_named(tree: ast.AST, current: str, is_package: bool, package_dir: Path) -> set[str]:
    """The usseg modules a file's import statements load, each named by its deepest module: `from usseg
    import train` names usseg.train, `from usseg.config import x` names usseg.config."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if module_file(a.name, package_dir) is not None)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(node, current, is_package)
            for alias in node.names:
                if module_file(f"{target}.{alias.name}", package_dir) is not None:
                    found.add(f"{target}.{alias.name}")
                elif module_file(target, package_dir) is not None:
                    found.add(target)
    found.discard(current)
    return found


def _resolve_from(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The module a `from ... import` statement imports from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package_dir: str | Path = SRC_ROOT) -> dict[str, set[str]]:
    """Every usseg module and the usseg modules its import statements name (lazy ones included)."""
    package_dir = Path(package_dir).resolve()
    graph: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        name = _module_name(path, package_dir)
        if name is None or "__pycache__" in path.parts:
            continue
        tree = ast.parse(path.read_bytes(), filename=str(path))
        graph[name] = _modules_named(tree, name, path.name == "__init__.py", package_dir)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph` (its strongly connected components of more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def code_digest(files: list[Path], package_dir: str | Path = SRC_ROOT) -> str:
    """sha256 over the files' paths (relative to the package) and contents: one fingerprint of that code."""
    package_dir = Path(package_dir).resolve()
    digest = hashlib.sha256()
    for f in sorted(Path(p).resolve() for p in files):
        digest.update(f.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()
