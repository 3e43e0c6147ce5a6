"""The verdict: checklist.json for the workflow and report, checklist.md for people.

Overall status is the worst check's. The markdown adds "what to try next",
derived from the checks that did not pass, because a diagnosis is only useful
with the action it points to.
"""

from __future__ import annotations

from usseg.diagnostics.baselines import DEMO_ID
from usseg.diagnostics.outputs import DiagnosticsOutputs, write_json
from usseg.diagnostics.status import PASS, CheckResult, worst

CHECK_ORDER = [
    "composition",
    "subjects",
    "class_balance",
    "domain_shift",
    "label_verification",
    "leakage",
    "published_baselines",
    "image_quality",
]
STATUS_MARK = {"PASS": "PASS", "WARN": "WARN", "FAIL": "**FAIL**"}


def build_checklist(results: list[CheckResult]) -> dict:
    by_id = {r.id: r for r in results}
    missing = [c for c in CHECK_ORDER if c not in by_id]
    if missing:
        raise ValueError(f"checklist lacks the check(s) {', '.join(missing)}")
    ordered = [by_id[c] for c in CHECK_ORDER] + [r for r in results if r.id not in CHECK_ORDER]
    return {
        "overall": worst(r.status for r in ordered),
        "checks": [r.as_checklist_entry() for r in ordered],
    }


# Who acts on a step: "data" steps change the dataset or its labels (no training
# measures them); "model" steps change the training, which the gap study can
# measure as remedies (gap_study.remedies, docs/remedies.md). The verdict lists the data
# steps after the measured ranking when the study ran.
DATA_SIDE, MODEL_SIDE = "data", "model"


def next_steps(results: dict[str, CheckResult], target: str) -> list[str]:
    """Actions that address the checks that did not pass, most important first."""
    return [step["text"] for step in next_step_records(results, target)]


def next_step_records(results: dict[str, CheckResult], target: str) -> list[dict]:
    """`next_steps` with the check each step answers and its side: [{"check", "side", "text"}]."""
    steps = []

    def add(check: str, side: str, text: str) -> None:
        steps.append({"check": check, "side": side, "text": text})

    comp, subj = results.get("composition"), results.get("subjects")
    if subj and subj.status != PASS:
        add("subjects", DATA_SIDE,
            f"Collect and label {target} images from more distinct subjects: the subject count, not the "
            "frame count, bounds how far a real-domain evaluation can be trusted; report per-subject results "
            "and their spread meanwhile."
        )
    if comp and comp.status != PASS:
        n_unlab = comp.details.get("n_target_unlabeled", 0)
        add("composition", MODEL_SIDE,
            f"Use the {n_unlab} unlabeled {target} images: semi-supervised learning (pseudo-labels, "
            "mean teacher) or self-supervised pre-training on the target domain."
        )
    dom = results.get("domain_shift")
    shifted = (dom.details.get("label_shift") or {}).get("shifted_classes", []) if dom else []
    image_gap = dom and dom.details.get("image_status", dom.status) != PASS
    if dom and dom.status != PASS and (image_gap or not shifted):
        add("domain_shift", MODEL_SIDE,
            "Domain adaptation between synthetic and real images: intensity, speckle and contrast "
            "augmentation, histogram matching of simulator images to the real ones, adversarial feature "
            "alignment, and fine-tuning on the few real labels."
        )
    if shifted:
        add("domain_shift", MODEL_SIDE,
            f"Organs differ between the domains in size, position or presence ({', '.join(shifted)}; see "
            "label_shift.png): add scale and translation augmentation (random zoom, crops) so simulator organs "
            f"cover the {target} sizes and positions, weight or oversample simulator frames whose organs look "
            f"like the {target} ones, and report Dice per organ size on {target}."
        )
    cb = results.get("class_balance")
    if cb and cb.status != PASS:
        add("class_balance", MODEL_SIDE,
            "Weight the loss towards rare organs (loss.class_weights: auto; suggested weights in "
            "class_weights.json) or oversample images that contain them; leave classes that the target "
            "domain never labels out of its evaluation."
        )
    lab = results.get("label_verification")
    if lab and lab.status != PASS:
        add("label_verification", DATA_SIDE,
            "Open label_flags.csv and the label galleries: fix or drop the flagged masks (palette, channel "
            "order, empty masks) before training."
        )
    leak = results.get("leakage")
    if leak and leak.status != PASS:
        add("leakage", DATA_SIDE,
            "Fix the split: no subject, file or near-duplicate image may appear on both the training and "
            "the test side (see leakage.json and near_duplicates.csv)."
        )
    pub = results.get("published_baselines")
    if pub and pub.status != PASS and pub.details.get("dataset") == DEMO_ID:
        add("published_baselines", DATA_SIDE,
            "This run diagnoses the generated demo, on which no published result was measured: point data_root "
            "at the real dataset to read our scores against the configured baselines."
        )
    elif pub and pub.status != PASS:
        add("published_baselines", DATA_SIDE,
            "Look for published results measured on this very data and add them under "
            "diagnostics.published_baselines with this data's fingerprint (fingerprint:, given in the "
            "check's reason); results measured elsewhere are shown but cannot bound this dataset."
        )
    qual = results.get("image_quality")
    if qual and qual.status != PASS:
        add("image_quality", DATA_SIDE,
            "Look at the flagged frames (image_quality.png, image_quality.csv): drop dark, saturated, blurry "
            "or empty frames from training and evaluation, or re-export them from the scanner."
        )
    return steps


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.4g}"
    return str(v).replace("|", "/")


def render_markdown(checklist: dict, results: dict[str, CheckResult], target: str) -> str:
    return checklist_markdown(
        checklist,
        "Dataset diagnostics: can this dataset support the task?",
        f"**Overall: {checklist['overall']}** (the worst of the checks below)",
        next_steps(results, target),
    )


def checklist_markdown(checklist: dict, heading: str, overall: str, steps: list[str]) -> str:
    """A checklist (the JSON's shape) as Markdown: heading, the overall line, the table, what to try next."""
    lines = [
        f"# {heading}",
        "",
        overall,
        "",
        "| check | status | value | threshold | reason |",
        "|---|---|---|---|---|",
    ]
    for c in checklist["checks"]:
        lines.append(
            f"| {c['title']} | {STATUS_MARK.get(c['status'], c['status'])} | {_cell(c['value'])} | "
            f"{_cell(c['threshold'])} | {_cell(c['reason'])} |"
        )
    lines += ["", "## What to try next", ""]
    if steps:
        lines += [f"{i}. {s}" for i, s in enumerate(steps, 1)]
    else:
        lines.append(
            "Every check passed: the dataset looks able to support the task; tune the model."
        )
    lines.append("")
    return "\n".join(lines)


def write_checklist(results: list[CheckResult], outputs: DiagnosticsOutputs, target: str) -> dict:
    checklist = build_checklist(results)
    by_id = {r.id: r for r in results}
    # The steps with their check and side, so the report can tell data steps from model steps.
    checklist["next_steps"] = next_step_records(by_id, target)
    write_json(outputs.checklist, checklist)
    with open(outputs.checklist_md, "w") as fh:
        fh.write(render_markdown(checklist, by_id, target))
    return checklist
