"""3. Pipeline ruled out?: the sanity checks and usseg's models beside the nnU-Net reference.

usseg.checks.pipeline computes every status, difference and sentence from the
files; this section shows them (the verdict shows the answer).
"""

from __future__ import annotations

from usseg import rerun

ID, TITLE, HEADING, TEMPLATE = "pipeline-checks", "Pipeline ruled out?", "Pipeline ruled out?", "pipeline.html"


def build(ctx) -> dict:
    part = ctx.pipeline
    files = ctx.inputs.pipeline_files()
    # Files are shown relative to the results folder (ctx.rel); a provenance link maps that name back to its file.
    by_name = {ctx.rel(p): p for p in [*files.sanity.values(), files.round_trip, *files.nnunet.values()]}

    def art(base_id: str, title: str, shown: str):
        return ctx.artifact(base_id, "table", title, [by_name.get(shown, shown)])

    sanity = part["sanity"]
    rows = []
    for r in sanity["experiments"]:
        rows.append({**r, "name": ctx.names.experiment(r["experiment"]),
                     "art": art(f"sanity-{r['experiment']}", f"Sanity checks of {r['experiment']}", r["file"])
                     if r["status"] != "NOT RUN" else None})
    rt = sanity["round_trip"]
    round_trip = {**rt, "art": art("sanity-label-round-trip", "Label round trip", rt["file"])
                  if rt["status"] != "NOT RUN" else None}
    nnunet = part["nnunet"]
    nnunet_arts = [art(f"nnunet-{i}", f"nnU-Net evaluation {f}", f) for i, f in enumerate(nnunet["files"], 1)]
    comparison = [{**r, "name": ctx.names.experiment(r["experiment"]), "test_set_name": ctx.names.test_set(r["test_set"])}
                  for r in part["comparison"]]
    return {"answer": part["answer"], "answer_status": part["status"], "badge": part["badge"],
            "short_schedule": part["short_schedule"], "statements": part["statements"],
            "sanity_status": sanity["status"], "rows": rows, "round_trip": round_trip, "nnunet": nnunet,
            "nnunet_arts": nnunet_arts, "comparison": comparison, "within_dice": part["within_dice"],
            "min_subjects_for_interval": part["min_subjects_for_interval"],
            "sanity_command": rerun.command("sanity_checks")}
