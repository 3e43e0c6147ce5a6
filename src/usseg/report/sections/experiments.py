"""4. Experiments: the Dice table with intervals and published baselines, the dominant errors, training, figures."""

from __future__ import annotations

import math
from typing import Any

from usseg.errors import UssegError
from usseg.report.context import TableBlock
from usseg.report.formatting import dice_text, fmt_number, fmt_value, interval, is_number, slug
from usseg.report.tables import Table

ID, TITLE, HEADING, TEMPLATE = "experiments", "Experiments", "Experiments", "experiments.html"

DICE_CAPTION = ("Dice per class on every frame, subject first: each subject's mean over its images where the class "
                "is in the reference or predicted (a false positive on an image without the organ scores 0; small "
                "regions are scored), then the mean over subjects, with the 95 % t interval on the subject means "
                "(no interval from fewer than 3 subjects or when every subject scores the same); from fewer than "
                "10 subjects also the lowest and highest subject, and any subject far from the others by name. "
                "Below it, the secondary view that scores only reference regions of at least "
                "evaluation.min_reference_area_px pixels (\"too small (k images)\" when none is that large). "
                "Class-macro mean: the mean over the classes in the reference of at least 3 subjects of every "
                "test set (named), with its interval.")
OVERLAY_CAPTION = ("Best and worst image among those where an organ of the experiment is in the reference, ranked "
                   "by the mean Dice over those organs: the image, the reference outlines and the predicted "
                   "outlines, each in its class colour.")
CONFUSION_CAPTION = ("Pixels of each reference class (row) by predicted class (column), at the masks' original "
                     "resolution; the share of the row and the count.")
ERRORS_CAPTION = (
    "Subject-level normalised surface Dice (NSD, tolerance {tolerance} px, with its 95 % t interval over subjects) "
    "and HD95 (pixels, over images where the "
    "organ is both in the reference and predicted) with, beside it, HD95 with misses at the worst value (over images "
    "where the organ is in the reference or predicted, an image where only one side has it counting as the image "
    "diagonal: predicting nothing is not rewarded), at the reference masks' original resolution; false positives: "
    "images without the organ in the reference where it is predicted; missed: images with the organ where nothing "
    "is predicted; too small: reference regions below evaluation.min_reference_area_px (scored in the headline, "
    "left out of the secondary view). The pooled-image Dice, a secondary number that weighs each frame rather than "
    "each subject, is in each evaluation's summary.json.")


def enabled(ctx) -> bool:
    """Left out when no experiment was trained (the page's header says why: usseg.report.notices)."""
    return bool(ctx.experiments)


def build(ctx) -> dict:
    # Artifacts are made in the order the provenance section lists them.
    out: dict[str, Any] = {"dice": dice_table(ctx)}
    out["confusion_summary"] = confusion_summary(ctx)
    out["excluded"] = excluded_table(ctx)
    out.update(evaluation_figures(ctx))
    out["errors"] = errors_table(ctx)
    out["training"] = training_table(ctx)
    out["per_experiment"] = [experiment_figures(ctx, e) for e in ctx.experiments]
    out["drop_note"] = bool(ctx.domain_pairs())
    return out


def dice_table(ctx) -> dict:
    scored = ctx.fg_classes()
    # A class in no test set's reference masks has no value anywhere: named under the table, not a column.
    classes = [c for c in scored if any(is_number((ctx.summaries[k].get("dice") or {}).get(c))
                                        for k in ctx.summaries)]
    never = [c for c in scored if c not in classes]
    baselines = ctx.baselines()
    notes: list[str] = []
    art = ctx.artifact("tab-dice", "table", "Dice per class and test set",
                       ctx.eval_files() + [ctx.inputs.diagnostics.baselines], derived=True)
    groups = []
    for ts in ctx.test_sets:
        values = {e: row_values(ctx.summaries[(e, ts)], classes) for e in ctx.experiments}
        best = {}
        for j in range(len(classes) + 1):
            vals = [round(v[j][0], 2) for v in values.values() if v[j] and v[j][0] is not None]
            # Bold marks a winner: none when fewer than two compete, when all tie, or when the best is 0.
            best[j] = max(vals) if len(vals) > 1 and max(vals) > 0 and len(set(vals)) > 1 else None
        sizes = {(ctx.summaries[(e, ts)].get("n_images"), ctx.summaries[(e, ts)].get("n_subjects"),
                  bool(ctx.summaries[(e, ts)].get("unstable"))) for e in ctx.experiments}
        rows = []
        for e in ctx.experiments:
            s = ctx.summaries[(e, ts)]
            row_art = ctx.artifact(f"row-dice-{e}-{ts}", "table", f"Dice of {e} on {ts}",
                                   [ctx.inputs.summaries[(e, ts)]])
            cells = []
            for j, v in enumerate(values[e]):
                cls = classes[j] if j < len(classes) else None
                if v is None:
                    cells.append({"kind": "not_scored"})
                elif v[0] is None:
                    cells.append({"kind": "absent"})
                else:
                    names = (s.get("mean_foreground") or {}).get("classes") if j == len(classes) else None
                    note = no_interval_note(s, cls)
                    cells.append({"kind": "value", "value": dice_text(v[0]),
                                  "best": best[j] is not None and round(v[0], 2) == best[j],
                                  "ci": f"{v[1][0]:.2f}, {v[1][1]:.2f}" if v[1] else "",
                                  "note": note, "short_note": short_note(note),
                                  "over": ", ".join(names) if names else "",
                                  "over_short": (names[0] if len(names) == 1 else f"{len(names)} classes")
                                  if names else "",
                                  "spread": spread_text(s, cls), "spread_short": spread_short(s, cls),
                                  "secondary": area_rule_text(s, cls)})
            rows.append({"art": row_art, "experiment": e, "name": ctx.names.experiment(e),
                         "n_images": fmt_value(s.get("n_images")), "n_subjects": fmt_value(s.get("n_subjects")),
                         "unstable": bool(s.get("unstable")), "cells": cells})
        rows_b = []
        for b in baselines:
            if (b.get("test_set") != ts or str(b.get("metric", "dice")).lower() != "dice"
                    or b.get("class") not in classes):
                continue
            # The source in a numbered note under the table: a long label would widen the first column.
            note = str(b.get("source", ""))
            comparable = str(b.get("comparable", "")).strip().lower() != "false"
            if not comparable:
                note += f', measured on {b.get("measured_on", "other data")}: not comparable with this run'
            if note not in notes:
                notes.append(note)
            rows_b.append({"label": "published" + ("" if comparable else " (not comparable)"),
                           "note": notes.index(note) + 1,
                           "cells": [dice_text(b["value"]) if c == b["class"] else None for c in classes]})
        # One test set, one size: said once in its heading (per row only when the experiments differ).
        shared = next(iter(sizes)) if len(sizes) == 1 else None
        groups.append({"name": ctx.names.test_set(ts), "rows": rows, "baselines": rows_b, "shared": shared is not None,
                       "n_images": fmt_value(shared[0]) if shared else "", "n_subjects": fmt_value(shared[1]) if shared
                       else "", "unstable": bool(shared and shared[2])})
    return {"art": art, "caption": DICE_CAPTION, "classes": [ctx.names.class_(c) for c in classes],
            "groups": groups, "never": [ctx.names.class_(c).text for c in never], "notes": notes}


def row_values(s: dict, classes: list[str]) -> list:
    """Per column (classes + the class-macro mean): None (not scored), (None, None) absent, (value, ci)."""
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


def short_note(note: str) -> str:
    """An interval note in a few words for a table cell (the whole note is its tooltip)."""
    if not note:
        return ""
    if note.startswith("n = "):
        return f"{note.split(' subject')[0]}, no interval"
    if "same value" in note:
        return "no interval (no spread)"
    return "no interval"


def _entry(summary: dict, cls: str | None) -> dict:
    """The summary's per-class entry, or its class-macro mean's (cls None)."""
    entry = summary.get("mean_foreground") if cls is None else (summary.get("per_class") or {}).get(cls)
    return entry if isinstance(entry, dict) else {}


def spread_text(summary: dict, cls: str | None) -> str:
    """From fewer than 10 subjects, the lowest and highest subject; any subject far from the others, named."""
    from usseg.intervals import RANGE_BELOW_SUBJECTS, far_text, range_text

    entry = _entry(summary, cls)
    n = entry.get("n_subjects") or 0
    parts = [range_text(entry.get("range")) if 1 < n < RANGE_BELOW_SUBJECTS else "",
             far_text(entry.get("far_subjects") or [])]
    return "; ".join(p for p in parts if p)


def spread_short(summary: dict, cls: str | None) -> str:
    """spread_text in a few words for a table cell ("subjects 0.00-0.96; far: ct12"); the whole text is its tooltip."""
    from usseg.intervals import RANGE_BELOW_SUBJECTS

    entry = _entry(summary, cls)
    n, rng = entry.get("n_subjects") or 0, entry.get("range")
    parts = []
    if 1 < n < RANGE_BELOW_SUBJECTS and rng:
        # Dice, like the cell's mean: two decimals (a fraction near 0 would otherwise read 2.69e-03).
        parts.append(f"subjects {float(rng['min']):.2f}–{float(rng['max']):.2f}")
    far = [str(f["subject"]) for f in entry.get("far_subjects") or []]
    if far:
        parts.append("far: " + ", ".join(far))
    return "; ".join(parts)


def area_rule_text(summary: dict, cls: str | None) -> str:
    """The secondary view (only reference regions of at least min_reference_area_px), for a class cell:
    its Dice, or "too small (k images)" when the class is present but every region is below the rule."""
    if cls is None:
        return ""
    entry = _entry(summary, cls)
    area = entry.get("area_rule")
    if not isinstance(area, dict):
        return ""
    rule = f"≥ {fmt_value(summary.get('min_reference_area_px'))} px"
    if is_number(area.get("dice")):
        return f"{rule}: {area['dice']:.2f} ({area.get('n_subjects', 0)} subj.)"
    small = entry.get("too_small_images") or 0
    return f"{rule}: too small ({small} images)" if small else ""


def no_interval_note(summary: dict, cls: str | None) -> str:
    """The words in place of an interval that is not shown (too few subjects, or no spread)."""
    entry = summary.get("mean_foreground") if cls is None else (summary.get("per_class") or {}).get(cls)
    return (entry or {}).get("interval_note") or ""


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
        rows.append([ctx.names.test_set(ts).text, len(excluded), lost,
                     "; ".join(f"{r} ({n})" for r, n in reasons.items()) or "none"])
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
                rows.append([ctx.names.experiment(e).text, ctx.names.test_set(ts).text, ctx.names.class_(cls).text,
                             f"{scored} ({c.get('n_subjects', 0)})",
                             with_interval(c.get("nsd"), c.get("nsd_ci95")),
                             f"{fmt_value(c.get('hd95'))} / "
                             + with_interval(c.get("hd95_worst"), c.get("hd95_worst_ci95")),
                             f"{c.get('false_positive_images', 0)} / {c.get('absent_images', 0)}",
                             f"{c.get('missed_images', 0)} / {scored}", c.get("too_small_images", 0), note])
    # The pooled-image Dice (secondary: it weighs each frame, not each subject) stays in summary.json.
    columns = ["experiment", "test set", "class", "scored images (subjects)", "NSD", "HD95 (px): hits / misses at worst",
               "false positives / images without it", "missed / scored images", "too small", "note"]
    return TableBlock(art, ERRORS_CAPTION.format(tolerance=fmt_value(tolerance)),
                      Table(columns, rows, art.id, {4, 5, 8}))


def with_interval(value, ci) -> str:
    """A number with its 95 % interval when the summary gives one ("0.87 [0.80, 0.93]")."""
    iv = interval(ci)
    return fmt_value(value) + (f" [{fmt_value(iv[0])}, {fmt_value(iv[1])}]" if iv and value is not None else "")


def evaluation_figures(ctx) -> dict:
    from usseg import evaluation_figures as figs  # matplotlib only when the report is drawn

    classes = ctx.fg_classes()
    labels = {**{e: ctx.names.experiment(e).text for e in ctx.experiments},
              **{t: ctx.names.test_set(t).text for t in ctx.test_sets}}
    return {
        "forest": ctx.derived_figure(
            "fig-forest", "Every experiment with its interval",
            figs.forest_png(ctx.summaries, ctx.experiments, ctx.test_sets, classes, labels),
            "Subject-level Dice per experiment, test set and class, grouped by class, and the class-macro mean over "
            "the classes in the reference of at least 3 subjects of every test set, with the 95 % t interval; a hollow "
            "point has no interval (fewer than 3 subjects, or every subject equal); absent: the class is neither in a "
            "reference mask nor predicted there."),
        "per_subject": ctx.derived_figure(
            "fig-per-subject", "Dice of each subject",
            figs.per_subject_png(ctx.summaries, ctx.experiments, ctx.test_sets, classes, labels),
            "Each point is one subject's mean Dice over its images where the class is in the reference or "
            "predicted; the bar is the "
            "mean over subjects, the value in the Dice table."),
    }


def experiment_figures(ctx, e: str) -> dict:
    figures = []
    name = ctx.names.experiment(e)
    curves = ctx.figure(f"fig-curves-{e}", ctx.inputs.curves[e], f"Training curves: {name}",
                        "Loss and validation Dice per epoch; the dashed line marks the best epoch.")
    for ts in ctx.test_sets:
        ts_name = ctx.names.test_set(ts)
        figures.append({"figure": ctx.figure(f"fig-overlays-{e}-{ts}", ctx.inputs.overlays[(e, ts)],
                                             f"Predictions: {name} on the {ts_name}", OVERLAY_CAPTION)})
        errors = confusion_errors(ctx, e, ts)
        figures.append({"figure": ctx.figure(f"fig-confusion-{e}-{ts}", ctx.inputs.confusion[(e, ts)],
                                             f"Pixel confusion: {name} on the {ts_name}", CONFUSION_CAPTION),
                        "beside": confusion_sentence(ctx, ts, errors)})
    return {"name": name, "slug": slug(e), "description": experiment_description(ctx.config, e), "curves": curves,
            "figures": figures}


# A reference class loses a share of its pixels to one other class: said in words from this share up.
DOMINANT_ERROR_SHARE = 0.2
# Rows with fewer reference pixels than this are too small to speak of.
MIN_ROW_PIXELS = 100


def confusion_errors(ctx, e: str, ts: str) -> list[tuple[str, str, float]]:
    """(reference class, predicted class, share of the reference's pixels) of each reference class whose
    largest error is at least DOMINANT_ERROR_SHARE, largest first, from the evaluation's confusion.csv."""
    fields, rows = ctx.csv(ctx.inputs.confusion_csv[(e, ts)])
    predicted = [f.removeprefix("predicted_") for f in fields[1:]]
    out = []
    for r in rows:
        ref = r.get(fields[0], "")
        counts = []
        for f in fields[1:]:
            try:
                counts.append(float(r.get(f) or 0))
            except ValueError:
                counts.append(0.0)
        total = sum(counts)
        if total < MIN_ROW_PIXELS:
            continue
        errors = [(c / total, p) for c, p in zip(counts, predicted) if p != ref]
        if errors:
            share, pred = max(errors)
            if share >= DOMINANT_ERROR_SHARE:
                out.append((ref, pred, share))
    return sorted(out, key=lambda x: -x[2])


def confusion_sentence(ctx, ts: str, errors: list[tuple[str, str, float]]) -> str:
    """The dominant errors in words: "on the RUS test set (real), 89 % of liver and 93 % of kidney pixels are
    predicted as spleen"."""
    where = f"On the {ctx.names.test_set(ts)}"
    if not errors:
        return f"{where}, no class loses {DOMINANT_ERROR_SHARE:.0%} or more of its pixels to any one other class."
    by_pred: dict[str, list[tuple[str, float]]] = {}
    for ref, pred, share in errors:
        by_pred.setdefault(pred, []).append((ref, share))
    parts = []
    for pred, refs in by_pred.items():
        items = [f"{share:.0%} of {ctx.names.class_(ref)}" for ref, share in refs]
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
        parts.append(f"{listed} pixels are predicted as {ctx.names.class_(pred)}")
    return f"{where}, " + "; ".join(parts) + "."


def confusion_summary(ctx) -> dict:
    """The dominant confusion errors on the real test sets (on every test set when none is real), in words;
    the others are said beside each confusion figure."""
    real = [t for t in ctx.test_sets if ctx.test_set_domain(t)[1] == "real"] or list(ctx.test_sets)
    art = ctx.artifact("text-confusion", "table", "What the confusion matrices show",
                       [ctx.inputs.confusion_csv[(e, t)] for e in ctx.experiments for t in real], derived=True)
    items = []
    for e in ctx.experiments:
        for ts in real:
            errors = confusion_errors(ctx, e, ts)
            if errors:
                items.append({"name": ctx.names.experiment(e), "text": confusion_sentence(ctx, ts, errors)})
    return {"art": art, "lines": items, "share": f"{DOMINANT_ERROR_SHARE:.0%}",
            "where": ", ".join(ctx.names.test_set(t).text for t in real)}


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
        rows.append({"art": row_art, "name": ctx.names.experiment(e), "cells": training_summary(hist)})
    columns = ["epochs", "final training loss", "final validation loss", "best validation Dice (mean)",
               "at epoch", "time (s)"]
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
