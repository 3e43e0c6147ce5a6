"""3. Domain shift: intensity distributions, the two-sample test, the format control and the label shift."""

from __future__ import annotations

from typing import Any

from usseg.report.context import TableBlock
from usseg.report.formatting import find_key, flatten, fmt_number, fmt_value, interval, is_number
from usseg.report.tables import json_table

ID, TITLE, HEADING, TEMPLATE = "domain-shift", "Domain shift", "Domain shift", "domain_shift.html"

def build(ctx) -> dict:
    d = ctx.inputs.diagnostics
    json_file = d.domain_shift_json
    data = ctx.json(json_file)
    art = ctx.artifact("tab-domain-shift", "table", "Distances between the domains", [json_file])
    out: dict[str, Any] = {
        "histograms": ctx.figure("fig-domain-shift", d.domain_shift, "Intensity distributions per modality",
                                 "Grey-level histograms inside the ultrasound field of view."),
    }
    out.update(auc=None, auc_missing="", stats=None)
    auc = find_auc(data)
    if auc:
        value, ci, _ = auc
        th = ctx.config.get("diagnostics", {}).get("domain_auc", {})
        th_text = ""
        if "warn_above" in th and "fail_above" in th:
            th_text = (f" Thresholds: WARN above {fmt_number(th['warn_above'])}, "
                       f"FAIL above {fmt_number(th['fail_above'])}.")
        sizes = ""
        n_img, n_sub = find_key(data, ("n_images",)), find_key(data, ("n_subjects",))
        if isinstance(n_img, dict) and isinstance(n_sub, dict):
            sizes = " Images (subjects) per domain: " + ", ".join(
                f"{k} {fmt_value(v)} ({fmt_value(n_sub.get(k))})" for k, v in n_img.items()) + "."
        out["auc"] = {"value": f"{value:.2f}", "th_text": th_text, "sizes": sizes,
                      "ci_text": f" (95 % interval {ci[0]:.2f} to {ci[1]:.2f})" if ci else " (no interval recorded)"}
    else:
        why = find_key(data, ("why_not", "why", "reason"))
        out["auc_missing"] = "The two-sample test (domain classifier) did not run" + (f": {why}" if why else ".")
    out["distances"] = TableBlock(art, "Distances between the simulator and real intensity distributions "
                                       "(0 = identical).", json_table(distances(data), art.id))
    per_mod = data.get("per_modality") if isinstance(data, dict) else None
    if isinstance(per_mod, dict) and per_mod:
        stats = ctx.artifact("tab-intensity-stats", "table", "Intensity statistics per modality", [json_file])
        out["stats"] = TableBlock(stats, "Grey levels inside the field of view.", json_table(per_mod, stats.id))
    out["format_control_art"] = ctx.artifact("text-format-control", "table", "Format control and model input",
                                             [json_file])
    out["format_control"] = format_control_text(data)
    out["label_shift"] = ctx.figure(
        "fig-label-shift", d.label_shift, "Label shift",
        "Organ presence, size (share of the field of view, one dot per subject) and position per modality; classes "
        "beyond the diagnostics.label_shift thresholds are named in the domain-shift verdict.")
    out["label_shift_table"] = ctx.csv_table("tab-label-shift", d.label_shift_csv,
                                             "Organ presence, size and position per class and modality")
    everything = ctx.artifact("tab-domain-shift-all", "table", "Every value in domain_shift.json", [json_file])
    out["histogram_table"] = ctx.csv_table("tab-intensity-histograms", d.histograms,
                                           "Intensity histograms (data behind the figure)")
    out["everything"] = TableBlock(everything, "", json_table(dict(flatten(data)), everything.id))
    return out


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
