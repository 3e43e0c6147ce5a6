"""What would help: the gap study's section (usseg.gap_report builds and renders it), when the study ran."""

from __future__ import annotations

from markupsafe import Markup

from usseg import gap_report

ID, TITLE, HEADING, TEMPLATE = gap_report.SECTION_ID, "What would help", "What would help", "embedded.html"


def enabled(ctx) -> bool:
    return ctx.gap_ran  # on, and able to run on this data (the page says why not otherwise)


def build(ctx) -> dict:
    return {"body": Markup(gap_report.render_gap_section(ctx.config, ctx.inputs.gap))}
