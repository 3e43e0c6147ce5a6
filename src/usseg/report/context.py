"""The report's context: the run's config, its files, the provenance index and every artifact shown.

Sections ask the context for figures and tables; each one becomes an artifact
with a unique id and a link to the provenance record of the rule that made its
file (or, for values the report computes itself, the files it computed them from).
"""

from __future__ import annotations

import base64
import functools
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usseg import contracts, rerun
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.figure_text import png_min_font_px
from usseg.names import Names
from usseg.report.formatting import slug
from usseg.report.inputs import ReportInputError, ReportInputs, load_json, read_csv
from usseg.report.provenance_index import Artifact, ProvenanceIndex
from usseg.report.tables import Table, json_table, records_table

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
        ".webp": "image/webp"}


@dataclass
class Figure:
    art: Artifact
    mime: str
    data: str  # base64
    caption: str = ""
    width: int | None = None  # natural size in pixels: the page never shows a figure larger
    height: int | None = None
    min_font_px: float | None = None  # its smallest text, as usseg.figure_text recorded it (None: not recorded)
    kind: str = "figure"


def image_facts(data: bytes) -> tuple[int | None, int | None, float | None]:
    """(width, height, smallest text in pixels) of an image file's bytes (None where unknown)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Exception:  # an image Pillow cannot read is still embedded; the browser says whether it shows
        width = height = None
    return width, height, png_min_font_px(data)


@dataclass
class TableBlock:
    """A titled table with its provenance link; `table` is None when there are no rows (then `empty`)."""

    art: Artifact
    caption: str
    table: Table | None
    empty: str = "none"
    kind: str = "table"


class ReportContext:
    """The run's config, its files (`inputs`, named by the report rule) and every artifact shown.

    Sections pass the files of `inputs` to `figure`, `csv_table`, `json_table`,
    `json` and `csv`; artifacts record them relative to the results folder,
    where the provenance records find them.
    """

    def __init__(self, config: dict, inputs: ReportInputs):
        self.config = config
        self.inputs = inputs
        self.results = inputs.results
        self.prov = ProvenanceIndex(self.results, {"experiment": list(config["experiments"]),
                                                   "test_set": list(config["test_sets"])})
        self.artifacts: list[Artifact] = []
        self.ids: set[str] = set()
        self.dataset = DatasetSpec.from_config(config)
        self.classes = self.dataset.class_names
        self.modalities = self.dataset.modality_names
        # The experiments this page shows: those trained (ReportInputs.experiments), by default all.
        self.experiments = list(config["experiments"] if inputs.experiments is None else inputs.experiments)
        # Whether the gap study's results are on this page: on, and able to run on this data.
        self.gap_ran = (bool((config.get("gap_study") or {}).get("enabled", False)) and inputs.with_training
                        and inputs.plan.gap is None)
        self.test_sets = list(config["test_sets"])
        self.summaries = {(e, t): self._summary(e, t) for e in self.experiments for t in self.test_sets}
        self.names = Names(config)

    # -- inputs

    def path(self, path: str | os.PathLike) -> Path:
        """`path` (a file of `inputs`), checked to be there."""
        p = Path(path)
        if not p.is_file():
            raise ReportInputError(f"the report needs {p}, which is missing; run `{rerun.command('report')}`.")
        return p

    def json(self, path: str | os.PathLike) -> Any:
        return load_json(self.path(path))

    def csv(self, path: str | os.PathLike) -> tuple[list[str], list[dict]]:
        return read_csv(self.path(path))

    def rel(self, path: str | os.PathLike) -> str:
        """`path` relative to the results folder: how provenance records find it and the page shows it."""
        key = self.prov.key(str(path))
        return key if key is not None else str(path)

    def _summary(self, exp: str, ts: str) -> dict:
        path = self.path(self.inputs.summaries[(exp, ts)])
        try:
            return contracts.read_summary(path)
        except DataError as err:
            raise ReportInputError(str(err)) from None

    def eval_files(self) -> list[Path]:
        return [self.inputs.summaries[(e, t)] for e in self.experiments for t in self.test_sets]

    # -- artifacts and their provenance links

    def _new_id(self, base: str) -> str:
        ident, n = slug(base), 2
        while ident in self.ids:
            ident = f"{slug(base)}-{n}"
            n += 1
        self.ids.add(ident)
        return ident

    def artifact(self, base_id: str, kind: str, title: str, files: list, derived: bool = False) -> Artifact:
        """An artifact made from `files` (files of `inputs`), with a unique id."""
        art = Artifact(self._new_id(base_id), kind, title, [self.rel(f) for f in files], derived)
        if not derived:
            for path, rel in zip(files, art.files):
                if self.prov.producer(rel) is None:
                    raise ReportInputError(
                        f"no provenance record under {self.results / 'provenance'} lists {path} "
                        f"as an output, so the report cannot say what made it; re-run `{rerun.command('report')}`."
                    )
        self.artifacts.append(art)
        return art

    def figure(self, base_id: str, file: str | os.PathLike, title: str, caption: str = "") -> Figure:
        art = self.artifact(base_id, "figure", title, [file])
        path = self.path(file)
        raw = path.read_bytes()
        return Figure(art, MIME.get(path.suffix.lower(), "image/png"), base64.b64encode(raw).decode("ascii"),
                      caption, *image_facts(raw))

    def derived_figure(self, base_id: str, title: str, png: bytes, caption: str, files: list | None = None) -> Figure:
        """A figure drawn here from `files` (default: the evaluation summaries); its provenance lists them."""
        art = self.artifact(base_id, "figure", title, self.eval_files() if files is None else files, derived=True)
        return Figure(art, "image/png", base64.b64encode(png).decode("ascii"), caption, *image_facts(png))

    def csv_table(self, base_id: str, file: str | os.PathLike, title: str, caption: str = "", empty: str = "none",
                  rows_filter: Callable[[dict], bool] | None = None,
                  columns: list[str] | None = None) -> TableBlock:
        art = self.artifact(base_id, "table", title, [file])
        fields, rows = self.csv(file)
        if rows_filter:
            rows = [r for r in rows if rows_filter(r)]
        cols = [c for c in columns if c in fields] if columns else fields
        return TableBlock(art, caption, records_table(cols, rows, art.id) if rows else None, empty)

    def json_table(self, base_id: str, file: str | os.PathLike, title: str, caption: str = "",
                   obj: Any = None, empty: str = "none") -> TableBlock:
        """A table of the JSON `file`, or of `obj`, a value read from it (its provenance is the file's)."""
        art = self.artifact(base_id, "table", title, [file])
        data = self.json(file) if obj is None else obj
        return TableBlock(art, caption, json_table(data, art.id) if data not in ({}, []) else None, empty)

    # -- facts several sections use

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

    @functools.cached_property
    def pipeline(self) -> dict:
        """The "Pipeline ruled out?" part (usseg.checks.pipeline), read once for the verdict and its section."""
        from usseg.checks import pipeline as pipeline_report

        return pipeline_report.pipeline_context(self.config, self.inputs.pipeline_files(), self.rel,
                                                lambda e: self.names.experiment(e).text)

    def domain_pairs(self) -> list[tuple[str, str]]:
        """(synthetic test set, real test set) pairs, for the simulator-to-real drop."""
        syn = [t for t in self.test_sets if self.test_set_domain(t)[1] == "synthetic"]
        real = [t for t in self.test_sets if self.test_set_domain(t)[1] == "real"]
        return [(s, r) for s in syn for r in real]

    def baselines(self) -> list[dict]:
        _, rows = self.csv(self.inputs.diagnostics.baselines)
        out = []
        for r in rows:
            try:
                value = float(r.get("value", ""))
            except ValueError:
                continue
            out.append({**r, "value": value})
        return out
