"""The verdict's second part, "Pipeline ruled out?": usseg.pipeline_report builds and renders it."""

from __future__ import annotations

from markupsafe import Markup

from usseg import pipeline_report

ID, TITLE, HEADING, TEMPLATE = (
    "pipeline-checks", "Pipeline ruled out?", "Verdict, part 2: pipeline ruled out?", "embedded.html")
NUMBERED = False  # part of the verdict, not a section of its own


def build(ctx) -> dict:
    files = ctx.inputs.pipeline_files()
    # Files are shown relative to the results folder (ctx.rel); a link maps that name back to its file.
    by_name = {ctx.rel(p): p for p in [*files.sanity.values(), files.round_trip, *files.nnunet.values()]}

    def link(base_id: str, title: str, shown: str) -> Markup:
        art = ctx.artifact(base_id, "table", title, [by_name.get(shown, shown)])
        return Markup('<a class="prov-link" href="#{}">provenance</a>').format(art.anchor)

    return {"body": Markup(pipeline_report.render_html(ctx.config, files, link, ctx.rel))}
