"""The page: the registered sections, rendered from their Jinja2 templates into one self-contained HTML file."""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from types import ModuleType

import jinja2
from markupsafe import Markup

from usseg.report.context import ReportContext
from usseg.report.sections import checks, experiments, gap, pipeline, provenance, verdict
from usseg.report.sections import config as config_section

# The page's sections, in page order; numbered ones are numbered in this order.
SECTIONS: tuple[ModuleType, ...] = (
    verdict,
    checks,
    pipeline,
    experiments,
    gap,
    provenance,
    config_section,
)

# The templates every page uses besides the sections' own (named here, so that
# usseg.code_deps counts them as code of this module).
PAGE_TEMPLATE, SHARED_TEMPLATES = "page.html", ("header.html", "macros.html")

# The reader's screen the page is made for, and how many of them it may take with every <details> closed:
# the whole argument (verdict, failing checks with their evidence, pipeline, Dice table, what would help)
# in at most 12 screens of a 1366 x 900 laptop window. The default run's page takes 10.6 (docs/report.md);
# tests/test_report_browser.py measures the tests' run in Chromium against it.
SCREEN = (1366, 900)
SCREEN_BUDGET = 12

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


@dataclass
class RenderedSection:
    id: str
    title: str  # in the table of contents
    heading: str
    number: int | None
    body: Markup


def environment() -> jinja2.Environment:
    """Templates from usseg/templates/report/, every value escaped unless a macro made it."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("usseg", "templates/report"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
        finalize=escape,
    )


def escape(value):
    """Text escaped the way the standard library does (&quot;, &#x27;), so the page reads the same
    whichever escaper a reader's tool expects; markup made by a macro passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


def numbers(sections=SECTIONS) -> dict[str, int]:
    """Section id to its number, counting the numbered sections in page order."""
    numbered = [s for s in sections if getattr(s, "NUMBERED", True)]
    return {s.ID: i for i, s in enumerate(numbered, 1)}


def render(ctx: ReportContext, sections=SECTIONS) -> str:
    env = environment()
    # A section with enabled(ctx) false (the gap study when it is off) is left out.
    sections = [s for s in sections if getattr(s, "enabled", lambda _ctx: True)(ctx)]
    nums = numbers(sections)
    # Sections that list what the others showed (provenance) are built after them.
    order = sorted(sections, key=lambda s: getattr(s, "NEEDS_ALL_ARTIFACTS", False))
    contexts = {s.ID: s.build(ctx) for s in order}
    rendered = [RenderedSection(s.ID, s.TITLE, s.HEADING, nums.get(s.ID), body(s, contexts[s.ID], nums, env))
                for s in sections]
    assets = resources.files("usseg").joinpath("templates")
    return env.get_template(PAGE_TEMPLATE).render(
        csp=Markup(CSP), css=Markup(assets.joinpath("report.css").read_text()),
        js=Markup(assets.joinpath("report.js").read_text()), sections=rendered, **header(ctx))


def body(section: ModuleType, values: dict, nums: dict[str, int] | None = None,
         env: jinja2.Environment | None = None) -> Markup:
    """One section's HTML: its template rendered with the values its build(ctx) returned."""
    env = env or environment()
    return Markup(env.get_template(section.TEMPLATE).render(numbers=nums or numbers(), **values))


def header(ctx: ReportContext) -> dict:
    from usseg.report.notices import training_notices
    from usseg.report.provenance_index import REPORT_RULES, rebuild_command, stale_records

    config = ctx.config
    dataset = ctx.dataset
    commits = {(r.data.get("code") or {}).get("git_commit") for r in ctx.prov.records}
    data_root = config.get("data_root")
    checked = sum(len(paths or {}) for rec in ctx.prov.records if rec.rule not in REPORT_RULES
                  for paths in (rec.data.get("outputs") or {}).values())
    problems = stale_records(ctx.prov, ctx.results)
    return {
        "title": config.get("report", {}).get("title", "usseg report"),
        "data_root": data_root if data_root is not None else "generated demo dataset",
        "domains": ", ".join(f"{m.name} ({m.domain})" for m in dataset.modalities.values()),
        "target": dataset.target_modality, "n_experiments": len(ctx.experiments),
        "test_sets": ", ".join(ctx.test_sets),
        "commit": next(iter(commits)) if len(commits) == 1 and None not in commits else None,
        # No record knows its commit: the workflow ran outside a git checkout (an unpacked archive).
        "no_git": commits <= {None},
        "dirty": any((r.data.get("code") or {}).get("dirty") for r in ctx.prov.records),
        # Whether every recorded output is still the file its rule wrote: a job that failed or was
        # re-run after its record, or a file edited by hand, shows here rather than passing for current.
        "problems": [(p, why) for p, why, _ in problems], "rebuild": rebuild_command(problems),
        "checked": checked, "n_records": len([r for r in ctx.prov.records if r.rule not in REPORT_RULES]),
        # What of the run this page could not show (nothing to train on, a first look): usseg.report.notices.
        "notices": training_notices(ctx),
    }
