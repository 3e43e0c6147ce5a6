"""6. Provenance: one entry per job (outputs with their hashes checked now, inputs, parameters, code, versions).

Every figure and table links to the entry of the job that wrote its file, and
the entry links back; values the report computes itself are listed under the
report's own entry with the files they come from.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from usseg.provenance import code_version, library_versions, sha256_file
from usseg.report.formatting import as_yaml, size_text
from usseg.report.provenance_index import Artifact, Record

ID, TITLE, HEADING, TEMPLATE = "provenance", "Provenance", "Provenance", "provenance.html"

# Built after every other section: it lists the artifacts they showed.
NEEDS_ALL_ARTIFACTS = True

# The versions a reader needs first; the others follow in smaller type.
KEY_VERSIONS = ("python", "torch", "monai", "snakemake")


def build(ctx) -> dict:
    by_record: dict[str, list[tuple[Artifact, str]]] = {}
    for art in ctx.artifacts:
        if not art.derived:
            rec = ctx.prov.producer(art.files[0])[0]
            by_record.setdefault(rec.id, []).append((art, art.files[0]))
    return {"report": report_entry(ctx, [a for a in ctx.artifacts if a.derived]),
            "entries": [record_entry(ctx, rec, by_record.get(rec.id, [])) for rec in ctx.prov.records]}


def code_versions(code: dict, versions: dict) -> dict:
    return {"commit": code.get("git_commit"),
            "state": "uncommitted changes (dirty)" if code.get("dirty") else "clean",
            "note": code.get("note", "unknown"),
            "key": [(k, versions.get(k) or "not installed") for k in KEY_VERSIONS],
            "also": ", ".join(f"{k} {v}" for k, v in versions.items() if k not in KEY_VERSIONS and v)}


def current_hash(ctx, rel: str) -> str | None:
    p = ctx.results / rel
    return sha256_file(p) if p.is_file() else None


def written(ctx, rec: Record) -> str:
    """When the record was written (its file time: records hold no clock time, to compare by hash)."""
    path = ctx.results / rec.file
    if not path.is_file():
        return "?"
    when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return when.isoformat(timespec="seconds")


def output_row(ctx, name: str, path: str, desc: dict, key: str | None, arts: list[Artifact]) -> dict:
    recorded = desc.get("sha256")
    row = {"name": name, "path": path, "recorded": recorded, "arts": arts, "current": None}
    if "files" in desc:
        row.update(check="folder", files=desc["files"])
        return row
    current = current_hash(ctx, key) if key else None
    row["current"] = current
    if recorded and current:
        row["check"] = "unchanged" if current == recorded else "changed"
    elif current and not recorded:
        row["check"] = "no_hash"
    else:
        row["check"] = "not_checked"
    return row


def record_entry(ctx, rec: Record, shown: list[tuple[Artifact, str]]) -> dict:
    data = rec.data
    anchors: dict[str, list[Artifact]] = {}
    for art, rel in shown:
        anchors.setdefault(rel, []).append(art)
    outputs = []
    for name, paths in (data.get("outputs") or {}).items():
        for p, desc in (paths or {}).items():
            key = ctx.prov.key(p)
            desc = desc or {}
            arts = anchors.pop(key, []) if key else []
            outputs.append(output_row(ctx, name, p, desc, key, arts))
            if "files" in desc and key:  # files shown from inside a folder output
                for rel in [r for r in list(anchors) if r.startswith(key.rstrip("/") + "/")]:
                    outputs.append(output_row(ctx, f"{name} (in folder)", rel, {}, rel, anchors.pop(rel)))
    inputs = []
    for name, paths in (data.get("inputs") or {}).items():
        for p, desc in (paths or {}).items():
            desc = desc or {}
            made = ctx.prov.made_by(p)
            size = (f'{desc["files"]} files' if "files" in desc else
                    (size_text(desc["bytes"]) if "bytes" in desc else ("missing" if desc.get("missing") else "")))
            inputs.append({"name": name, "path": p, "sha": desc.get("sha256"), "size": size,
                           "made": made if made and made is not rec else None,
                           "not_made": "source code" if name == "code" else "not made by a rule"})
    params = data.get("params") or {}
    return {"id": rec.id, "rule": rec.rule, "wildcards": list((data.get("wildcards") or {}).items()),
            "file": rec.file, "written": written(ctx, rec), "outputs": outputs, "inputs": inputs,
            "params": as_yaml(params) if params else "",
            "versions": code_versions(data.get("code") or {}, data.get("versions") or {})}


def report_entry(ctx, derived: list[Artifact]) -> dict:
    rows = []
    for art in derived:
        for i, rel in enumerate(art.files):
            made = ctx.prov.producer(rel)
            rows.append({"art": art if i == 0 else None, "path": rel, "sha": current_hash(ctx, rel),
                         "made": made[0] if made else None})
    repo = Path(__file__).resolve().parents[4]
    return {"rows": rows, "versions": code_versions(code_version(repo), library_versions())}
