"""The report: one self-contained HTML page that answers "can this dataset support the task?".

It puts the verdict first (the diagnostics checklist), then the evidence:
the dataset's composition, the domain shift, the label checks and the
experiments, and ends with provenance. Every figure and table has an id and a
link to the provenance record of the rule that made its file: that rule's
inputs with their sha256, its parameters, the code version and the library
versions. Values shown in words (the simulator-to-real drop) are computed
here from the evaluation summaries, never typed in.

The page embeds its images as data URIs and its CSS and script inline, and
a Content-Security-Policy forbids any network load, so it opens the same way
offline, from an e-mail attachment or an archive.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import json
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from usseg import gap_report, pipeline_report
from usseg.errors import UssegError
from usseg.provenance import code_version, library_versions, sha256_file

log = logging.getLogger(__name__)

STATUSES = ("PASS", "WARN", "FAIL")

VERDICT_ANSWER = {
    "PASS": "Yes: the checks found nothing that stops this dataset from supporting the task.",
    "WARN": "Only with caveats: the dataset can support the task within the limits listed below.",
    "FAIL": "No: as it stands, this dataset cannot support the task; the failed checks say why.",
}

# Pipeline order of the rules, for listing provenance records the way the data flowed.
RULE_ORDER = ("demo_data", "manifest", "decode_masks", "split", "diagnostics", "train", "evaluate")

# The versions a reader needs first; the others follow in smaller type.
KEY_VERSIONS = ("python", "torch", "monai", "snakemake")

SECTIONS = (
    ("verdict", "1. Verdict"),
    ("dataset", "2. Dataset"),
    ("domain-shift", "3. Domain shift"),
    ("labels", "4. Label verification"),
    ("experiments", "5. Experiments"),
    ("provenance", "6. Provenance"),
    ("config", "Run configuration"),
)

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


class ReportInputError(UssegError):
    """A file the report needs is missing or unreadable."""


# ----------------------------------------------------------------------------- public API


def build_report(config: dict, results_dir: str | os.PathLike, out_html: str | os.PathLike) -> None:
    """Write the report for the run whose outputs are under `results_dir` to `out_html`.

    `config` is the run's full, validated config (defaults filled in). Raises
    ReportInputError naming every missing input, before writing anything.
    """
    results = Path(results_dir)
    missing = [f"{results / rel} (made by rule {rule})" for rel, rule in required_inputs(config)
               if not (results / rel).is_file()]
    if missing:
        raise ReportInputError(
            "the report cannot be built; these inputs are missing:\n  " + "\n  ".join(missing)
            + "\nRun `snakemake report` so that the rules named above make them."
        )
    page = _Report(config, results).render()
    _write_atomically(Path(out_html), page)
    log.info("report written to %s (%.1f MB)", out_html, len(page.encode()) / 1e6)


def stale_outputs(prov: _Provenance, results: Path) -> list[tuple[str, str]]:
    """(path, why) for every recorded output that is missing now or not the file its rule recorded."""
    from usseg.provenance import describe_path

    problems = []
    for rec in prov.records:
        for paths in (rec.data.get("outputs") or {}).values():
            for p, desc in (paths or {}).items():
                key = prov.key(p)
                where = results / key if key is not None else Path(prov.absolute(p))
                recorded = (desc or {}).get("sha256")
                if not where.exists():
                    problems.append((p, f"missing (recorded by rule {rec.rule})"))
                elif recorded and describe_path(where).get("sha256") != recorded:
                    problems.append((p, f"changed since rule {rec.rule} recorded it"))
    return problems


def required_inputs(config: dict) -> list[tuple[str, str]]:
    """(path relative to results/, rule that makes it) of every file the report reads."""
    diag = [
        "checklist.json", "checklist.md", "composition.png", "composition.csv", "subjects.png", "subjects.csv",
        "frames_per_subject.csv", "class_balance.png", "class_balance.csv", "class_weights.json",
        "domain_shift.png", "domain_shift.json", "intensity_histograms.csv", "label_flags.csv",
        "leakage.json", "near_duplicates.csv", "baselines.csv",
        "label_shift.png", "label_shift.csv", "label_shift.json", "image_quality.png", "image_quality.csv",
    ] + [f"label_gallery_{m}.png" for m in config["dataset"]["modalities"]]
    files = [(f"diagnostics/{name}", "diagnostics") for name in diag]
    files += [("manifest_issues.csv", "manifest"), ("labels/decode_report.csv", "decode_masks")]
    files += [("provenance/diagnostics.json", "diagnostics"), ("provenance/manifest.json", "manifest"),
              ("provenance/decode_masks.json", "decode_masks")]
    for exp in config["experiments"]:
        files += [(f"experiments/{exp}/history.csv", "train"), (f"experiments/{exp}/curves.png", "train"),
                  (f"provenance/train/{exp}.json", "train")]
        for ts in config["test_sets"]:
            base = f"experiments/{exp}/eval/{ts}"
            files += [(f"{base}/summary.json", "evaluate"), (f"{base}/overlays.png", "evaluate"),
                      (f"{base}/confusion.png", "evaluate"), (f"provenance/evaluate/{exp}/{ts}.json", "evaluate")]
    return files


# ----------------------------------------------------------------------------- small helpers


class Html(str):
    """Markup that is already safe; everything else is escaped on output."""


def esc(value: Any) -> str:
    return value if isinstance(value, Html) else html.escape(str(value), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_number(x: float) -> str:
    """A number as a reader wants it: integers whole, fractions to three places."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    a = abs(x)
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{x:.2e}"


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|nan|inf)$", re.IGNORECASE)


def fmt_value(value: Any) -> str:
    """Any JSON or CSV value as short text (escaping is the caller's job)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return fmt_number(float(value)) if _FLOAT_RE.match(value.strip()) else value
    if _is_number(value) or isinstance(value, bool):
        return fmt_number(value)
    if isinstance(value, (dict, list, tuple)) and not value:
        return "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "y")


def _dice(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{path}: cannot read it as JSON ({err}); re-run the rule that makes it.") from None


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: cannot read it as CSV ({err}); re-run the rule that makes it.") from None


def _plain(value: Any) -> Any:
    """Config and params as plain YAML-able types (Snakemake passes dict subclasses)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(_plain(value), sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _table(columns: list[Any], rows: list[list[Any]], *, table_id: str | None = None,
           numeric: set[int] | None = None, row_classes: list[str] | None = None,
           row_ids: list[str] | None = None, tall: bool = False) -> str:
    """An HTML table in a scroll container; cells are escaped unless they are Html."""
    numeric = numeric or set()
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(c)}</th>' for i, c in enumerate(columns))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{esc(row_classes[r])}"' if row_classes and row_classes[r] else ""
        cls += f' id="{esc(row_ids[r])}"' if row_ids else ""
        cells = "".join(f'<td{" class=num" if i in numeric else ""}>{esc(c)}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    idattr = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<div class="table-wrap{" tall" if tall else ""}"><table{idattr}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _numeric_columns(columns: list[str], rows: list[dict]) -> set[int]:
    out = set()
    for i, c in enumerate(columns):
        values = [str(r.get(c, "")).strip() for r in rows if str(r.get(c, "")).strip()]
        if values and all(re.match(r"^[+-]?\d+$", v) or _FLOAT_RE.match(v) for v in values):
            out.add(i)
    return out


def _records_table(columns: list[str], rows: list[dict], table_id: str, tall: bool | None = None) -> str:
    body = [[fmt_value(r.get(c)) for c in columns] for r in rows]
    return _table(columns, body, table_id=table_id, numeric=_numeric_columns(columns, rows),
                  tall=len(rows) > 12 if tall is None else tall)


def json_table(obj: Any, table_id: str) -> str:
    """A JSON object as the most natural table: records, a matrix, columns or key/value pairs."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        columns = list(dict.fromkeys(k for r in obj for k in r))
        return _records_table(columns, obj, table_id)
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        columns = list(dict.fromkeys(k for v in obj.values() for k in v))
        rows = [{"": k, **v} for k, v in obj.items()]
        return _records_table(["", *columns], rows, table_id)
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        lengths = {len(v) for v in lists.values()}
        if len(lists) >= 2 and len(lists) == len(obj) and len(lengths) == 1 and not any(
                isinstance(x, (dict, list)) for v in lists.values() for x in v):
            n = lengths.pop()
            rows = [{k: obj[k][i] for k in obj} for i in range(n)]
            return _records_table(list(obj), rows, table_id)
        flat = _flatten(obj)
        rows = [{"key": k, "value": v} for k, v in flat]
        return _records_table(["key", "value"], rows, table_id)
    return _records_table(["value"], [{"value": obj}], table_id)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict) and obj:
        out = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        out = []
        for i, v in enumerate(obj):
            out += _flatten(v, f"{prefix}[{i}]")
        return out
    return [(prefix, obj)]


def _find_auc(obj: Any) -> tuple[float, tuple[float, float] | None, str] | None:
    """The domain classifier's AUC and its interval, wherever domain_shift.json keeps them."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if "auc" in str(key).lower() and _is_number(value):
                for ci_key in (f"{key}_ci95", f"{key}_ci", "auc_ci95", "ci95", "auc_ci", "ci", "interval"):
                    ci = _interval(obj.get(ci_key))
                    if ci:
                        return float(value), ci, str(key)
                return float(value), None, str(key)
        for value in obj.values():
            found = _find_auc(value)
            if found:
                return found
    return None


# ----------------------------------------------------------------------------- provenance index


@dataclass
class _Record:
    id: str
    file: str
    data: dict

    @property
    def rule(self) -> str:
        return str(self.data.get("rule", "?"))

    @property
    def label(self) -> str:
        wc = self.data.get("wildcards") or {}
        return self.rule + "".join(f" · {k}={v}" for k, v in wc.items())


@dataclass
class _Artifact:
    id: str
    kind: str  # "figure" or "table"
    title: str
    files: list[str]  # relative to results/
    derived: bool = False  # computed by the report from `files`
    anchor: str = field(init=False)

    def __post_init__(self):
        self.anchor = f"prov-{self.id}"


class _Provenance:
    """All provenance records of the run, and which record made which file."""

    def __init__(self, results: Path, order: dict[str, list[str]] | None = None):
        self.results = results.resolve()
        self.order = order or {}
        self.records: list[_Record] = []
        self.by_file: dict[str, tuple[_Record, str, dict]] = {}
        self.by_dir: list[tuple[str, _Record, str, dict]] = []
        self.elsewhere: dict[str, _Record] = {}  # outputs outside results/ (the demo dataset), by absolute path
        prov_dir = results / "provenance"
        used: set[str] = set()
        for path in sorted(prov_dir.rglob("*.json")) if prov_dir.is_dir() else []:
            data = _load_json(path)
            if not isinstance(data, dict) or "rule" not in data:
                raise ReportInputError(f"{path}: not a provenance record (no 'rule'); re-run the rule that wrote it.")
            rid = "rec-" + _slug(path.relative_to(prov_dir).with_suffix("").as_posix())
            while rid in used:
                rid += "-"
            used.add(rid)
            rec = _Record(rid, path.relative_to(results).as_posix(), data)
            self.records.append(rec)
            for name, paths in (data.get("outputs") or {}).items():
                for p, desc in (paths or {}).items():
                    key = self.key(p)
                    if key is None:
                        self.elsewhere[self.absolute(p)] = rec
                        continue
                    self.by_file[key] = (rec, name, desc or {})
                    if "files" in (desc or {}):
                        self.by_dir.append((key, rec, name, desc))
        self.records.sort(key=self._order)

    def _order(self, rec: _Record):
        """Pipeline stage, then wildcards in config order (experiments, test sets), then file name."""
        rule = rec.rule
        stage = RULE_ORDER.index(rule) if rule in RULE_ORDER else len(RULE_ORDER)
        wildcards = rec.data.get("wildcards") or {}
        ranks = []
        for name, values in self.order.items():
            value = wildcards.get(name)
            ranks.append(values.index(value) if value in values else len(values))
        return stage, ranks, rec.file

    @staticmethod
    def absolute(path: str) -> str:
        p = Path(path)
        return str((p if p.is_absolute() else Path.cwd() / p).resolve())

    def made_by(self, path: str) -> _Record | None:
        """The record of the rule that wrote `path` (a recorded input), if any."""
        key = self.key(path)
        if key is not None:
            found = self.producer(key)
            return found[0] if found else None
        return self.elsewhere.get(self.absolute(path))

    def key(self, path: str) -> str | None:
        """A recorded path as a path relative to results/, or None when it lies elsewhere."""
        p = Path(path)
        absolute = p if p.is_absolute() else Path.cwd() / p
        try:
            return absolute.resolve().relative_to(self.results).as_posix()
        except ValueError:
            pass
        # Recorded in another working directory (a copied or moved run): match below results/.
        parts = p.parts
        if self.results.name in parts:
            i = len(parts) - 1 - parts[::-1].index(self.results.name)
            rest = parts[i + 1:]
            return "/".join(rest) if rest else None
        return None

    def producer(self, rel: str) -> tuple[_Record, str, dict, str | None] | None:
        """(record, output name, recorded description, folder key if inside a folder output)."""
        if rel in self.by_file:
            rec, name, desc = self.by_file[rel]
            return rec, name, desc, None
        for dir_key, rec, name, desc in self.by_dir:
            if rel.startswith(dir_key.rstrip("/") + "/"):
                return rec, name, desc, dir_key
        return None


# ----------------------------------------------------------------------------- the report


class _Report:
    def __init__(self, config: dict, results: Path):
        self.config = config
        self.results = results
        self.prov = _Provenance(results, {"experiment": list(config["experiments"]),
                                          "test_set": list(config["test_sets"])})
        self.artifacts: list[_Artifact] = []
        self.ids: set[str] = set()
        ds = config["dataset"]
        self.classes = [c["name"] for c in ds["classes"]]
        self.modalities = list(ds["modalities"])
        self.experiments = list(config["experiments"])
        self.test_sets = list(config["test_sets"])
        self.summaries = {
            (e, t): self._summary(e, t) for e in self.experiments for t in self.test_sets
        }

    # -- inputs

    def path(self, rel: str) -> Path:
        p = self.results / rel
        if not p.is_file():
            raise ReportInputError(f"the report needs {p}, which is missing; run `snakemake report`.")
        return p

    def _summary(self, exp: str, ts: str) -> dict:
        rel = f"experiments/{exp}/eval/{ts}/summary.json"
        data = _load_json(self.path(rel))
        for key in ("dice", "n_subjects"):
            if key not in data:
                raise ReportInputError(f"{self.results / rel}: no '{key}' key; re-run `snakemake report`.")
        return data

    # -- artifacts and their provenance links

    def _new_id(self, base: str) -> str:
        ident, n = _slug(base), 2
        while ident in self.ids:
            ident = f"{_slug(base)}-{n}"
            n += 1
        self.ids.add(ident)
        return ident

    def artifact(self, base_id: str, kind: str, title: str, files: list[str], derived: bool = False) -> _Artifact:
        art = _Artifact(self._new_id(base_id), kind, title, files, derived)
        if not derived:
            for rel in files:
                if self.prov.producer(rel) is None:
                    raise ReportInputError(
                        f"no provenance record under {self.results / 'provenance'} lists {self.results / rel} "
                        "as an output, so the report cannot say what made it; re-run `snakemake report`."
                    )
        self.artifacts.append(art)
        return art

    @staticmethod
    def prov_link(art: _Artifact, text: str = "provenance") -> str:
        return f'<a class="prov-link" href="#{esc(art.anchor)}">{esc(text)}</a>'

    def figure(self, base_id: str, rel: str, title: str, caption: str = "", narrow: bool = False) -> str:
        art = self.artifact(base_id, "figure", title, [rel])
        path = self.path(rel)
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".svg": "image/svg+xml", ".webp": "image/webp"}.get(path.suffix.lower(), "image/png")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cls = ' class="narrow"' if narrow else ""
        cap = f" {esc(caption)}" if caption else ""
        return (f'<figure id="{esc(art.id)}"{cls}><img id="img-{esc(art.id)}" src="data:{mime};base64,{data}" '
                f'alt="{esc(title)}"><figcaption><b>{esc(title)}.</b>{cap}{self.prov_link(art)}</figcaption></figure>')

    def csv_table(self, base_id: str, rel: str, title: str, caption: str = "", empty: str = "none",
                  rows_filter=None, columns: list[str] | None = None) -> str:
        art = self.artifact(base_id, "table", title, [rel])
        fields, rows = _read_csv(self.path(rel))
        if rows_filter:
            rows = [r for r in rows if rows_filter(r)]
        cols = [c for c in (columns or fields) if c in fields] if columns else fields
        head = self._table_head(art, caption)
        if not rows:
            return head + f'<p class="none" id="{esc(art.id)}">{esc(empty)}</p>'
        return head + _records_table(cols, rows, art.id)

    def json_artifact_table(self, base_id: str, rel: str, title: str, caption: str = "", obj: Any = None) -> str:
        art = self.artifact(base_id, "table", title, [rel])
        data = _load_json(self.path(rel)) if obj is None else obj
        return self._table_head(art, caption) + json_table(data, art.id)

    def _table_head(self, art: _Artifact, caption: str) -> str:
        cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
        return f"<h4>{esc(art.title)}{self.prov_link(art)}</h4>{cap}"

    # -- sections

    def render(self) -> str:
        pipeline = pipeline_report.render_html(  # the verdict's "Pipeline ruled out?" part
            self.config, self.results, lambda i, title, rel: self.prov_link(self.artifact(i, "table", title, [rel])))
        body = [self.header(), self.verdict(), pipeline, self.dataset(), self.domain_shift(), self.labels(),
                self.experiments_section(), gap_report.render_gap_section(self.config, self.results),
                self.provenance_section(), self.config_section()]
        css = resources.files("usseg").joinpath("templates/report.css").read_text()
        js = resources.files("usseg").joinpath("templates/report.js").read_text()
        title = self.config.get("report", {}).get("title", "usseg report")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{css}</style><script>{js}</script></head>\n"
            f"<body><main>\n{''.join(body)}\n</main></body></html>\n"
        )

    def header(self) -> str:
        title = self.config.get("report", {}).get("title", "usseg report")
        ds = self.config["dataset"]
        target = ds.get("target_modality")
        domains = ", ".join(f"{m} ({spec.get('domain', '?')})" for m, spec in ds["modalities"].items())
        commits = {(r.data.get("code") or {}).get("git_commit") for r in self.prov.records}
        dirty = any((r.data.get("code") or {}).get("dirty") for r in self.prov.records)
        if len(commits) == 1 and None not in commits:
            c = commits.pop()
            code = f'code <span class="mono hash" title="{esc(c)}">{esc(c[:10])}</span>' + (
                " (uncommitted changes)" if dirty else "")
        else:
            code = "code: several versions, see provenance"
        data_root = self.config.get("data_root")
        toc = "".join(f'<li><a href="#{sid}">{esc(name)}</a></li>' for sid, name in SECTIONS)
        return (
            f"<header><h1>{esc(title)}</h1>"
            f'<p class="meta">Data: {esc(data_root if data_root is not None else "generated demo dataset")}'
            f" · modalities {esc(domains)} · target {esc(target)} · "
            f"{len(self.experiments)} experiments · test sets {esc(', '.join(self.test_sets))} · {code}</p>"
            + self.run_state()
            + f'<nav class="toc"><ol><li><b>Contents</b></li>{toc}</ol></nav></header>'
        )

    # 1. verdict

    def verdict(self) -> str:
        rel = "diagnostics/checklist.json"
        data = _load_json(self.path(rel))
        if not isinstance(data, dict) or "overall" not in data or not isinstance(data.get("checks"), list):
            raise ReportInputError(f"{self.results / rel}: expected {{'overall', 'checks': [...]}}.")
        art = self.artifact("tab-checklist", "table", "Dataset-readiness checklist", [rel])
        overall = str(data["overall"])
        ocls = overall if overall in STATUSES else ""
        counts = {s: sum(1 for c in data["checks"] if c.get("status") == s) for s in STATUSES}
        count_text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        concerns = [c for s in ("FAIL", "WARN") for c in data["checks"] if c.get("status") == s]
        # The box names each concern with its number against its threshold; the table below gives the reasons.
        why = "".join(
            f'<li><span class="status {esc(c["status"])}">{esc(c["status"])}</span> '
            f'<a href="#check-{esc(_slug(c.get("id", "")))}"><b>{esc(c.get("title", c.get("id", "")))}</b></a>: '
            f'{esc(fmt_value(c.get("value")))} <span class="meta">(threshold: {esc(fmt_value(c.get("threshold")))})'
            f"</span></li>" for c in concerns)
        drops = self.drop_sentences()
        evidence = ""
        if drops:
            evidence = ('<p><b>What the models say</b> (<a href="#text-drops">section 5</a>):</p><ul>'
                        + "".join(f"<li>{esc(head)}</li>" for head, _, _ in drops) + "</ul>")
        steps = data.get("next_steps")
        if not isinstance(steps, list):
            steps = next_steps_from_markdown(self.path("diagnostics/checklist.md").read_text(errors="replace"))
        todo = ""
        if steps:
            todo = ("<p><b>What to try next</b> (from the diagnostics):</p><ol>"
                    + "".join(f"<li>{esc(step)}</li>" for step in steps) + "</ol>")
        rows, classes, ids = [], [], []
        for c in data["checks"]:
            status = str(c.get("status", ""))
            scls = status if status in STATUSES else ""
            rows.append([
                Html(f'{esc(c.get("title", ""))}<br><code>{esc(c.get("id", ""))}</code>'),
                Html(f'<span class="status {esc(scls)}">{esc(status)}</span>'),
                fmt_value(c.get("value")), fmt_value(c.get("threshold")), c.get("reason", ""),
            ])
            classes.append(f"status-{scls}" if scls else "")
            ids.append(f"check-{_slug(c.get('id', ''))}")
        table = _table(["check", "status", "value", "threshold", "reason"], rows, table_id=art.id,
                       row_classes=classes, row_ids=ids)
        return (
            f'<section id="verdict"><h2>1. Verdict: can this dataset support this task?</h2>'
            f'<div class="verdict {esc(ocls)}"><span class="big">{esc(overall)}</span>'
            f'<span class="answer">{esc(VERDICT_ANSWER.get(overall, "Unknown verdict."))}</span>'
            f'<p class="meta">{esc(count_text)} of {len(data["checks"])} checks.</p>{self.demo_notice()}'
            f'{"<ul>" + why + "</ul>" if why else ""}{evidence}{todo}</div>'
            f'<h4>{esc(art.title)}{self.prov_link(art)}</h4><p class="caption">Each check with its measured '
            f'value, the threshold from <code>config.yaml</code> (<code>diagnostics:</code>) and the reason '
            f"for its status.</p>{table}</section>"
        )

    # 2. dataset

    def dataset(self) -> str:
        d = "diagnostics"
        weights = _load_json(self.path(f"{d}/class_weights.json"))
        parts = [
            '<section id="dataset"><h2>2. Dataset</h2>',
            "<h3>Composition</h3>",
            self.figure("fig-composition", f"{d}/composition.png", "Composition",
                        "Images per modality and original split, labeled and unlabeled."),
            self.csv_table("tab-composition", f"{d}/composition.csv", "Composition table"),
            "<h3>Subjects</h3>",
            self.figure("fig-subjects", f"{d}/subjects.png", "Subjects",
                        "Distinct subjects (patients or CT volumes) per modality: the true size of a dataset."),
            self.csv_table("tab-subjects", f"{d}/subjects.csv", "Subjects table"),
            self.csv_table("tab-frames-per-subject", f"{d}/frames_per_subject.csv", "Frames per subject",
                           "Frames of one subject are not independent samples."),
            "<h3>Class balance</h3>",
            self.figure("fig-class-balance", f"{d}/class_balance.png", "Class balance",
                        "Share of labeled pixels and of images in which each class appears."),
            self.csv_table("tab-class-balance", f"{d}/class_balance.csv", "Class balance table"),
            self.json_artifact_table("tab-class-weights", f"{d}/class_weights.json", "Suggested class weights",
                                     "Tempered median-frequency weights (used by experiments with "
                                     "class_weights: auto); 0 = class never labeled.", obj=weights),
            "<h3>Image quality</h3>",
            self.figure("fig-image-quality", f"{d}/image_quality.png", "Image quality",
                        "Dark, over-bright, blurry or low-information frames inside the field of view "
                        "(thresholds: diagnostics.image_quality); without flags, the closest calls."),
            self.csv_table("tab-image-quality", f"{d}/image_quality.csv", "Flagged frames",
                           "Frames with at least one image-quality flag.", empty="none: no frame was flagged.",
                           rows_filter=lambda r: bool(r.get("flags", ""))),
            "<h3>Quarantined inputs</h3>",
            self.csv_table("tab-manifest-issues", "manifest_issues.csv", "Files set aside by the manifest",
                           "Every file below the data root is either in the manifest or listed here with "
                           "the reason; nothing disappears silently.", empty="none: every file was used."),
            self.csv_table("tab-flagged-masks", "labels/decode_report.csv", "Flagged masks",
                           "Masks whose colours are too far from the palette; they are left out of training "
                           "and evaluation.", empty="none: every mask decoded cleanly.",
                           rows_filter=lambda r: _truthy(r.get("flagged", "")),
                           columns=["image_id", "mask_path", "off_palette_fraction", "far_fraction",
                                    "max_distance", "classes_present", "flag_reason"]),
            "<h3>Leakage</h3>",
            self.json_artifact_table("tab-leakage", f"{d}/leakage.json", "Leakage check",
                                     "Subjects or identical files shared between train, val and the test sets."),
            self.csv_table("tab-near-duplicates", f"{d}/near_duplicates.csv", "Near-duplicate images",
                           "Image pairs whose perceptual hashes are within the configured distance.",
                           empty="none found."),
            "</section>",
        ]
        return "".join(parts)

    # 3. domain shift

    def domain_shift(self) -> str:
        d = "diagnostics"
        rel = f"{d}/domain_shift.json"
        data = _load_json(self.path(rel))
        art = self.artifact("tab-domain-shift", "table", "Distances between the domains", [rel])
        parts = ['<section id="domain-shift"><h2>3. Domain shift</h2>',
                 self.figure("fig-domain-shift", f"{d}/domain_shift.png", "Intensity distributions per modality",
                             "Grey-level histograms inside the ultrasound field of view.")]
        parts.append(self._auc_fact(data, art))
        parts.append(self._table_head(art, "Distances between the simulator and real intensity distributions "
                                           "(0 = identical)."))
        parts.append(json_table(_distances(data), art.id))
        per_mod = data.get("per_modality") if isinstance(data, dict) else None
        if isinstance(per_mod, dict) and per_mod:
            stats = self.artifact("tab-intensity-stats", "table", "Intensity statistics per modality", [rel])
            parts += [self._table_head(stats, "Grey levels inside the field of view."), json_table(per_mod, stats.id)]
        parts.append(self._format_control_fact(data, rel))
        parts.append(self.figure("fig-label-shift", f"{d}/label_shift.png", "Label shift",
                                 "Organ presence, size (share of the field of view, one dot per subject) and "
                                 "position per modality; classes beyond the diagnostics.label_shift thresholds "
                                 "are named in the domain-shift verdict."))
        parts.append(self.csv_table("tab-label-shift", f"{d}/label_shift.csv",
                                    "Organ presence, size and position per class and modality"))
        everything = self.artifact("tab-domain-shift-all", "table", "Every value in domain_shift.json", [rel])
        hist = self.csv_table("tab-intensity-histograms", f"{d}/intensity_histograms.csv",
                              "Intensity histograms (data behind the figure)")
        parts.append(f"<details><summary>Every recorded value and the histogram data</summary>"
                     f"{self._table_head(everything, '')}{json_table(dict(_flatten(data)), everything.id)}"
                     f"{hist}</details></section>")
        return "".join(parts)

    def _format_control_fact(self, data: Any, rel: str) -> str:
        """The format control's AUC beside the image classifier's, and what a model sees."""
        fmt = data.get("format_control") if isinstance(data, dict) else None
        model = data.get("model_input_intensity") if isinstance(data, dict) else None
        art = self.artifact("text-format-control", "table", "Format control and model input", [rel])
        text = []
        if isinstance(fmt, dict) and _is_number(fmt.get("auc")):
            text.append(f"Format control: the same classifier on file properties only ({', '.join(fmt.get('features', []))}) "
                        f"reaches AUC {fmt['auc']:.2f}; high here and low above means the domains differ in how "
                        "their files were stored, not in what was imaged.")
        if isinstance(model, dict) and model.get("source_vs_target"):
            w1 = model["source_vs_target"].get("wasserstein1")
            if _is_number(w1):
                text.append(f"At the model's input ({model.get('normalisation', '')}) the intensity distributions "
                            f"differ by Wasserstein-1 {w1:.3f} (input units 0-1).")
        if not text:
            return ""
        return f'<p class="keyfact" id="{esc(art.id)}">{esc(" ".join(text))}{self.prov_link(art)}</p>'

    def _auc_fact(self, data: Any, art: _Artifact) -> str:
        auc = _find_auc(data)
        if not auc:
            why = _find_key(data, ("why_not", "why", "reason"))
            text = "The two-sample test (domain classifier) did not run" + (f": {why}" if why else ".")
            return f'<p class="keyfact" id="domain-auc">{esc(text)}{self.prov_link(art)}</p>'
        value, ci, _ = auc
        th = self.config.get("diagnostics", {}).get("domain_auc", {})
        ci_text = f" (95 % interval {ci[0]:.2f} to {ci[1]:.2f})" if ci else " (no interval recorded)"
        th_text = ""
        if "warn_above" in th and "fail_above" in th:
            th_text = (f" Thresholds: WARN above {fmt_number(th['warn_above'])}, "
                       f"FAIL above {fmt_number(th['fail_above'])}.")
        sizes = ""
        n_img, n_sub = _find_key(data, ("n_images",)), _find_key(data, ("n_subjects",))
        if isinstance(n_img, dict) and isinstance(n_sub, dict):
            sizes = " Images (subjects) per domain: " + ", ".join(
                f"{k} {fmt_value(v)} ({fmt_value(n_sub.get(k))})" for k, v in n_img.items()) + "."
        return (f'<p class="keyfact" id="domain-auc">Two-sample test: a classifier, cross-validated by subject, '
                f"tells the domains apart with AUC <b>{value:.2f}</b>{esc(ci_text)}; 0.5 means it cannot tell "
                f"them apart, 1.0 that every image gives its domain away.{esc(th_text)}{esc(sizes)}"
                f"{self.prov_link(art)}</p>")

    # 4. labels

    def labels(self) -> str:
        parts = ['<section id="labels"><h2>4. Label verification</h2>',
                 ("<p>Decoded masks drawn over their images: the palette, the channel order and the "
                  "resizing are right only if the outlines sit on the organs.</p>")]
        for m in self.modalities:
            domain = self.config["dataset"]["modalities"][m].get("domain", "")
            parts.append(self.figure(f"fig-label-gallery-{m}", f"diagnostics/label_gallery_{m}.png",
                                     f"Label gallery: {m} ({domain})"))
        parts.append(self.csv_table("tab-label-flags", "diagnostics/label_flags.csv", "Label flags",
                                    "Masks the label checks found suspicious.", empty="none: no mask was flagged."))
        parts.append("</section>")
        return "".join(parts)

    # 5. experiments

    def fg_classes(self) -> list[str]:
        """Foreground classes scored by any experiment, in palette order."""
        seen = {c for s in self.summaries.values() for c in (s.get("dice") or {})}
        ordered = [c for c in self.classes[1:] if c in seen]
        return ordered + sorted(seen - set(ordered) - {self.classes[0]})

    def test_set_domain(self, ts: str) -> tuple[str | None, str | None]:
        """(modality, domain) of a test set named after its modality, e.g. test_rus -> RUS, real."""
        for m, spec in self.config["dataset"]["modalities"].items():
            if ts.lower() in (f"test_{m.lower()}", m.lower()) or ts.lower().endswith(f"_{m.lower()}"):
                return m, spec.get("domain")
        return None, None

    def baselines(self) -> list[dict]:
        _, rows = _read_csv(self.path("diagnostics/baselines.csv"))
        out = []
        for r in rows:
            try:
                value = float(r.get("value", ""))
            except ValueError:
                continue
            out.append({**r, "value": value})
        return out

    def drop_sentences(self) -> list[tuple[str, str, str]]:
        """(sentence, per-class detail, experiment) per experiment and synthetic/real test-set pair."""
        syn = [t for t in self.test_sets if self.test_set_domain(t)[1] == "synthetic"]
        real = [t for t in self.test_sets if self.test_set_domain(t)[1] == "real"]
        out = []
        for exp in self.experiments:
            for s in syn:
                for r in real:
                    head, detail = drop_sentence_parts(exp, s, r, self.summaries[(exp, s)],
                                                       self.summaries[(exp, r)], self.fg_classes())
                    out.append((head, detail, exp))
        return out

    def experiments_section(self) -> str:
        classes = self.fg_classes()
        baselines = self.baselines()
        table_art = self.artifact("tab-dice", "table", "Dice per class and test set",
                                  [f"experiments/{e}/eval/{t}/summary.json" for e in self.experiments
                                   for t in self.test_sets] + ["diagnostics/baselines.csv"], derived=True)
        columns = ["experiment", "images", "subjects", *classes, "mean foreground"]
        numeric = set(range(3, 3 + len(classes) + 1))
        rows_html = []
        for ts in self.test_sets:
            mod, domain = self.test_set_domain(ts)
            label = f"{ts}" + (f": {mod} ({domain})" if mod else "")
            rows_html.append(f'<tr class="group"><th colspan="{len(columns)}">{esc(label)}</th></tr>')
            values = {e: self._row_values(self.summaries[(e, ts)], classes) for e in self.experiments}
            best = {}
            for j in range(len(classes) + 1):
                vals = [round(v[j][0], 2) for v in values.values() if v[j] and v[j][0] is not None]
                best[j] = max(vals) if len(vals) > 1 else None
            for e in self.experiments:
                s = self.summaries[(e, ts)]
                row_art = self.artifact(f"row-dice-{e}-{ts}", "table", f"Dice of {e} on {ts}",
                                        [f"experiments/{e}/eval/{ts}/summary.json"])
                n_sub = s.get("n_subjects")
                subj = esc(fmt_value(n_sub))
                if s.get("unstable"):
                    subj = f'<span class="unstable" title="too few subjects for a trustworthy interval">⚠ unstable: {esc(fmt_value(n_sub))} subjects</span>'
                cells = [f'<td>{esc(e)}{self.prov_link(row_art)}</td>', f'<td class="num">{esc(fmt_value(s.get("n_images")))}</td>',
                         f"<td>{subj}</td>"]
                for j, v in enumerate(values[e]):
                    if v is None:
                        cells.append('<td class="num na" title="not a class of this experiment">·</td>')
                    elif v[0] is None:
                        cells.append('<td class="num na" title="class absent from every reference mask of this '
                                     'test set">absent</td>')
                    else:
                        is_best = best[j] is not None and round(v[0], 2) == best[j]
                        value = f"<strong>{_dice(v[0])}</strong>" if is_best else _dice(v[0])
                        ci = f' <span class="ci">[{v[1][0]:.2f}, {v[1][1]:.2f}]</span>' if v[1] else ""
                        ci = ci or self._no_interval(s, classes[j] if j < len(classes) else None)
                        if j == len(classes):
                            ci += self._mean_classes(s)
                        cells.append(f'<td class="{"num best" if is_best else "num"}">{value}{ci}</td>')
                rows_html.append(f'<tr id="{esc(row_art.id)}">{"".join(cells)}</tr>')
            for b in baselines:
                if b.get("test_set") != ts or str(b.get("metric", "dice")).lower() != "dice" or b.get("class") not in classes:
                    continue
                label = f'published: {b.get("source", "")}'
                if str(b.get("comparable", "")).strip().lower() == "false":
                    label += f' (not comparable: measured on {b.get("measured_on", "other data")})'
                cells = [f'<td colspan="3">{esc(label)}</td>']
                cells += [f'<td class="num">{_dice(b["value"])}</td>' if c == b["class"] else '<td></td>'
                          for c in classes]
                cells += ["<td></td>"]
                rows_html.append(f'<tr class="baseline">{"".join(cells)}</tr>')
        head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(c)}</th>' for i, c in enumerate(columns))
        table = (f'<div class="breakout"><div class="table-wrap"><table class="dice" id="{esc(table_art.id)}">'
                 f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows_html)}</tbody></table></div></div>')
        other_baselines = [b for b in baselines if str(b.get("metric", "")).lower() != "dice"
                           or b.get("class") not in classes or b.get("test_set") not in self.test_sets]
        other = ""
        if other_baselines:
            columns = ["source", "test_set", "class", "metric", "value"]
            columns += [c for c in ("measured_on", "comparable", "note") if any(c in b for b in other_baselines)]
            other_art = self.artifact("tab-other-baselines", "table", "Published results without a matching row above",
                                      ["diagnostics/baselines.csv"])
            other = (self._table_head(other_art, "comparable = measured on this data (measured_on = dataset_id).")
                     + _records_table(columns, other_baselines, other_art.id))
        drops = self.drop_sentences()
        drop_html = ""
        if drops:
            drop_art = self.artifact("text-drops", "table", "Simulator-to-real drop",
                                     [f"experiments/{e}/eval/{t}/summary.json" for e in self.experiments
                                      for t in self.test_sets], derived=True)
            drop_html = (f'<h3 id="{esc(drop_art.id)}">From simulator to real images</h3><ul class="drops">'
                         + "".join(f"<li>{esc(h)}{' <span class=meta>' + esc(d) + '</span>' if d else ''}</li>"
                                   for h, d, _ in drops)
                         + f'</ul><p class="caption">Computed from the summaries above.{self.prov_link(drop_art)}</p>')
        training = self.training_table()
        per_exp = []
        for e in self.experiments:
            per_exp.append(f'<h3 id="exp-{esc(_slug(e))}">{esc(e)}</h3>')
            per_exp.append(f'<p class="meta">{esc(self.experiment_description(e))}</p>')
            per_exp.append(self.figure(f"fig-curves-{e}", f"experiments/{e}/curves.png",
                                       f"Training curves: {e}", "Loss and validation Dice per epoch."))
            for ts in self.test_sets:
                per_exp.append(self.figure(f"fig-overlays-{e}-{ts}", f"experiments/{e}/eval/{ts}/overlays.png",
                                           f"Predictions: {e} on {ts}", OVERLAY_CAPTION))
                per_exp.append(self.figure(f"fig-confusion-{e}-{ts}", f"experiments/{e}/eval/{ts}/confusion.png",
                                           f"Pixel confusion: {e} on {ts}", CONFUSION_CAPTION, narrow=True))
        drop_html += self.drop_intervals_html()
        return (
            '<section id="experiments"><h2>5. Experiments</h2>'
            f'<h4>{esc(table_art.title)}{self.prov_link(table_art)}</h4><p class="caption">{esc(DICE_CAPTION)} '
            "<b>Bold</b>: the best experiment for that class on that test set. "
            "⚠ unstable: fewer than 5 subjects in the test set. "
            "· = not a class of the experiment; absent = never in this test set's reference masks. "
            "Italic rows: published results on the same test set and class.</p>"
            + table + self.excluded_html() + other + self.evaluation_figures_html() + self.errors_table()
            + drop_html + training + "".join(per_exp) + "</section>"
        )

    def _row_values(self, s: dict, classes: list[str]) -> list:
        """Per column (classes + mean foreground): None (not scored), (None, None) absent, (value, ci)."""
        dice, ci95 = s.get("dice") or {}, s.get("ci95") or {}
        out = []
        for c in classes:
            if c not in dice:
                out.append(None)
            else:
                v = dice[c]
                out.append((float(v), _interval(ci95.get(c))) if _is_number(v) and not math.isnan(v) else (None, None))
        m = s.get("dice_mean_foreground")
        mci = _interval((s.get("mean_foreground") or {}).get("ci95")) or next(
            (_interval(ci95.get(k)) for k in ("mean_foreground", "dice_mean_foreground", "mean")
             if _interval(ci95.get(k))), None)
        out.append((float(m), mci) if _is_number(m) and not math.isnan(m) else (None, None))
        return out

    # 5. experiments: subject-level evaluation (intervals, errors, exclusions, figures)

    def demo_notice(self) -> str:
        """A sentence in the verdict box when the data are the generated demo, not a real dataset."""
        if self.config.get("data_root") is not None:
            return ""
        return ('<p class="demo-notice"><b>These results come from the generated demo dataset</b> '
                "(<code>data_root: null</code>), not from real ultrasound data: they show that the workflow "
                "runs and what it reports, and say nothing about the real dataset. Set <code>data_root</code> "
                "to the downloaded dataset for a real verdict.</p>")

    @staticmethod
    def _no_interval(summary: dict, cls: str | None) -> str:
        """The words in place of an interval that is not shown (too few subjects, or no spread)."""
        entry = (summary.get("mean_foreground") if cls is None else (summary.get("per_class") or {}).get(cls))
        note = (entry or {}).get("interval_note")
        return f' <span class="ci">{esc(note)}</span>' if note else ""

    @staticmethod
    def _mean_classes(summary: dict) -> str:
        names = (summary.get("mean_foreground") or {}).get("classes")
        return f' <span class="ci">over {esc(", ".join(names))}</span>' if names else ""

    def _eval_files(self) -> list[str]:
        return [f"experiments/{e}/eval/{t}/summary.json" for e in self.experiments for t in self.test_sets]

    def excluded_html(self) -> str:
        """Images left out of each test set (splits.csv excluded_from), counted with their reasons."""
        art = self.artifact("tab-excluded", "table", "Images left out of the test sets", self._eval_files(),
                            derived=True)
        rows = []
        for ts in self.test_sets:
            excluded = self.summaries[(self.experiments[0], ts)].get("excluded") or []
            reasons: dict[str, int] = {}
            for item in excluded:
                reason = str(item.get("reason", "")) if isinstance(item, dict) else str(item)
                reasons[reason] = reasons.get(reason, 0) + 1
            rows.append([ts, len(excluded), "; ".join(f"{r} ({n})" for r, n in reasons.items()) or "none"])
        return (self._table_head(art, "Counted beside the Dice table: images of a test set that the split left "
                                      "out (the excluded_from column of splits.csv), with the reason.")
                + _table(["test set", "images left out", "reasons (images)"], rows, table_id=art.id,
                         numeric={1}))

    def errors_table(self) -> str:
        """Per experiment, test set and class: boundary metrics and the errors a Dice mean hides."""
        art = self.artifact("tab-errors", "table", "Boundaries and errors per class", self._eval_files(),
                            derived=True)
        rows = []
        tolerance = None
        for e in self.experiments:
            for ts in self.test_sets:
                s = self.summaries[(e, ts)]
                tolerance = s.get("nsd_tolerance_px", tolerance)
                for cls, c in (s.get("per_class") or {}).items():
                    scored = c.get("n_images") or 0
                    note = ""
                    if not scored and c.get("predicted_images"):
                        note = (f"predicted in {c['predicted_images']} images but never annotated (or only too "
                                "small) here: cannot be scored")
                    rows.append([e, ts, cls, f"{scored} ({c.get('n_subjects', 0)})",
                                 fmt_value(c.get("nsd")), fmt_value(c.get("hd95")),
                                 f"{c.get('false_positive_images', 0)} / {c.get('absent_images', 0)}",
                                 f"{c.get('missed_images', 0)} / {scored}", c.get("too_small_images", 0),
                                 fmt_value(c.get("pooled_image_dice")), note])
        if not rows:
            return ""
        caption = (f"Subject-level normalised surface Dice (NSD, tolerance {fmt_value(tolerance)} px) and HD95 "
                   "(pixels, over images where the organ is both in the reference and predicted), at the reference "
                   "masks' original resolution; false positives: images without the organ in the reference where "
                   "it is predicted; missed: images with the organ where nothing is predicted; too small: "
                   "reference regions below evaluation.min_reference_area_px, counted and never averaged. The "
                   "pooled-image Dice is secondary: it weighs each frame, not each subject.")
        return self._table_head(art, caption) + _table(
            ["experiment", "test set", "class", "scored images (subjects)", "NSD", "HD95 (px)",
             "false positives / images without it", "missed / scored images", "too small",
             "pooled-image Dice (secondary)", "note"], rows, table_id=art.id, numeric={4, 5, 8, 9},
            tall=len(rows) > 14)

    def derived_figure(self, base_id: str, title: str, png: bytes, caption: str) -> str:
        """A figure drawn here from the evaluation summaries (its provenance lists them)."""
        art = self.artifact(base_id, "figure", title, self._eval_files(), derived=True)
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure id="{esc(art.id)}"><img id="img-{esc(art.id)}" src="data:image/png;base64,{data}" '
                f'alt="{esc(title)}"><figcaption><b>{esc(title)}.</b> {esc(caption)}{self.prov_link(art)}'
                "</figcaption></figure>")

    def evaluation_figures_html(self) -> str:
        from usseg import evaluation_figures  # matplotlib only when the report is drawn

        classes = self.fg_classes()
        return (
            self.derived_figure("fig-forest", "Every experiment with its interval",
                                evaluation_figures.forest_png(self.summaries, self.experiments, self.test_sets,
                                                              classes),
                                "Subject-level Dice per experiment, test set and class, and the foreground mean "
                                "over the classes scored on both test sets (named), with the 95 % t interval; a "
                                "hollow point has no interval (fewer than 3 subjects, or every subject equal).")
            + self.derived_figure("fig-per-subject", "Dice of each subject",
                                  evaluation_figures.per_subject_png(self.summaries, self.experiments,
                                                                     self.test_sets, classes),
                                  "Each point is one subject's mean Dice over its images where the class is "
                                  "scored; the bar is the mean over subjects, the value in the Dice table.")
        )

    def drop_intervals_html(self) -> str:
        """The simulator-to-real drop of each experiment with its own interval (Welch, unpaired)."""
        from usseg.intervals import difference_interval

        syn = [t for t in self.test_sets if self.test_set_domain(t)[1] == "synthetic"]
        real = [t for t in self.test_sets if self.test_set_domain(t)[1] == "real"]
        items = []
        for e in self.experiments:
            for a in syn:
                for b in real:
                    sa, sb = self.summaries[(e, a)], self.summaries[(e, b)]
                    shared = [c for c in self.fg_classes() if _scored(sa, c) is not None
                              and _scored(sb, c) is not None]
                    if not shared:
                        continue
                    iv = difference_interval(_subject_values(sa, shared), _subject_values(sb, shared))
                    if iv["estimate"] is None:
                        continue
                    what = f"mean Dice over {', '.join(shared)}" if len(shared) > 1 else f"{shared[0]} Dice"
                    ci = (f"95 % interval {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f}" if iv["ci95"]
                          else iv["note"])
                    items.append(f"{e}: drop in subject-level {what} from {a} to {b}: {iv['estimate']:.2f} ({ci}; "
                                 f"{iv['n_a']} and {iv['n_b']} subjects)")
        if not items:
            return ""
        art = self.artifact("text-drop-intervals", "table", "Simulator-to-real drop with its interval",
                            self._eval_files(), derived=True)
        return (f'<ul class="drops" id="{esc(art.id)}">' + "".join(f"<li>{esc(i)}</li>" for i in items)
                + f'</ul><p class="caption">The two test sets hold different subjects, so the drop cannot be '
                "paired: each subject contributes its mean Dice over the classes scored on both test sets, and "
                "the interval is Welch's unpaired two-sample t interval on those subject values (coverage "
                f"measured in docs/experiments.md).{self.prov_link(art)}</p>")

    def experiment_description(self, name: str) -> str:
        from usseg.config import resolve_experiment  # the merge rule lives with the config

        try:
            exp = resolve_experiment(self.config, name)
        except (UssegError, KeyError):
            return ""
        model = (exp.get("model") or {}).get("name", "?")
        classes = exp.get("classes")
        classes = "all classes" if classes == "all" else ", ".join(map(str, classes or []))
        text = f"{model} · classes: {classes} · trained on {', '.join(map(str, exp.get('train_modalities') or []))}"
        if model == "random_forest":
            forest = exp.get("forest") or {}
            return text + "".join(f" · {k.replace('_', ' ')} {v}" for k, v in forest.items())
        loss = exp.get("loss") or {}
        return (text + f" · loss {loss.get('name', '?')} (class weights {loss.get('class_weights', '?')})"
                f" · {exp.get('epochs', '?')} epochs")

    def training_table(self) -> str:
        art = self.artifact("tab-training", "table", "Training runs",
                            [f"experiments/{e}/history.csv" for e in self.experiments], derived=True)
        rows = []
        for e in self.experiments:
            row_art = self.artifact(f"row-history-{e}", "table", f"Training history: {e}",
                                    [f"experiments/{e}/history.csv"])
            _, hist = _read_csv(self.path(f"experiments/{e}/history.csv"))
            timing = self.results / f"experiments/{e}/timing.csv"  # seconds per epoch, apart from results
            if timing.is_file():
                seconds = {r.get("epoch"): r.get("seconds", "") for r in _read_csv(timing)[1]}
                hist = [{**r, "seconds": seconds.get(r.get("epoch"), "")} for r in hist]
            cells = [e, *training_summary(hist), Html(self.prov_link(row_art))]
            rows.append((row_art.id, cells))
        columns = ["experiment", "epochs", "final train loss", "final val loss", "best val Dice (mean)",
                   "at epoch", "time (s)", ""]
        numeric = {1, 2, 3, 4, 5, 6}
        head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(c)}</th>' for i, c in enumerate(columns))
        body = "".join(
            f'<tr id="{esc(rid)}">'
            + "".join(f'<td{" class=num" if i in numeric else ""}>{esc(c)}</td>' for i, c in enumerate(cells))
            + "</tr>" for rid, cells in rows)
        return (f'<h3>Training</h3><h4>{esc(art.title)}{self.prov_link(art)}</h4><p class="caption">From each '
                "experiment's history.csv: the last epoch's losses and the best mean validation Dice.</p>"
                f'<div class="table-wrap"><table id="{esc(art.id)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")

    # 6. provenance

    def provenance_section(self) -> str:
        by_record: dict[str, list[tuple[_Artifact, str]]] = {}
        derived = [a for a in self.artifacts if a.derived]
        for art in self.artifacts:
            if art.derived:
                continue
            rec = self.prov.producer(art.files[0])[0]
            by_record.setdefault(rec.id, []).append((art, art.files[0]))
        entries = [self._record_entry(rec, by_record.get(rec.id, [])) for rec in self.prov.records]
        return (
            '<section id="provenance"><h2>6. Provenance</h2>'
            "<p>What made each figure and table: the rule, the sha256 of its inputs (hover for the full "
            "hash), the configuration values it used, the code version and the library versions. Each "
            "figure's and table's <i>provenance</i> link leads to its row here; each input made by another "
            "rule links to that rule's record.</p>"
            + self._report_entry(derived) + "".join(entries) + "</section>"
        )

    def _hash(self, digest: str | None) -> str:
        if not digest:
            return '<span class="na">—</span>'
        return f'<span class="mono hash" title="{esc(digest)}">{esc(digest[:12])}</span>'

    def run_state(self) -> str:
        """One line: whether every output the provenance records list is still the file its rule wrote.

        A job that failed or was re-run after its record, or a file edited by
        hand, shows here rather than passing for a current result.
        """
        problems, checked = stale_outputs(self.prov, self.results), 0
        for rec in self.prov.records:
            checked += sum(len(paths or {}) for paths in (rec.data.get("outputs") or {}).values())
        if not problems:
            return (f'<p class="meta">Run state: <span class="ok">current</span>: all {checked} outputs of the '
                    f"{len(self.prov.records)} recorded jobs are the files their rules wrote (sha256 checked "
                    "when this page was made).</p>")
        items = "".join(f"<li><code>{esc(path)}</code>: {esc(why)}</li>" for path, why in problems)
        return (f'<p class="meta">Run state: <span class="bad">not current</span>: {len(problems)} of {checked} '
                "recorded outputs are missing or changed since their rule ran, so parts of this page may not "
                "match them. Run <code>snakemake report</code> again; it re-runs what is stale.</p>"
                f"<ul>{items}</ul>")

    def _written(self, rec: _Record) -> str:
        """When the record was written (its file time: records hold no clock time, to compare by hash)."""
        path = self.results / rec.file
        if not path.is_file():
            return "?"
        when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
        return when.isoformat(timespec="seconds")

    def _current_hash(self, rel: str) -> str | None:
        p = self.results / rel
        return sha256_file(p) if p.is_file() else None

    def _record_entry(self, rec: _Record, shown: list[tuple[_Artifact, str]]) -> str:
        data = rec.data
        anchors: dict[str, list[_Artifact]] = {}
        for art, rel in shown:
            anchors.setdefault(rel, []).append(art)
        out_rows = []
        for name, paths in (data.get("outputs") or {}).items():
            for p, desc in (paths or {}).items():
                key = self.prov.key(p)
                desc = desc or {}
                arts = anchors.pop(key, []) if key else []
                out_rows.append(self._output_row(name, p, desc, key, arts))
                if "files" in desc and key:  # files shown from inside a folder output
                    for rel in [r for r in list(anchors) if r.startswith(key.rstrip("/") + "/")]:
                        out_rows.append(self._output_row(f"{name} (in folder)", rel, {}, rel, anchors.pop(rel)))
        in_rows = []
        for name, paths in (data.get("inputs") or {}).items():
            for p, desc in (paths or {}).items():
                desc = desc or {}
                made = self.prov.made_by(p)
                by = (f'<a href="#{esc(made.id)}">{esc(made.label)}</a>' if made and made is not rec
                      else f'<span class="na">{"source code" if name == "code" else "not made by a rule"}</span>')
                size = (f'{desc["files"]} files' if "files" in desc else
                        (_size(desc["bytes"]) if "bytes" in desc else ("missing" if desc.get("missing") else "")))
                in_rows.append([name, Html(f"<code>{esc(p)}</code>"), Html(self._hash(desc.get("sha256"))), size,
                                Html(by)])
        wc = data.get("wildcards") or {}
        params = data.get("params") or {}
        return (
            f'<article class="prov" id="{esc(rec.id)}"><h3>rule <code>{esc(rec.rule)}</code>'
            f'{"".join(f" · {esc(k)}={esc(v)}" for k, v in wc.items())}</h3>'
            f'<p class="meta">record <code>{esc(rec.file)}</code> · written {esc(self._written(rec))}</p>'
            "<h4>Outputs</h4>"
            + _table(["output", "path", "sha256 (recorded)", "check", "shown as"], out_rows, tall=len(out_rows) > 14)
            + "<h4>Inputs</h4>"
            + (_table(["input", "path", "sha256", "size", "made by"], in_rows, tall=len(in_rows) > 14)
               if in_rows else '<p class="none">none</p>')
            + "<h4>Parameters</h4>"
            + (f'<pre class="params">{esc(_yaml(params))}</pre>' if params else '<p class="none">none</p>')
            + "<h4>Code and versions</h4>" + self._code_versions(data.get("code") or {}, data.get("versions") or {})
            + "</article>"
        )

    def _output_row(self, name: str, path: str, desc: dict, key: str | None, arts: list[_Artifact]) -> list:
        recorded = desc.get("sha256")
        if "files" in desc:
            check = Html(f'<span class="na">folder, {esc(desc["files"])} files</span>')
        else:
            current = self._current_hash(key) if key else None
            if recorded and current:
                check = Html('<span class="ok">✓ unchanged</span>' if current == recorded else
                             f'<span class="bad" title="now {esc(current)}">✗ changed since the rule ran</span>')
            elif current and not recorded:
                check = Html(f'<span class="na" title="now {esc(current)}">no recorded hash</span>')
            else:
                check = Html('<span class="na">not checked</span>')
        links = " ".join(f'<span id="{esc(a.anchor)}"><a href="#{esc(a.id)}">↑ {esc(a.id)}</a></span>'
                         for a in arts)
        return [name, Html(f"<code>{esc(path)}</code>"), Html(self._hash(recorded)), check, Html(links)]

    def _code_versions(self, code: dict, versions: dict) -> str:
        commit = code.get("git_commit")
        if commit:
            state = "uncommitted changes (dirty)" if code.get("dirty") else "clean"
            code_html = f"{self._hash(commit)} · {esc(state)}"
        else:
            code_html = esc(code.get("note", "unknown"))
        key = "".join(f'<span class="ver"><b>{esc(k)}</b> {esc(versions.get(k) or "not installed")}</span>'
                      for k in KEY_VERSIONS)
        rest = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in KEY_VERSIONS and v)
        also = f'<span class="ver meta">also {esc(rest)}</span>' if rest else ""
        return (f'<p class="versions"><span class="ver"><b>git commit</b> {code_html}</span>'
                f"{key}{also}</p>")

    def _report_entry(self, derived: list[_Artifact]) -> str:
        rows = []
        for art in derived:
            for i, rel in enumerate(art.files):
                made = self.prov.producer(rel)
                by = (f'<a href="#{esc(made[0].id)}">{esc(made[0].label)}</a>' if made
                      else '<span class="na">no record</span>')
                link = (Html(f'<span id="{esc(art.anchor)}"><a href="#{esc(art.id)}">↑ {esc(art.id)}</a></span>')
                        if i == 0 else "")
                rows.append([link, Html(f"<code>{esc(rel)}</code>"), Html(self._hash(self._current_hash(rel))),
                             Html(by)])
        repo = Path(__file__).resolve().parents[2]
        return (
            '<article class="prov" id="rec-report"><h3>rule <code>report</code> (this page)</h3>'
            "<p>Tables and sentences computed by <code>usseg.report</code> from these files:</p>"
            + _table(["shown as", "computed from", "sha256 (now)", "made by"], rows, tall=len(rows) > 14)
            + "<h4>Code and versions</h4>" + self._code_versions(code_version(repo), library_versions())
            + "</article>"
        )

    def config_section(self) -> str:
        return ('<section id="config"><h2>Run configuration</h2><p>The full configuration of this run, '
                "defaults filled in, as YAML.</p>"
                f'<pre id="config-yaml">{esc(_yaml(self.config))}</pre></section>')


def next_steps_from_markdown(text: str) -> list[str]:
    """The numbered items under the "What to try next" heading of checklist.md, as plain text."""
    steps, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            inside = "next" in line.lower()
            continue
        m = re.match(r"^\s*\d+[.)]\s+(.*)$", line)
        if inside and m:
            steps.append(re.sub(r"(\*\*|`)", "", m.group(1)).strip())
        elif inside and steps and line.strip() and not line.startswith((" ", "\t")):
            break
    return steps


def _size(n_bytes: Any) -> str:
    if not _is_number(n_bytes):
        return str(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return str(n_bytes)


def _find_key(obj: Any, keys: tuple[str, ...]) -> Any:
    """The first non-empty value stored under one of `keys`, searching nested objects."""
    if isinstance(obj, dict):
        for k in keys:
            if obj.get(k) not in (None, "", [], {}):
                return obj[k]
        for v in obj.values():
            found = _find_key(v, keys)
            if found is not None:
                return found
    return None


def _distances(data: Any) -> Any:
    """The distance measures of domain_shift.json: under a key naming them, else all but the AUC."""
    if isinstance(data, dict):
        for k, v in data.items():
            if "distance" in str(k).lower() and isinstance(v, (dict, list)) and v:
                return v
    return _strip_auc(data)


def _strip_auc(obj: Any) -> Any:
    """domain_shift.json without the classifier's AUC entries (shown on their own)."""
    if isinstance(obj, dict):
        return {k: _strip_auc(v) for k, v in obj.items()
                if "auc" not in str(k).lower() and str(k).lower() not in ("ci95", "ci", "interval")}
    return obj


def training_summary(history: list[dict]) -> list[Any]:
    """epochs, final train loss, final val loss, best val_dice_mean, its epoch, total seconds."""
    def num(row: dict, key: str) -> float | None:
        try:
            v = float(row.get(key, ""))
        except (TypeError, ValueError):
            return None
        return None if math.isnan(v) else v

    if not history:
        return ["0", "—", "—", "—", "—", "—"]
    last = history[-1]
    scored = [(num(r, "val_dice_mean"), r) for r in history if num(r, "val_dice_mean") is not None]
    best_v, best_row = max(scored, key=lambda x: x[0]) if scored else (None, None)
    secs = [num(r, "seconds") for r in history]
    total = sum(s for s in secs if s is not None) if any(s is not None for s in secs) else None
    def show(v: float | None) -> str:
        return "—" if v is None else fmt_number(v)

    epoch = best_row.get("epoch", "—") if best_row else "—"
    return [str(len(history)), show(num(last, "train_loss")), show(num(last, "val_loss")),
            "—" if best_v is None else f"{best_v:.2f}", epoch, "—" if total is None else f"{total:.1f}"]


def _scored(summary: dict, cls: str) -> float | None:
    v = (summary.get("dice") or {}).get(cls)
    return float(v) if _is_number(v) and not math.isnan(v) else None


MIN_DICE_FOR_RELATIVE_CHANGE = 0.1

DICE_CAPTION = ("Dice per class, subject first: each subject's mean over its images where the class is in the "
                "reference, then the mean over subjects, with the 95 % t interval on the subject means below it "
                "(no interval from fewer than 3 subjects or when every subject scores the same). Mean foreground: "
                "over the classes scored on every test set, named in each summary.")
OVERLAY_CAPTION = ("Best and worst image among those where an organ of the experiment is in the reference, ranked "
                   "by the mean Dice over those organs: the image, the reference outlines and the predicted "
                   "outlines, each in its class colour.")
CONFUSION_CAPTION = ("Pixels of each reference class (row) by predicted class (column), at the masks' original "
                     "resolution; the share of the row and the count.")


def _subject_values(summary: dict, classes: list[str]) -> list[float]:
    """Each subject's mean Dice over `classes` (those it has), from the summary's per_subject."""
    out = []
    for values in (summary.get("per_subject") or {}).values():
        vs = [float(values[c]) for c in classes if _is_number(values.get(c)) and not math.isnan(values[c])]
        if vs:
            out.append(sum(vs) / len(vs))
    return out


def drop_sentence(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict, classes: list[str]) -> str:
    """The simulator-to-real change of one experiment in words, from its two summaries."""
    head, detail = drop_sentence_parts(exp, syn_ts, real_ts, syn, real, classes)
    return f"{head} {detail}".strip()


def drop_sentence_parts(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict,
                        classes: list[str]) -> tuple[str, str]:
    """(headline, per-class detail) of drop_sentence; the detail is empty for one class."""
    shared = [c for c in classes if _scored(syn, c) is not None and _scored(real, c) is not None]
    n_real = real.get("n_subjects")
    stability = f"the real-image estimate rests on {fmt_value(n_real)} subjects"
    stability += " and is unstable" if real.get("unstable") else ""
    if syn.get("unstable"):
        stability += f"; the simulator estimate rests on {fmt_value(syn.get('n_subjects'))} subjects and is unstable"
    if not shared:
        return (f"{exp}: no class is scored on both {syn_ts} and {real_ts}, so no drop can be stated; "
                + f"{stability}.", "")
    if len(shared) == 1:
        c = shared[0]
        a, b = _scored(syn, c), _scored(real, c)
        what = f"{c} Dice"
    else:
        a = sum(_scored(syn, c) for c in shared) / len(shared)
        b = sum(_scored(real, c) for c in shared) / len(shared)
        what = f"mean Dice over the {len(shared)} classes scored on both ({', '.join(shared)})"
    change = a - b
    if round(abs(change), 2) == 0:
        how = "no change"
    else:
        # A relative change from a near-zero Dice (a model that found almost
        # nothing) is a huge, meaningless percentage: state the absolute one only.
        pct = f" ({abs(change) / a * 100:.0f} %)" if a >= MIN_DICE_FOR_RELATIVE_CHANGE else ""
        how = f"{'a drop' if change > 0 else 'a gain'} of {abs(change):.2f}{pct}"
    text = (f"{exp}: {what} {a:.2f} on {syn_ts}, {b:.2f} on {real_ts}: {how} "
            f"from simulator to real images; {stability}.")
    detail = ""
    if len(shared) > 1:
        per = ", ".join(f"{c} {_scored(syn, c):.2f} → {_scored(real, c):.2f}" for c in shared)
        detail = f"Per class: {per}."
    return text, detail
