"""5. What would help: the gap study's remedies, leave-one-subject-out and the learning curve, when it ran.

usseg.report.gap_study reads results/gap/ and words every claim from its interval;
the verdict shows the remedies ranked, this section the evidence.
"""

from __future__ import annotations

from usseg.report import gap_study as gap_report
from usseg.report.context import TableBlock
from usseg.report.tables import Table

ID, TITLE, HEADING, TEMPLATE = gap_report.SECTION_ID, "What would help", "What would help", "gap.html"


def enabled(ctx) -> bool:
    return ctx.gap_ran  # on, and able to run on this data (the page says why not otherwise)


def build(ctx) -> dict:
    files = ctx.inputs.gap
    data = gap_report.gap_context(ctx.config, files, ctx.names)
    closure = [files["gap_closure"]]
    figures = {}
    if data["forest_png"]:
        figures["forest"] = ctx.derived_figure(
            "fig-gap-forest", "Remedies against the baseline", data["forest_png"],
            "Change in subject-level Dice and surface Dice on each test set, remedy minus baseline on the same "
            "subjects: the mean over seeds (dot), each seed's change (grey marks) and the 95 % interval over "
            "subjects and seeds (hollow dot: none, fewer than 3 subjects or 2 seeds); red line: no change.",
            closure + ([files["seed_effects"]] if "seed_effects" in files else []))
    if data["loso_png"]:
        spread = data["loso_spread"]
        caption = ("The baseline trained on the simulator and all but one labeled real subject, scored on the "
                   "held-out one: the mean over seeds, with the SD between seeds.")
        if spread:
            caption += (f" Dice mean {spread['mean']} (95 % interval {spread['ci_lo']} to {spread['ci_hi']}), SD "
                        f"{spread['sd']}, range {spread['min']} to {spread['max']}, {spread['n_subjects']} subjects.")
        figures["loso"] = ctx.derived_figure("fig-gap-loso", "Adding real labels, one held-out subject at a time",
                                             data["loso_png"], caption, [files["loso"]])
    if data["curve_png"]:
        figures["curve"] = ctx.derived_figure(
            "fig-gap-curve", "More simulator data?", data["curve_png"],
            "The baseline trained on nested shares of the simulator's training subjects, each share with every "
            "seed; 95 % intervals over test subjects and seeds.",
            [files["learning_curve"]])
    # The gap rules write no provenance record: the matrix is listed under this page's own row.
    art = ctx.artifact("tab-gap-closure", "table", "The gap study's matrix", closure, derived=True)
    columns = [gap_report.CLOSURE_HEADERS[c] for c in data["columns"]]
    matrix = TableBlock(art, "Each row: the remedy's value against the baseline's on the same test subjects (each "
                             "the mean over seeds of the subject-level scores), the change and its 95 % interval "
                             "over subjects and seeds (none below 3 subjects or 2 seeds), the number of seeds and "
                             "the SD of the change between seeds. The training time (train_seconds) is the mean "
                             "over seeds of each training's time, taken while other jobs shared the machine: a "
                             "cost indication, not a measured difference. The domain classifier's AUC "
                             "(domain_auc), where present: before (baseline) and after (value) the remedy's "
                             "harmonisation.",
                        Table(columns, data["rows"], art.id, set(range(3, len(columns))), keys=data["columns"]))
    return {"baseline": data["baseline"], "seeds": data["seeds"], "arm_settings": data["arm_settings"],
            "demo": data["demo"],
            "demo_note": data["demo_note"], "curve_sentences": data["curve_sentences"], "figures": figures,
            "matrix": matrix, "target": data["target"]}
