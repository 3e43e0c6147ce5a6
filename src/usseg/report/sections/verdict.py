"""1. Verdict: the checklist's answer, its failing checks, the pipeline answer, what the models say, what to try next.

"What to try next": when the gap study ran (gap_study.enabled), the remedies ranked by their
measured paired change in real-image Dice (results/gap/gap_closure.csv) with "when to stop"
(results/gap/when_to_stop.json), then the checklist's steps that no training measures; when it
did not, the checklist's steps, said to be unmeasured.
"""

from __future__ import annotations

from usseg import contracts, rerun
from usseg.checks.pipeline import PIPELINE_CHECK_ID
from usseg.diagnostics.checklist import MODEL_SIDE
from usseg.errors import DataError
from usseg.remedies.spec import gap_baseline
from usseg.report import gap_study as gap_report
from usseg.report.drops import drops_summary
from usseg.report.formatting import fmt_value, next_steps_from_markdown, slug
from usseg.report.inputs import ReportInputError
from usseg.report.sections import checks

ID, TITLE, HEADING, TEMPLATE = "verdict", "Verdict", "Verdict: can this dataset support this task?", "verdict.html"

STATUSES = ("PASS", "WARN", "FAIL")

# How many concerns the verdict box lists before folding the rest (it must fit a 1366x900 first screen).
VERDICT_SHOWN_CONCERNS = 5

VERDICT_ANSWER = {
    "PASS": "Yes: the checks found nothing that stops this dataset from supporting the task.",
    "WARN": "Only with caveats: the dataset can support the task within the limits listed below.",
    "FAIL": "No: as it stands, this dataset cannot support the task; the failed checks say why.",
}


def build(ctx) -> dict:
    # The final checklist (results/verdict/checklist.json: the domain shift decided on measured harm, and
    # the pipeline check) when the report rule names it; the diagnostics' own otherwise.
    rel = ctx.inputs.verdict or ctx.inputs.diagnostics.checklist
    data = ctx.json(rel)
    if not isinstance(data, dict) or "overall" not in data or not isinstance(data.get("checks"), list):
        raise ReportInputError(f"{rel}: expected {{'overall', 'checks': [...]}}.")
    overall = str(data["overall"])
    counts = {s: sum(1 for c in data["checks"] if c.get("status") == s) for s in ("FAIL", "WARN", "PASS")}
    # The box names each concern with its value, in words and with its unit, against its threshold;
    # the checks section (its anchor) gives the evidence.
    # The pipeline check has its own line below the concerns (its answer, not its threshold).
    concerns = [{"status": c["status"], "anchor": f"check-{slug(c.get('id', ''))}",
                 "title": c.get("title", c.get("id", "")), "value": checks.value_words(ctx, c),
                 "threshold": fmt_value(c.get("threshold")), "threshold_short": short_threshold(c.get("threshold"))}
                for s in ("FAIL", "WARN") for c in data["checks"]
                if c.get("status") == s and c.get("id") != PIPELINE_CHECK_ID]
    # The box must fit the first screen whatever the data: the first concerns (failures first) are shown,
    # the rest folded under a count (all of them are in the checks section either way).
    shown, folded = concerns[:VERDICT_SHOWN_CONCERNS], concerns[VERDICT_SHOWN_CONCERNS:]
    steps = checklist_steps(ctx, data)
    pipeline = ctx.pipeline
    models = drops_summary(ctx)
    return {
        "overall": overall, "overall_class": overall if overall in STATUSES else "",
        "answer": VERDICT_ANSWER.get(overall, "Unknown verdict."),
        "count_text": ", ".join(f"{n} {s}" for s, n in counts.items() if n), "n_checks": len(data["checks"]),
        "demo": ctx.config.get("data_root") is None, "concerns": shown, "folded_concerns": folded,
        "pipeline": {"answer": pipeline["answer"], "status": pipeline["status"], "badge": pipeline["badge"]},
        "models": models,
        "models_art": ctx.artifact("text-drops", "table", "What the models say", ctx.eval_files(), derived=True)
        if models["lines"] else None,
        **next_steps(ctx, steps),
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
    try:
        ranking = gap_report.verdict_ranking(closure, stop if isinstance(stop, dict) else {}, target,
                                             ctx.names.test_set(target).text, ctx.names)
    except ValueError as err:
        raise ReportInputError(f"{ctx.results / 'gap'}: {err}; re-run `{rerun.command('gap_summary')}`.") from None
    ranking.update(baseline=ctx.names.experiment(gap_baseline(ctx.config)), section_id=gap_report.SECTION_ID,
                   art=ctx.artifact("list-next-steps", "table", "What to try next, ranked by measured effect",
                                    files, derived=True))
    # Model-side steps are what the study's remedies measure; the data-side ones no training measures,
    # so they follow the ranking as they are. A checklist.md without sides keeps every step, unsorted.
    return {"ranking": ranking, "steps": [s["text"] for s in steps if s["side"] != MODEL_SIDE],
            "model_steps": [s["text"] for s in steps if s["side"] == MODEL_SIDE],
            "sides_known": all(s["side"] is not None for s in steps),
            "change_to_detect": study.get("change_to_detect")}


def short_threshold(threshold) -> str:
    """A check's threshold as the first screen shows it: its first clause (the whole is the tooltip and is in
    the check's card), so a long rule does not push the verdict below the first screen."""
    text = fmt_value(threshold)
    head = text.split("; ")[0]
    return head if len(head) <= 90 else head[:87].rsplit(" ", 1)[0] + " …"
