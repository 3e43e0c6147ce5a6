"""A fingerprint of everything under data_root, so a change inside it re-runs `manifest`.

Snakemake decides staleness from file times, and a folder's time changes only
when an entry directly inside it is added or removed: a mask edited in place,
a test image copied over a train image or a new file two folders down would go
unnoticed. So at every start-up the workflow walks data_root and records each
file's path, size and sha256 in one JSON file (the `manifest` rule's input).
The file is rewritten only when that content changes, so its time, and with it
the manifest's staleness, moves exactly when the dataset does.

Hashing the whole dataset at every start-up would make a dry run slow, so the
sha256 of a file whose size and modification time (in ns) are unchanged since
the last start-up is taken from a cache file beside the fingerprint. A touched
but unchanged file is hashed again and leaves the fingerprint as it was.

Nothing here imports more than the standard library: it runs in the Snakefile.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT_VERSION = 1


def _sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _printable(rel: str) -> str:
    """A path that JSON can hold: a name that is not valid UTF-8 keeps its bytes as \\xNN escapes."""
    return os.fsencode(rel).decode("utf-8", errors="backslashreplace")


def scan(root: str | Path, cache: dict | None = None) -> tuple[list[list], dict]:
    """([[path, bytes, sha256], ...] sorted by path, new cache) for every file below `root`.

    Symbolic links are followed to files (the manifest reads what they point
    at) but not into folders. `cache` maps path -> [bytes, mtime_ns, sha256]
    from an earlier scan; entries whose size and time still match are reused.
    """
    root = os.fspath(root)
    cache = cache or {}
    files: list[list] = []
    new_cache: dict = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = _printable(os.path.relpath(full, root))
            try:
                st = os.stat(full)
            except OSError:  # a broken link: its presence still counts
                files.append([rel, None, "broken-link"])
                continue
            key = [st.st_size, st.st_mtime_ns]
            cached = cache.get(rel)
            if cached and cached[:2] == key:
                digest = cached[2]
            else:
                try:
                    digest = _sha256(full)
                except OSError as exc:  # unreadable: the manifest names it; here it just counts
                    digest = f"unreadable: {exc.strerror}"
            new_cache[rel] = [*key, digest]
            files.append([rel, st.st_size, digest])
    files.sort(key=lambda f: f[0])
    return files, new_cache


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cache_path(fingerprint_path: str | Path) -> Path:
    fingerprint_path = Path(fingerprint_path)
    return fingerprint_path.with_name(fingerprint_path.stem + ".cache.json")


def update_fingerprint(root: str | Path, fingerprint_path: str | Path) -> bool:
    """Bring `fingerprint_path` up to date with the files under `root`; True when it changed.

    The file keeps its modification time when nothing under `root` changed,
    so Snakemake sees `manifest` as stale exactly when the dataset changed.
    """
    fingerprint_path = Path(fingerprint_path)
    cache_file = cache_path(fingerprint_path)
    old_cache = _read_json(cache_file) or {}
    if old_cache.get("root") != os.path.abspath(root):
        old_cache = {}
    files, new_cache = scan(root, old_cache.get("files"))
    text = json.dumps({"format_version": FORMAT_VERSION, "files": files}, indent=0) + "\n"
    changed = not fingerprint_path.is_file() or fingerprint_path.read_text() != text
    if changed:
        _write_atomic(fingerprint_path, text)
    if new_cache != old_cache.get("files"):
        _write_atomic(
            cache_file, json.dumps({"root": os.path.abspath(root), "files": new_cache}) + "\n"
        )
    return changed
