"""The provenance index: every provenance record of the run, and which record made which file.

Each rule writes one JSON record per job under results/provenance/ (see
docs/contracts.md); the index reads them all once, orders them the way the data
flowed, and answers "which job wrote this file?" for every figure and table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from usseg.report.formatting import slug
from usseg.report.inputs import ReportInputError, load_json

# Pipeline order of the rules, for listing provenance records the way the data flowed.
RULE_ORDER = ("demo_data", "manifest", "decode_masks", "split", "prepare_arrays", "diagnostics", "train", "evaluate",
              "gap_loso_folds", "gap_curve_split", "gap_arm", "gap_loso_arm", "gap_domain", "gap_summary")


@dataclass
class Record:
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
class Artifact:
    id: str
    kind: str  # "figure" or "table"
    title: str
    files: list[str]  # relative to results/
    derived: bool = False  # computed by the report from `files`
    anchor: str = field(init=False)

    def __post_init__(self):
        self.anchor = f"prov-{self.id}"


class ProvenanceIndex:
    """All provenance records of the run, and which record made which file."""

    def __init__(self, results: Path, order: dict[str, list[str]] | None = None):
        self.results = results.resolve()
        self.order = order or {}
        self.records: list[Record] = []
        self.by_file: dict[str, tuple[Record, str, dict]] = {}
        self.by_dir: list[tuple[str, Record, str, dict]] = []
        self.elsewhere: dict[str, Record] = {}  # outputs outside results/ (the demo dataset), by absolute path
        prov_dir = results / "provenance"
        used: set[str] = set()
        for path in sorted(prov_dir.rglob("*.json")) if prov_dir.is_dir() else []:
            data = load_json(path)
            if not isinstance(data, dict) or "rule" not in data:
                raise ReportInputError(f"{path}: not a provenance record (no 'rule'); re-run the rule that wrote it.")
            rid = "rec-" + slug(path.relative_to(prov_dir).with_suffix("").as_posix())
            while rid in used:
                rid += "-"
            used.add(rid)
            rec = Record(rid, path.relative_to(results).as_posix(), data)
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

    def _order(self, rec: Record):
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

    def made_by(self, path: str) -> Record | None:
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

    def producer(self, rel: str) -> tuple[Record, str, dict, str | None] | None:
        """(record, output name, recorded description, folder key if inside a folder output)."""
        if rel in self.by_file:
            rec, name, desc = self.by_file[rel]
            return rec, name, desc, None
        for dir_key, rec, name, desc in self.by_dir:
            if rel.startswith(dir_key.rstrip("/") + "/"):
                return rec, name, desc, dir_key
        return None


# ----------------------------------------------------------------------------- the report


# Rules whose outputs are report pages: what another page records about them is not the run's state.
REPORT_RULES = ("report", "diagnostics_report")


def stale_records(prov: ProvenanceIndex, results: Path) -> list[tuple[str, str, str]]:
    """(path, why, rule) for every recorded output that is missing now or not the file its rule recorded."""
    from usseg.provenance import describe_path

    problems = []
    for rec in prov.records:
        if rec.rule in REPORT_RULES:
            continue
        for paths in (rec.data.get("outputs") or {}).values():
            for p, desc in (paths or {}).items():
                key = prov.key(p)
                where = results / key if key is not None else Path(prov.absolute(p))
                recorded = (desc or {}).get("sha256")
                if not where.exists():
                    problems.append((p, f"missing (recorded by rule {rec.rule})", rec.rule))
                elif recorded and describe_path(where).get("sha256") != recorded:
                    problems.append((p, f"changed since rule {rec.rule} recorded it", rec.rule))
    return problems


def stale_outputs(prov: ProvenanceIndex, results: Path) -> list[tuple[str, str]]:
    """(path, why) for every recorded output that is missing now or not the file its rule recorded."""
    return [(p, why) for p, why, _ in stale_records(prov, results)]


def rebuild_command(problems: list[tuple[str, str, str]]) -> str:
    """The command that makes the run current again: its rules forced to run (Snakemake would not
    re-run a job whose output is merely edited, or deleted while later files exist), with the run's
    own options (usseg.rerun)."""
    from usseg.rerun import command

    rules = sorted({rule for _, _, rule in problems})
    return command("report", "--forcerun", *rules) if rules else command("report")
