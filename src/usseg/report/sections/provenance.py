"""6. Provenance: one table of the rules that made the page's files, what they share shown once.

One row per job (a rule and its wildcards): its outputs with their hashes
checked now against the record, its inputs (and the rules that made them),
its code, parameters, versions and when its record was written. What most
jobs share (the library versions and code commit, a parameter block such as
the dataset with its palette) is shown once above the table; a row names
only what differs. Each row opens on the full lists: every output with its
recorded hash and whether the file still matches, every input with its hash
and size, the parameters as YAML. Every figure and table links to the row of
the job that wrote its file; what the page computes itself links to the row
of rule `report`, which lists the files it computed each from.
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

from usseg.provenance import code_version, library_versions, sha256_file
from usseg.report.formatting import as_yaml, size_text
from usseg.report.provenance_index import Artifact, Record, stale_outputs

ID, TITLE, HEADING, TEMPLATE = "provenance", "Provenance", "Provenance", "provenance.html"

# Built after every other section: it lists the artifacts they showed.
NEEDS_ALL_ARTIFACTS = True

# The versions a reader needs first; the others follow in smaller type.
KEY_VERSIONS = ("python", "torch", "monai", "snakemake")

REPORT_ROW = "rec-report"


def build(ctx) -> dict:
    by_record: dict[str, list[Artifact]] = {}
    derived = []
    for art in ctx.artifacts:
        if art.derived:
            derived.append(art)
            art.anchor = REPORT_ROW
            continue
        rec = ctx.prov.producer(art.files[0])[0]
        by_record.setdefault(rec.id, []).append(art)
        art.anchor = rec.id  # every figure and table links to its job's row
    shared_versions = most_common_versions(ctx.prov.records)
    shared_params = shared_parameters(ctx.prov.records)
    # The run state's own check (the header's): a folder or a file outside results/ that changed shows too.
    stale = dict(stale_outputs(ctx.prov, ctx.results))
    entries = [record_entry(ctx, rec, by_record.get(rec.id, []), shared_versions, shared_params, stale)
               for rec in ctx.prov.records]
    checked = [o for e in entries for o in e["outputs"] if o["check"] in ("unchanged", "changed")]
    return {
        "report": report_entry(ctx, derived, shared_versions),
        "entries": entries,
        "versions": versions_text(*shared_versions) if shared_versions else None,
        "shared_params": [{"name": name, "anchor": anchor, "yaml": text, "rules": n, "label": label}
                          for (name, text), (n, anchor, label) in shared_params.items()],
        "n_unchanged": sum(o["check"] == "unchanged" for o in checked),
        "n_changed": sum(o["check"] == "changed" for o in checked),
        "n_checked": len(checked),
    }


# ----------------------------------------------------------------------------- shared blocks


def _versions_key(data: dict) -> tuple:
    code, versions = data.get("code") or {}, data.get("versions") or {}
    return (code.get("git_commit"), bool(code.get("dirty")), code.get("note"),
            tuple(sorted((k, str(v)) for k, v in versions.items())))


def most_common_versions(records: list[Record]) -> tuple[dict, dict] | None:
    """(code, versions) that most jobs recorded: shown once, a row says only where it differs."""
    if not records:
        return None
    key, _ = Counter(_versions_key(r.data) for r in records).most_common(1)[0]
    commit, dirty, note, versions = key
    return {"git_commit": commit, "dirty": dirty, "note": note}, dict(versions)


def shared_parameters(records: list[Record]) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(parameter name, its value as YAML) used by two jobs or more: (how many, its anchor, what it is
    about, e.g. the experiment's name): shown once."""
    seen: Counter = Counter()
    about: dict[tuple[str, str], str] = {}
    for r in records:
        for name, value in (r.data.get("params") or {}).items():
            if isinstance(value, (dict, list)) and value:
                key = (name, as_yaml(value))
                seen[key] += 1
                about[key] = str(value.get("name", "")) if isinstance(value, dict) else ""
    shared = [k for k, n in seen.items() if n >= 2]
    out, used = {}, Counter()
    for key in shared:
        used[key[0]] += 1
        anchor = f"param-{key[0]}" + (f"-{used[key[0]]}" if used[key[0]] > 1 else "")
        out[key] = (seen[key], anchor, about[key])
    return out


def versions_text(code: dict, versions: dict) -> dict:
    return {"commit": code.get("git_commit"),
            "state": "uncommitted changes (dirty)" if code.get("dirty") else "clean",
            "note": code.get("note") or "unknown",
            "key": [(k, versions.get(k) or "not installed") for k in KEY_VERSIONS],
            "also": ", ".join(f"{k} {v}" for k, v in versions.items() if k not in KEY_VERSIONS and v
                              and v != "None")}


def code_versions(code: dict, versions: dict) -> dict:
    """A job's code and versions in words (kept for callers that show one record's)."""
    return versions_text(code, versions)


def version_difference(data: dict, shared: tuple[dict, dict] | None) -> str:
    """What a job's code and versions change against the shared block ("" when nothing)."""
    if shared is None:
        return ""
    code, versions = data.get("code") or {}, data.get("versions") or {}
    base_code, base_versions = shared
    out = []
    if code.get("git_commit") != base_code.get("git_commit"):
        out.append(f"git commit {str(code.get('git_commit') or code.get('note') or 'unknown')[:10]}")
    if bool(code.get("dirty")) != bool(base_code.get("dirty")):
        out.append("uncommitted changes (dirty)" if code.get("dirty") else "clean")
    for k in dict.fromkeys([*base_versions, *versions]):
        if str(versions.get(k)) != str(base_versions.get(k)):
            out.append(f"{k} {versions.get(k) or 'not installed'}")
    return ", ".join(out)


# ----------------------------------------------------------------------------- one row per job


def current_hash(ctx, rel: str) -> str | None:
    p = ctx.results / rel
    return sha256_file(p) if p.is_file() else None


def written(ctx, rec: Record) -> str:
    """When the record was written (its file time: records hold no clock time, to compare by hash)."""
    path = ctx.results / rec.file
    if not path.is_file():
        return "?"
    when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def output_row(ctx, name: str, path: str, desc: dict, key: str | None) -> dict:
    recorded = desc.get("sha256")
    row = {"name": name, "path": path, "recorded": recorded, "current": None, "why": ""}
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


def record_entry(ctx, rec: Record, shown: list[Artifact], shared_versions, shared_params,
                 stale: dict[str, str] | None = None) -> dict:
    data = rec.data
    outputs = []
    for name, paths in (data.get("outputs") or {}).items():
        for p, desc in (paths or {}).items():
            row = output_row(ctx, name, p, desc or {}, ctx.prov.key(p))
            if p in (stale or {}) and row["check"] != "changed":
                row.update(check="changed", why=stale[p])
            outputs.append(row)
    inputs, code_files, made_by = [], 0, {}
    for name, paths in (data.get("inputs") or {}).items():
        for p, desc in (paths or {}).items():
            desc = desc or {}
            if name == "code":
                code_files += 1
            made = ctx.prov.made_by(p)
            if made is not None and made is not rec:
                made_by[made.id] = made
            size = (f'{desc["files"]} files' if "files" in desc else
                    (size_text(desc["bytes"]) if "bytes" in desc else ("missing" if desc.get("missing") else "")))
            inputs.append({"name": name, "path": p, "sha": desc.get("sha256"), "size": size,
                           "made": made if made and made is not rec else None,
                           "not_made": "source code" if name == "code" else "not made by a rule"})
    params = data.get("params") or {}
    shared = [{"name": k, "anchor": shared_params[(k, as_yaml(v))][1]} for k, v in params.items()
              if (k, as_yaml(v)) in shared_params]
    own = {k: v for k, v in params.items() if (k, as_yaml(v)) not in shared_params}
    checks = Counter(o["check"] for o in outputs)
    return {"id": rec.id, "rule": rec.rule, "wildcards": list((data.get("wildcards") or {}).items()),
            "file": rec.file, "written": written(ctx, rec), "outputs": outputs, "inputs": inputs,
            "n_data_inputs": len(inputs) - code_files, "n_code": code_files, "made_by": list(made_by.values()),
            "checks": checks, "shared_params": shared, "own_params": list(own), "params": as_yaml(own) if own else "",
            "code": data.get("code") or {}, "differs": version_difference(data, shared_versions), "shown": shown}


def report_entry(ctx, derived: list[Artifact], shared_versions) -> dict:
    """This page's own row: what it computed and from which files (each file's maker linked)."""
    rows = []
    for art in derived:
        for i, rel in enumerate(art.files):
            made = ctx.prov.producer(rel)
            rows.append({"art": art if i == 0 else None, "path": rel, "sha": current_hash(ctx, rel),
                         "made": made[0] if made else None})
    repo = Path(__file__).resolve().parents[4]
    code, versions = code_version(repo), library_versions()
    return {"rows": rows, "n_artifacts": len(derived),
            "differs": version_difference({"code": code, "versions": versions}, shared_versions),
            "versions": versions_text(code, versions)}
