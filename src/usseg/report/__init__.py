"""The report: one self-contained HTML page that answers "can this dataset support the task?".

It puts the verdict first (the diagnostics checklist, with every failing
check and its unit, the demo caveat and the pipeline answer on the first
screen), then the checks, failures first, each with its evidence; the
pipeline checks; the experiments; what would help; and provenance. Detail
sits behind <details> that open on a link, so that with everything closed the
argument fits `page.SCREEN_BUDGET` screens. Every figure and table has an id
and a link to the row of the job that made its file in one provenance table:
that job's inputs with their sha256, its parameters, the code version and the
library versions, with what most jobs share shown once. Values shown in words
(the simulator-to-real drop, the dominant confusion error) are computed here
from the evaluation files, never typed in; every experiment, remedy and class
has one name (usseg.names).

The page embeds its images as data URIs and its CSS and script inline, and
a Content-Security-Policy forbids any network load, so it opens the same way
offline, from an e-mail attachment or an archive.

How it is built:

- `inputs.ReportInputs` holds the files the report reads, one field per
  named input of the `report` rule (`ReportInputs.from_rule`); no section
  builds a file name.
- `context.ReportContext` holds the config, those inputs, the names
  (`ctx.names`, usseg.names) and the `provenance_index.ProvenanceIndex`;
  sections ask it for figures (`ctx.figure(id, ctx.inputs.<field>, ...)`,
  `ctx.derived_figure` for one drawn here) and tables (`ctx.csv_table`,
  `ctx.json_table`), each an artifact with a unique id and a provenance link.
- `sections/` holds one module per section. A section module defines
  `ID` (the HTML id), `TITLE` (its entry in the contents), `HEADING`,
  `TEMPLATE` (a file in `usseg/templates/report/`) and `build(ctx) -> dict`,
  the values its template renders. Optional: `NUMBERED = False` for an
  unnumbered section, `NEEDS_ALL_ARTIFACTS = True` for one built after
  the others (provenance).
- `page.SECTIONS` lists the section modules in page order; numbers and the
  table of contents follow from it. To add a section, write its module and
  template and add the module to that list (before `provenance`, so that its
  figures and tables get provenance entries).
- Every section, including those whose numbers come from
  usseg.checks.pipeline and usseg.report.gap_study (which return data, never HTML),
  renders through the one Jinja2 environment of `page.environment`, autoescape
  on; `macros.html` renders figures, names, statuses, evidence, tables
  (`tables.Table`), titled table blocks and hashes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from usseg import rerun
from usseg.report.context import ReportContext
from usseg.report.drops import drop_sentence, drop_sentence_parts
from usseg.report.formatting import fmt_number, fmt_value, next_steps_from_markdown
from usseg.report.inputs import ReportInputError, ReportInputs, write_atomically
from usseg.report.page import render
from usseg.report.provenance_index import stale_outputs
from usseg.report.sections.experiments import training_summary

__all__ = [
    "ReportInputError", "ReportInputs", "build_report", "drop_sentence", "drop_sentence_parts", "fmt_number",
    "fmt_value", "next_steps_from_markdown", "stale_outputs", "training_summary",
]

log = logging.getLogger(__name__)


def build_report(config: dict, inputs: ReportInputs, out_html: str | os.PathLike) -> None:
    """Write the report of the run whose files are `inputs` (named by the report rule) to `out_html`.

    `config` is the run's full, validated config (defaults filled in). Raises
    ReportInputError naming every missing input, before writing anything.
    """
    missing = inputs.missing()
    if missing:
        raise ReportInputError(
            "the report cannot be built; these inputs are missing:\n  " + "\n  ".join(missing)
            + f"\nRun `{rerun.command('report')}` so that the rules named above make them."
        )
    page = render(ReportContext(config, inputs))
    write_atomically(Path(out_html), page)
    log.info("report written to %s (%.1f MB)", out_html, len(page.encode()) / 1e6)
