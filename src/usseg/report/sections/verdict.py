"""1. Verdict: the diagnostics checklist's answer, its concerns, what the models say and what to try next.

"What to try next": when the gap study ran (gap_study.enabled), the remedies ranked by their
measured paired change in real-image Dice (results/gap/gap_closure.csv) with "when to stop"
(results/gap/when_to_stop.json), then the checklist's steps that no training measures; when it
did not, the checklist's steps, said to be unmeasured.
"""

from __future__ import annotations

from usseg import contracts, gap_report, rerun
from usseg.config import gap_baseline
from usseg.diagnostics.checklist import MODEL_SIDE
from usseg.errors import DataError
from usseg.report.drops import drop_sentences
from usseg.report.formatting import fmt_value, next_steps_from_markdown, slug
from usseg.report.inputs import ReportInputError

ID, TITLE, HEADING, TEMPLATE = "verdict", "Verdict", "Verdict: can this dataset support this task?", "verdict.html"

STATUSES = ("PASS", "WARN", "FAIL")

VERDICT_ANSWER = {
    "PASS": "Yes: the checks found nothing that stops this dataset from supporting the task.",
    "WARN": "Only with caveats: the dataset can support the task within the limits listed below.",
    "FAIL": "No: as it stands, this dataset cannot support the task; the failed checks say why.",
}


def build(ctx) -> dict:
    rel = ctx.inputs.diagnostics.checklist
    data = ctx.json(rel)
    if not isinstance(data, dict) or "overall" not in data or not isinstance(data.get("checks"), list):
        raise ReportInputError(f"{rel}: expected {{'overall', 'checks': [...]}}.")
    art = ctx.artifact("tab-checklist", "table", "Dataset-readiness checklist", [rel])
    overall = str(data["overall"])
    counts = {s: sum(1 for c in data["checks"] if c.get("status") == s) for s in STATUSES}
    # The box names each concern with its number against its threshold; the table below gives the reasons.
    concerns = [{"status": c["status"], "anchor": f"check-{slug(c.get('id', ''))}",
                 "title": c.get("title", c.get("id", "")), "value": fmt_value(c.get("value")),
                 "threshold": fmt_value(c.get("threshold"))}
                for s in ("FAIL", "WARN") for c in data["checks"] if c.get("status") == s]
    steps = checklist_steps(ctx, data)
    checks = []
    for c in data["checks"]:
        status = str(c.get("status", ""))
        checks.append({"title": c.get("title", ""), "id": c.get("id", ""), "status": status,
                       "status_class": status if status in STATUSES else "",
                       "anchor": f"check-{slug(c.get('id', ''))}", "value": fmt_value(c.get("value")),
                       "threshold": fmt_value(c.get("threshold")), "reason": c.get("reason", "")})
    return {
        "art": art, "overall": overall, "overall_class": overall if overall in STATUSES else "",
        "answer": VERDICT_ANSWER.get(overall, "Unknown verdict."),
        "count_text": ", ".join(f"{n} {s}" for s, n in counts.items() if n), "n_checks": len(data["checks"]),
        "demo": ctx.config.get("data_root") is None, "concerns": concerns,
        "drops": [head for head, _, _ in drop_sentences(ctx)], "checks": checks, **next_steps(ctx, steps),
    }


def checklist_steps(ctx, data: dict) -> list[dict]:
    """The diagnostics' "what to try next" as [{"text", "side"}]: from checklist.json's next_steps
    (with each step's side), else from checklist.md (side unknown: None)."""
    steps = data.get("next_steps")
    if not isinstance(steps, list):
        text = ctx.path(ctx.inputs.diagnostics.checklist_md).read_text(errors="replace")
        return [{"text": t, "side": None} for t in next_steps_from_markdown(text)]
    return [{"text": str(s.get("text", "")), "side": s.get("side")} if isinstance(s, dict)
            else {"text": str(s), "side": None} for s in steps]


def next_steps(ctx, steps: list[dict]) -> dict:
    """The verdict's "what to try next": measured and ranked when the gap study ran, else the checklist's."""
    study = ctx.config.get("gap_study") or {}
    if not ctx.gap_ran:
        return {"ranking": None, "steps": [s["text"] for s in steps], "model_steps": [], "sides_known": False,
                "change_to_detect": study.get("change_to_detect")}
    missing = [k for k in ("gap_closure", "when_to_stop") if k not in ctx.inputs.gap]
    if missing:
        raise ReportInputError(f"gap_study.enabled, but the report rule passes no gap_summary output(s) "
                               f"{', '.join(missing)} (rules/report.smk, gap_inputs()).")
    files = [ctx.inputs.gap["gap_closure"], ctx.inputs.gap["when_to_stop"]]
    closure_path = ctx.path(files[0])
    try:
        closure = contracts.read_gap_closure(closure_path)
    except DataError as err:
        raise ReportInputError(str(err)) from None
    stop = ctx.json(files[1])
    target = gap_report.target_test_set(ctx.config)
    domain = ctx.test_set_domain(target)[1]
    try:
        ranking = gap_report.verdict_ranking(closure, stop if isinstance(stop, dict) else {}, target,
                                             f"{target} ({domain})" if domain else target)
    except ValueError as err:
        raise ReportInputError(f"{ctx.results / 'gap'}: {err}; re-run `{rerun.command('gap_summary')}`.") from None
    ranking.update(baseline=gap_baseline(ctx.config), section_id=gap_report.SECTION_ID,
                   art=ctx.artifact("list-next-steps", "table", "What to try next, ranked by measured effect",
                                    files, derived=True))
    # Model-side steps are what remedy experiments measure; the data-side ones no training measures,
    # so they follow the ranking as they are. A checklist.md without sides keeps every step, unsorted.
    return {"ranking": ranking, "steps": [s["text"] for s in steps if s["side"] != MODEL_SIDE],
            "model_steps": [s["text"] for s in steps if s["side"] == MODEL_SIDE],
            "sides_known": all(s["side"] is not None for s in steps),
            "change_to_detect": study.get("change_to_detect")}
