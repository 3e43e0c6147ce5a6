"""5. Experiments: the Dice table with intervals and published baselines, errors, drops, training, figures."""

from __future__ import annotations

import math
from typing import Any

from usseg.errors import UssegError
from usseg.report.context import TableBlock
from usseg.report.drops import drop_intervals, drop_sentences
from usseg.report.formatting import dice_text, fmt_number, fmt_value, interval, is_number, slug
from usseg.report.tables import Table, records_table

ID, TITLE, HEADING, TEMPLATE = "experiments", "Experiments", "Experiments", "experiments.html"

DICE_CAPTION = ("Dice per class, subject first: each subject's mean over its images where the class is in the "
                "reference, then the mean over subjects, with the 95 % t interval on the subject means below it "
                "(no interval from fewer than 3 subjects or when every subject scores the same). Mean foreground: "
                "over the classes scored on every test set, named in each summary.")
OVERLAY_CAPTION = ("Best and worst image among those where an organ of the experiment is in the reference, ranked "
                   "by the mean Dice over those organs: the image, the reference outlines and the predicted "
                   "outlines, each in its class colour.")
CONFUSION_CAPTION = ("Pixels of each reference class (row) by predicted class (column), at the masks' original "
                     "resolution; the share of the row and the count.")
ERRORS_CAPTION = (
    "Subject-level normalised surface Dice (NSD, tolerance {tolerance} px) and HD95 (pixels, over images where the "
    "organ is both in the reference and predicted), at the reference masks' original resolution; false positives: "
    "images without the organ in the reference where it is predicted; missed: images with the organ where nothing "
    "is predicted; too small: reference regions below evaluation.min_reference_area_px, counted and never "
    "averaged. The pooled-image Dice is secondary: it weighs each frame, not each subject.")


def build(ctx) -> dict:
    # Artifacts are made in the order the provenance section lists them.
    out: dict[str, Any] = {"dice": dice_table(ctx), "drops_art": None, "drop_intervals_art": None}
    out["other_baselines"] = other_baselines(ctx)
    drops = drop_sentences(ctx)
    out["drops"] = [(head, detail) for head, detail, _ in drops]
    if drops:
        out["drops_art"] = ctx.artifact("text-drops", "table", "Simulator-to-real drop", ctx.eval_files(),
                                        derived=True)
    out["training"] = training_table(ctx)
    out["per_experiment"] = [experiment_figures(ctx, e) for e in ctx.experiments]
    out["drop_intervals"] = drop_intervals(ctx)
    if out["drop_intervals"]:
        out["drop_intervals_art"] = ctx.artifact("text-drop-intervals", "table",
                                                 "Simulator-to-real drop with its interval", ctx.eval_files(),
                                                 derived=True)
    out["excluded"] = excluded_table(ctx)
    out.update(evaluation_figures(ctx))
    out["errors"] = errors_table(ctx)
    return out


def dice_table(ctx) -> dict:
    classes = ctx.fg_classes()
    baselines = ctx.baselines()
    art = ctx.artifact("tab-dice", "table", "Dice per class and test set",
                       ctx.eval_files() + [ctx.inputs.diagnostics.baselines], derived=True)
    groups = []
    for ts in ctx.test_sets:
        mod, domain = ctx.test_set_domain(ts)
        values = {e: row_values(ctx.summaries[(e, ts)], classes) for e in ctx.experiments}
        best = {}
        for j in range(len(classes) + 1):
            vals = [round(v[j][0], 2) for v in values.values() if v[j] and v[j][0] is not None]
            best[j] = max(vals) if len(vals) > 1 else None
        rows = []
        for e in ctx.experiments:
            s = ctx.summaries[(e, ts)]
            row_art = ctx.artifact(f"row-dice-{e}-{ts}", "table", f"Dice of {e} on {ts}",
                                   [ctx.inputs.summaries[(e, ts)]])
            cells = []
            for j, v in enumerate(values[e]):
                if v is None:
                    cells.append({"kind": "not_scored"})
                elif v[0] is None:
                    cells.append({"kind": "absent"})
                else:
                    cls = classes[j] if j < len(classes) else None
                    names = (s.get("mean_foreground") or {}).get("classes") if j == len(classes) else None
                    cells.append({"kind": "value", "value": dice_text(v[0]),
                                  "best": best[j] is not None and round(v[0], 2) == best[j],
                                  "ci": f"{v[1][0]:.2f}, {v[1][1]:.2f}" if v[1] else "",
                                  "note": no_interval_note(s, cls), "over": ", ".join(names) if names else ""})
            rows.append({"art": row_art, "experiment": e, "n_images": fmt_value(s.get("n_images")),
                         "n_subjects": fmt_value(s.get("n_subjects")), "unstable": bool(s.get("unstable")),
                         "cells": cells})
        rows_b = []
        for b in baselines:
            if (b.get("test_set") != ts or str(b.get("metric", "dice")).lower() != "dice"
                    or b.get("class") not in classes):
                continue
            label = f'published: {b.get("source", "")}'
            if str(b.get("comparable", "")).strip().lower() == "false":
                label += f' (not comparable: measured on {b.get("measured_on", "other data")})'
            rows_b.append({"label": label,
                           "cells": [dice_text(b["value"]) if c == b["class"] else None for c in classes]})
        groups.append({"label": f"{ts}" + (f": {mod} ({domain})" if mod else ""), "rows": rows,
                       "baselines": rows_b})
    return {"art": art, "caption": DICE_CAPTION, "columns": ["experiment", "images", "subjects", *classes,
                                                              "mean foreground"], "groups": groups}


def row_values(s: dict, classes: list[str]) -> list:
    """Per column (classes + mean foreground): None (not scored), (None, None) absent, (value, ci)."""
    dice, ci95 = s.get("dice") or {}, s.get("ci95") or {}
    out = []
    for c in classes:
        if c not in dice:
            out.append(None)
        else:
            v = dice[c]
            out.append((float(v), interval(ci95.get(c))) if is_number(v) and not math.isnan(v) else (None, None))
    m = s.get("dice_mean_foreground")
    mci = interval((s.get("mean_foreground") or {}).get("ci95")) or next(
        (interval(ci95.get(k)) for k in ("mean_foreground", "dice_mean_foreground", "mean")
         if interval(ci95.get(k))), None)
    out.append((float(m), mci) if is_number(m) and not math.isnan(m) else (None, None))
    return out


def no_interval_note(summary: dict, cls: str | None) -> str:
    """The words in place of an interval that is not shown (too few subjects, or no spread)."""
    entry = summary.get("mean_foreground") if cls is None else (summary.get("per_class") or {}).get(cls)
    return (entry or {}).get("interval_note") or ""


def other_baselines(ctx) -> TableBlock | None:
    """Published results that match no row of the Dice table, in a table of their own."""
    classes = ctx.fg_classes()
    rows = [b for b in ctx.baselines() if str(b.get("metric", "")).lower() != "dice"
            or b.get("class") not in classes or b.get("test_set") not in ctx.test_sets]
    if not rows:
        return None
    columns = ["source", "test_set", "class", "metric", "value"]
    columns += [c for c in ("measured_on", "comparable", "note") if any(c in b for b in rows)]
    art = ctx.artifact("tab-other-baselines", "table", "Published results without a matching row above",
                       [ctx.inputs.diagnostics.baselines])
    return TableBlock(art, "comparable = shown to be measured on this data (its fingerprint, or the facts of a "
                           "reference dataset usseg records, checked against the manifest).",
                      records_table(columns, rows, art.id))


def excluded_table(ctx) -> TableBlock:
    """Images left out of each test set (splits.csv excluded_from), counted with their reasons."""
    art = ctx.artifact("tab-excluded", "table", "Images left out of the test sets", ctx.eval_files(), derived=True)
    rows = []
    for ts in ctx.test_sets:
        summary = ctx.summaries[(ctx.experiments[0], ts)]
        excluded = summary.get("excluded") or []
        reasons: dict[str, int] = {}
        for item in excluded:
            reason = str(item.get("reason", "")) if isinstance(item, dict) else str(item)
            reasons[reason] = reasons.get(reason, 0) + 1
        lost = ", ".join(summary.get("excluded_subjects") or []) or "none"
        rows.append([ts, len(excluded), lost, "; ".join(f"{r} ({n})" for r, n in reasons.items()) or "none"])
    return TableBlock(art, "Counted beside the Dice table: images of a test set that the split left out (the "
                           "excluded_from column of splits.csv: unusable or flagged masks, and image files the "
                           "manifest set aside), with the reason; subjects lost = subjects left with no image "
                           "in the test set.",
                      Table(["test set", "images left out", "subjects lost", "reasons (images)"], rows, art.id,
                            {1}))


def errors_table(ctx) -> TableBlock:
    """Per experiment, test set and class: boundary metrics and the errors a Dice mean hides."""
    art = ctx.artifact("tab-errors", "table", "Boundaries and errors per class", ctx.eval_files(), derived=True)
    rows = []
    tolerance = None
    for e in ctx.experiments:
        for ts in ctx.test_sets:
            s = ctx.summaries[(e, ts)]
            tolerance = s.get("nsd_tolerance_px", tolerance)
            for cls, c in (s.get("per_class") or {}).items():
                scored = c.get("n_images") or 0
                note = ""
                if not scored and c.get("predicted_images"):
                    note = (f"predicted in {c['predicted_images']} images but never annotated (or only too "
                            "small) here: cannot be scored")
                rows.append([e, ts, cls, f"{scored} ({c.get('n_subjects', 0)})",
                             fmt_value(c.get("nsd")), fmt_value(c.get("hd95")),
                             f"{c.get('false_positive_images', 0)} / {c.get('absent_images', 0)}",
                             f"{c.get('missed_images', 0)} / {scored}", c.get("too_small_images", 0),
                             fmt_value(c.get("pooled_image_dice")), note])
    columns = ["experiment", "test set", "class", "scored images (subjects)", "NSD", "HD95 (px)",
               "false positives / images without it", "missed / scored images", "too small",
               "pooled-image Dice (secondary)", "note"]
    return TableBlock(art, ERRORS_CAPTION.format(tolerance=fmt_value(tolerance)),
                      Table(columns, rows, art.id, {4, 5, 8, 9}, tall=len(rows) > 14))


def evaluation_figures(ctx) -> dict:
    from usseg import evaluation_figures as figs  # matplotlib only when the report is drawn

    classes = ctx.fg_classes()
    return {
        "forest": ctx.derived_figure(
            "fig-forest", "Every experiment with its interval",
            figs.forest_png(ctx.summaries, ctx.experiments, ctx.test_sets, classes),
            "Subject-level Dice per experiment, test set and class, and the foreground mean over the classes "
            "scored on both test sets (named), with the 95 % t interval; a hollow point has no interval (fewer "
            "than 3 subjects, or every subject equal)."),
        "per_subject": ctx.derived_figure(
            "fig-per-subject", "Dice of each subject",
            figs.per_subject_png(ctx.summaries, ctx.experiments, ctx.test_sets, classes),
            "Each point is one subject's mean Dice over its images where the class is scored; the bar is the "
            "mean over subjects, the value in the Dice table."),
    }


def experiment_figures(ctx, e: str) -> dict:
    figures = []
    curves = ctx.figure(f"fig-curves-{e}", ctx.inputs.curves[e], f"Training curves: {e}",
                        "Loss and validation Dice per epoch.")
    for ts in ctx.test_sets:
        figures.append(ctx.figure(f"fig-overlays-{e}-{ts}", ctx.inputs.overlays[(e, ts)],
                                  f"Predictions: {e} on {ts}", OVERLAY_CAPTION))
        figures.append(ctx.figure(f"fig-confusion-{e}-{ts}", ctx.inputs.confusion[(e, ts)],
                                  f"Pixel confusion: {e} on {ts}", CONFUSION_CAPTION, narrow=True))
    return {"name": e, "slug": slug(e), "description": experiment_description(ctx.config, e), "curves": curves,
            "figures": figures}


def experiment_description(config: dict, name: str) -> str:
    from usseg.experiment import Experiment

    try:
        exp = Experiment.from_config(config, name)
    except (UssegError, KeyError):
        return ""
    classes = "all classes" if exp.classes == "all" else ", ".join(exp.classes)
    text = f"{exp.model.name} · classes: {classes} · trained on {', '.join(exp.train_modalities)}"
    if exp.is_forest:
        forest = exp.forest
        return (text + f" · n estimators {forest.n_estimators} · max depth {forest.max_depth}"
                f" · pixels per image {forest.pixels_per_image}")
    return text + f" · loss {exp.loss.name} (class weights {exp.loss.class_weights}) · {exp.epochs} epochs"


def training_table(ctx) -> dict:
    art = ctx.artifact("tab-training", "table", "Training runs",
                       [ctx.inputs.history[e] for e in ctx.experiments], derived=True)
    rows = []
    for e in ctx.experiments:
        row_art = ctx.artifact(f"row-history-{e}", "table", f"Training history: {e}",
                               [ctx.inputs.history[e]])
        _, hist = ctx.csv(ctx.inputs.history[e])
        timing = ctx.inputs.timing.get(e)  # seconds per epoch, apart from results
        if timing is not None and timing.is_file():
            seconds = {r.get("epoch"): r.get("seconds", "") for r in ctx.csv(timing)[1]}
            hist = [{**r, "seconds": seconds.get(r.get("epoch"), "")} for r in hist]
        rows.append({"art": row_art, "cells": [e, *training_summary(hist)]})
    columns = ["experiment", "epochs", "final train loss", "final val loss", "best val Dice (mean)",
               "at epoch", "time (s)", ""]
    return {"art": art, "columns": columns, "rows": rows}


def training_summary(history: list[dict]) -> list[Any]:
    """epochs, final train loss, final val loss, best val_dice_mean, its epoch, total seconds."""
    def num(row: dict, key: str) -> float | None:
        try:
            v = float(row.get(key, ""))
        except (TypeError, ValueError):
            return None
        return None if math.isnan(v) else v

    def show(v: float | None) -> str:
        return "—" if v is None else fmt_number(v)

    if not history:
        return ["0", "—", "—", "—", "—", "—"]
    last = history[-1]
    scored = [(num(r, "val_dice_mean"), r) for r in history if num(r, "val_dice_mean") is not None]
    best_v, best_row = max(scored, key=lambda x: x[0]) if scored else (None, None)
    secs = [num(r, "seconds") for r in history]
    total = sum(s for s in secs if s is not None) if any(s is not None for s in secs) else None
    epoch = best_row.get("epoch", "—") if best_row else "—"
    return [str(len(history)), show(num(last, "train_loss")), show(num(last, "val_loss")),
            "—" if best_v is None else f"{best_v:.2f}", epoch, "—" if total is None else f"{total:.1f}"]
