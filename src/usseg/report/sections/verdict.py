"""1. Verdict: the diagnostics checklist's answer, its concerns, what the models say and what to try next."""

from __future__ import annotations

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
    steps = data.get("next_steps")
    if not isinstance(steps, list):
        steps = next_steps_from_markdown(ctx.path(ctx.inputs.diagnostics.checklist_md).read_text(errors="replace"))
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
        "drops": [head for head, _, _ in drop_sentences(ctx)], "steps": steps, "checks": checks,
    }
