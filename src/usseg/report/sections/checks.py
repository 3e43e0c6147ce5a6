"""2. The checks, failures first: each with its value (and unit), threshold, meaning and evidence.

The diagnostics checklist (checklist.json) earns each status from one value
against a threshold; this section shows the failing and warning checks first,
each with its value in words, the threshold, a one-line meaning and its
evidence (the figure that shows the worst examples), the reason and the data
behind it behind "read more"; passing checks are one line each, openable.
Every figure and table of the diagnostics belongs to a check (`EVIDENCE`);
one whose check is not in checklist.json is still shown, after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usseg.names import DOMAIN_WORDS
from usseg.report.context import TableBlock
from usseg.report.formatting import (
    find_key,
    flatten,
    fmt_number,
    fmt_value,
    interval,
    is_number,
    slug,
    truthy,
)
from usseg.report.provenance_index import Artifact

ID, TITLE, HEADING, TEMPLATE = "checks", "Checks", "The checks, failures first", "checks.html"

ORDER = ("FAIL", "WARN", "NOT RUN", "PASS")

# What each check measures, in one line (a check not named here shows its reason's first sentence).
MEANING = {
    "composition": "How much of the labeled data comes from the domain the model must work on.",
    "subjects": "Distinct labeled subjects (patients) of the target domain: frames of one subject are not "
                "independent, so the subject count bounds how far a test on them can be trusted.",
    "class_balance": "Organs too rare to learn, or never labeled in one of the domains.",
    "domain_shift": "Whether a simple classifier tells the domains' images apart: if it can, a model trained on "
                    "one meets a different distribution on the other.",
    "label_verification": "Masks with colours off the palette, swapped channels, empty masks or organs "
                          "implausible for the domain.",
    "leakage": "The same subject or image in two of train, validation and test, which inflates the scores.",
    "published_baselines": "Published results measured on this very data, to read the models' scores against.",
    "image_quality": "Frames that are dark, over-bright, blurry or carry little information.",
    "pipeline": "Whether the training pipeline itself is ruled out as the cause of poor scores.",
}

# Where a check's evidence is a section of its own.
SECTION_OF = {"pipeline": "pipeline-checks"}


@dataclass
class Fact:
    """A sentence computed from a file, with its provenance link."""

    art: Artifact
    text: str
    kind: str = "fact"


def build(ctx) -> dict:
    rel = ctx.inputs.diagnostics.checklist
    data = ctx.json(rel)
    checks = [c for c in data.get("checks", []) if isinstance(c, dict)] if isinstance(data, dict) else []
    ranked = sorted(checks, key=lambda c: ORDER.index(c.get("status")) if c.get("status") in ORDER else 2)
    cards = [card(ctx, c) for c in ranked]
    seen = {c.get("id") for c in checks}
    for check_id, builder in EVIDENCE.items():  # evidence of a check checklist.json does not list
        if check_id not in seen:
            ev = builder(ctx)
            cards.append({"id": check_id, "anchor": f"check-{slug(check_id)}", "status": "—", "status_class": "",
                          "title": check_id.replace("_", " "), "value": "not in checklist.json", "threshold": "",
                          "meaning": MEANING.get(check_id, ""), "reason": "", "section": None,
                          "examples": ev["examples"], "more": ev["more"]})
    return {"art": ctx.artifact("tab-checklist", "table", "Dataset-readiness checklist", [rel]),
            "concerns": [c for c in cards if c["status"] in ("FAIL", "WARN")],
            "others": [c for c in cards if c["status"] not in ("FAIL", "WARN")]}


def card(ctx, check: dict) -> dict:
    cid = str(check.get("id", ""))
    status = str(check.get("status", ""))
    ev = EVIDENCE[cid](ctx) if cid in EVIDENCE else {"examples": [], "more": []}
    reason = str(check.get("reason", ""))
    return {"id": cid, "anchor": f"check-{slug(cid)}", "status": status,
            "status_class": status if status in ("PASS", "WARN", "FAIL") else "",
            "title": str(check.get("title", cid)), "value": value_words(ctx, check),
            "threshold": fmt_value(check.get("threshold")),
            "meaning": MEANING.get(cid) or reason.split(": ")[0].split(". ")[0],
            "reason": reason, "section": SECTION_OF.get(cid), "examples": ev["examples"], "more": ev["more"]}


def value_words(ctx, check: dict) -> str:
    """A check's value with its unit and meaning ("domain classifier AUC 1.00 (0.5 = indistinguishable)")."""
    cid, v = check.get("id"), check.get("value")
    target = ctx.config["dataset"].get("target_modality")
    domain = (ctx.config["dataset"]["modalities"].get(target) or {}).get("domain")
    where = f"{target} ({DOMAIN_WORDS.get(domain, domain)})" if domain else str(target)
    if not is_number(v):
        return fmt_value(v)
    if cid == "composition":
        # The check's value is the target's share of the training labels (train and val splits), which
        # is not its share of all labeled images: labeled target images held out as a test set teach nothing.
        return f"{100 * v:.1f} % of the training labels are {where}"
    if cid == "subjects":
        return f"{fmt_number(v)} labeled {where} subject{'' if v == 1 else 's'}"
    if cid == "domain_shift":
        return f"domain classifier AUC {v:.2f} (0.5 = indistinguishable, 1 = every image gives its domain away)"
    if cid == "image_quality":
        return f"{100 * v:.1f} % of the images flagged"
    if cid == "published_baselines":
        return f"{fmt_number(v)} published result{'' if v == 1 else 's'} measured on this data"
    if cid == "label_verification":
        return f"{fmt_number(v)} mask{'' if v == 1 else 's'} flagged"
    return fmt_value(v)


# ----------------------------------------------------------------------------- evidence per check


def composition(ctx) -> dict:
    d = ctx.inputs.diagnostics
    return {
        "examples": [ctx.figure("fig-composition", d.composition, "Composition",
                                "Images per modality and original split, labeled and unlabeled.")],
        "more": [
            ctx.csv_table("tab-composition", d.composition_csv, "Images per modality and split"),
            ctx.csv_table("tab-manifest-issues", ctx.inputs.issues, "Files set aside by the manifest",
                          "Every file below the data root is either in the manifest or listed here with the "
                          "reason; nothing disappears silently.", empty="none: every file was used."),
        ],
    }


def subjects(ctx) -> dict:
    d = ctx.inputs.diagnostics
    target = ctx.config["dataset"].get("target_modality")
    fields, rows = ctx.csv(d.frames_per_subject)
    # The target's labeled subjects are the point of the check: they come first.
    rows = sorted(rows, key=lambda r: (r.get("modality") != target, -_int(r.get("n_labeled_frames"))))
    frames = ctx.artifact("tab-frames-per-subject", "table", "Frames per subject", [d.frames_per_subject])
    return {
        "examples": [ctx.figure("fig-subjects", d.subjects, "Subjects",
                                "Distinct subjects (patients or CT volumes) per modality and split, and the "
                                "labeled frames of each: the true size of a dataset.")],
        "more": [
            ctx.csv_table("tab-subjects", d.subjects_csv, "Subjects per modality and split"),
            TableBlock(frames, f"Frames of one subject are not independent samples; {target} subjects first.",
                       _records(fields, rows, frames.id) if rows else None),
        ],
    }


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _records(fields, rows, table_id):
    from usseg.report.tables import records_table

    return records_table(fields, rows, table_id)


def class_balance(ctx) -> dict:
    d = ctx.inputs.diagnostics
    return {
        "examples": [ctx.figure("fig-class-balance", d.class_balance, "Class balance",
                                "Share of labeled pixels and of images in which each class appears.")],
        "more": [
            ctx.csv_table("tab-class-balance", d.class_balance_csv, "Class balance per class and modality"),
            ctx.json_table("tab-class-weights", d.class_weights, "Suggested class weights",
                           "Tempered median-frequency weights (used by experiments with class_weights: auto); "
                           "0 = class never labeled.",
                           obj=_weights(ctx.json(d.class_weights))),
        ],
    }


def _weights(data: Any) -> Any:
    """class_weights.json as rows of class and weight (a table of two columns, not one wide row)."""
    if isinstance(data, dict) and all(is_number(v) for v in data.values()):
        return [{"class": k, "weight": v} for k, v in data.items()]
    return data


def domain_shift(ctx) -> dict:
    d = ctx.inputs.diagnostics
    json_file = d.domain_shift_json
    data = ctx.json(json_file)
    examples: list = [auc_fact(ctx, data, json_file),
                      ctx.figure("fig-domain-shift", d.domain_shift, "Domain shift",
                                 "An example image per modality (field of view outlined), the domain "
                                 "classifier's ROC, and the grey-level histograms inside the field of view, raw "
                                 "and as a model sees them.")]
    more: list = [
        ctx.figure("fig-label-shift", d.label_shift, "Label shift",
                   "Organ presence, size (share of the field of view, one dot per subject) and position per "
                   "modality; classes beyond the diagnostics.label_shift thresholds are named in the reason."),
        ctx.csv_table("tab-label-shift", d.label_shift_csv, "Organ presence, size and position per class and "
                      "modality"),
        ctx.json_table("tab-domain-shift", json_file, "Distances between the domains",
                       "Between the simulator and the real intensity distributions inside the field of view "
                       "(0 = identical).", obj=distances(data)),
    ]
    per_mod = data.get("per_modality") if isinstance(data, dict) else None
    if isinstance(per_mod, dict) and per_mod:
        more.append(ctx.json_table("tab-intensity-stats", json_file, "Grey levels per modality",
                                   "Inside the field of view.", obj=per_mod))
    text = format_control_text(data)
    if text:
        more.append(Fact(ctx.artifact("text-format-control", "table", "Format control and model input",
                                      [json_file]), text))
    more.append(ctx.json_table("tab-domain-shift-all", json_file, "Every value in domain_shift.json",
                               obj=dict(flatten(data))))
    more.append(ctx.csv_table("tab-intensity-histograms", d.histograms,
                              "Intensity histograms (the data behind the figure)"))
    return {"examples": examples, "more": more}


def auc_fact(ctx, data: Any, json_file) -> Fact:
    """The domain classifier's AUC with its interval and thresholds, in words."""
    art = ctx.artifact("domain-auc", "table", "Two-sample test (domain classifier)", [json_file])
    auc = find_auc(data)
    if not auc:
        why = find_key(data, ("why_not", "why", "reason"))
        return Fact(art, "The two-sample test (domain classifier) did not run" + (f": {why}" if why else "."))
    value, ci, _ = auc
    text = (f"Two-sample test: a classifier, cross-validated by subject, tells the domains apart with AUC "
            f"{value:.2f}" + (f" (95 % interval {ci[0]:.2f} to {ci[1]:.2f})" if ci else " (no interval recorded)")
            + "; 0.5 means it cannot tell them apart, 1.0 that every image gives its domain away.")
    th = ctx.config.get("diagnostics", {}).get("domain_auc", {})
    if "warn_above" in th and "fail_above" in th:
        text += f" Thresholds: WARN above {fmt_number(th['warn_above'])}, FAIL above {fmt_number(th['fail_above'])}."
    n_img, n_sub = find_key(data, ("n_images",)), find_key(data, ("n_subjects",))
    if isinstance(n_img, dict) and isinstance(n_sub, dict):
        text += " Images (subjects) per domain: " + ", ".join(
            f"{k} {fmt_value(v)} ({fmt_value(n_sub.get(k))})" for k, v in n_img.items()) + "."
    return Fact(art, text)


def format_control_text(data: Any) -> str:
    """The format control's AUC beside the image classifier's, and what a model sees ("" when neither)."""
    fmt = data.get("format_control") if isinstance(data, dict) else None
    model = data.get("model_input_intensity") if isinstance(data, dict) else None
    text = []
    if isinstance(fmt, dict) and is_number(fmt.get("auc")):
        text.append(f"Format control: the same classifier on file properties only ({', '.join(fmt.get('features', []))}) "
                    f"reaches AUC {fmt['auc']:.2f}; high here and low above means the domains differ in how "
                    "their files were stored, not in what was imaged.")
    if isinstance(model, dict) and model.get("source_vs_target"):
        w1 = model["source_vs_target"].get("wasserstein1")
        if is_number(w1):
            text.append(f"At the model's input ({model.get('normalisation', '')}) the intensity distributions "
                        f"differ by Wasserstein-1 {w1:.3f} (input units 0-1).")
    return " ".join(text)


def find_auc(obj: Any) -> tuple[float, tuple[float, float] | None, str] | None:
    """The domain classifier's AUC and its interval, wherever domain_shift.json keeps them."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if "auc" in str(key).lower() and is_number(value):
                for ci_key in (f"{key}_ci95", f"{key}_ci", "auc_ci95", "ci95", "auc_ci", "ci", "interval"):
                    ci = interval(obj.get(ci_key))
                    if ci:
                        return float(value), ci, str(key)
                return float(value), None, str(key)
        for value in obj.values():
            found = find_auc(value)
            if found:
                return found
    return None


def distances(data: Any) -> Any:
    """The distance measures of domain_shift.json: under a key naming them, else all but the AUC."""
    if isinstance(data, dict):
        for k, v in data.items():
            if "distance" in str(k).lower() and isinstance(v, (dict, list)) and v:
                return v
    return strip_auc(data)


def strip_auc(obj: Any) -> Any:
    """domain_shift.json without the classifier's AUC entries (shown on their own)."""
    if isinstance(obj, dict):
        return {k: strip_auc(v) for k, v in obj.items()
                if "auc" not in str(k).lower() and str(k).lower() not in ("ci95", "ci", "interval")}
    return obj


def label_verification(ctx) -> dict:
    galleries = []
    for m in ctx.modalities:
        galleries.append(ctx.figure(f"fig-label-gallery-{m}", ctx.inputs.diagnostics.galleries[m],
                                    f"Label gallery: {ctx.names.modality(m)}",
                                    "Decoded masks drawn over their images, flagged and most off-palette masks "
                                    "first: the palette, the channel order and the resizing are right only if "
                                    "the outlines sit on the organs."))
    return {
        "examples": galleries,
        "more": [
            ctx.csv_table("tab-label-flags", ctx.inputs.diagnostics.label_flags, "Label flags",
                          "Masks the label checks found suspicious.", empty="none: no mask was flagged."),
            ctx.csv_table("tab-flagged-masks", ctx.inputs.decode_report, "Masks set aside when decoding",
                          "Masks whose colours are too far from the palette; they are left out of training and "
                          "evaluation.", empty="none: every mask decoded cleanly.",
                          rows_filter=lambda r: truthy(r.get("flagged", "")),
                          columns=["image_id", "mask_path", "off_palette_fraction", "far_fraction", "max_distance",
                                   "classes_present", "flag_reason"]),
        ],
    }


def leakage(ctx) -> dict:
    d = ctx.inputs.diagnostics
    return {
        "examples": [ctx.csv_table("tab-near-duplicates", d.near_duplicates, "Near-duplicate images",
                                   "Image pairs whose perceptual hashes are within the configured distance.",
                                   empty="none found.")],
        "more": [ctx.json_table("tab-leakage", d.leakage, "Leakage check",
                                "Subjects or identical files shared between train, validation and the test sets.")],
    }


def published_baselines(ctx) -> dict:
    table = ctx.csv_table("tab-baselines", ctx.inputs.diagnostics.baselines, "Published results",
                          "Each with the data it was measured on; only a result shown to be "
                          "measured on this data (comparable: its fingerprint, or the facts of a "
                          "reference dataset usseg records, checked against the manifest) bounds "
                          "what it allows.",
                          empty="none configured (diagnostics.published_baselines).")
    # Results measured on other data are for reference only: shown under "read more", not as evidence.
    _, rows = ctx.csv(ctx.inputs.diagnostics.baselines)
    comparable = any(str(r.get("comparable", "")).strip().lower() == "true" for r in rows)
    return {"examples": [table], "more": []} if comparable else {"examples": [], "more": [table]}


def image_quality(ctx) -> dict:
    d = ctx.inputs.diagnostics
    return {
        "examples": [ctx.figure("fig-image-quality", d.image_quality, "Image quality",
                                "Dark, over-bright, blurry or low-information frames inside the field of view "
                                "(thresholds: diagnostics.image_quality); without flags, the closest calls.")],
        "more": [ctx.csv_table("tab-image-quality", d.image_quality_csv, "Flagged frames",
                               "Frames with at least one image-quality flag.", empty="none: no frame was flagged.",
                               rows_filter=lambda r: bool(r.get("flags", "")))],
    }


# The evidence of each check of checklist.json, by its id, in the order shown for checks it does not list.
EVIDENCE = {
    "composition": composition,
    "subjects": subjects,
    "class_balance": class_balance,
    "domain_shift": domain_shift,
    "label_verification": label_verification,
    "leakage": leakage,
    "published_baselines": published_baselines,
    "image_quality": image_quality,
}
