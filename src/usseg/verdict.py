"""The run's final verdict: the diagnostics' checklist completed by what the trained models show.

The diagnostics run before any training, fast and on their own
(results/diagnostics/checklist.json, `snakemake diagnostics`). Two answers
need trained models; the rule `verdict` adds them and writes
results/verdict/checklist.json (and checklist.md), in the same contract as the
diagnostics' checklist (docs/contracts.md):

- **Domain shift**: a *detectable* shift (domain_shift.json
  `detectable_shift`) becomes a FAIL only with measured harm: some model that
  does not fail in its own domain falls from a test set of its own training
  modality to the target's test set, in class-macro mean Dice
  (usseg.composite), with a Welch 95 % interval (`domain_drops`) wholly above
  `verdict.harm_min_drop`. Otherwise it stays WARN, and its reason says what the
  models showed.
- **Pipeline ruled out?**: the `pipeline` check
  (usseg.checks.pipeline.pipeline_check), with its own status.

`overall` stays the dataset's answer: the worst status of the data checks
(domain shift as decided here). The pipeline check has its own status and does
not enter it: it says whether the pipeline is ruled out, not whether the
dataset can support the task.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from usseg import composite, contracts, intervals
from usseg.checks.pipeline import (
    PIPELINE_CHECK_ID,
    PipelineFiles,
    in_domain_failures,
    in_domain_test_sets,
    pipeline_check,
    sanity_experiments,
)
from usseg.diagnostics.checklist import checklist_markdown
from usseg.diagnostics.status import FAIL, worst

log = logging.getLogger("usseg.verdict")

DOMAIN_SHIFT_ID = "domain_shift"


def target_test_set(config: dict) -> str | None:
    """The target modality's test set, when the run has one."""
    name = contracts.test_set_name(config["dataset"]["target_modality"])
    return name if name in config["test_sets"] else None


def domain_drops(config: dict, summaries: Mapping[tuple[str, str], dict | None]) -> list[dict]:
    """Each model's drop in class-macro mean Dice from a test set of its own training modality to the target's
    test set, with Welch's interval over the two sets of subjects (usseg.intervals.difference_interval).

    Models that fail in their own domain (pipeline_report.in_domain_failures) and models trained on the target
    itself are left out: no drop is read from them. Returns [{experiment, from, to, estimate, ci95, n_a, n_b,
    harm, text}]; `harm`: the interval lies wholly above verdict.harm_min_drop.
    """
    target = target_test_set(config)
    threshold = float(config["verdict"]["harm_min_drop"])
    failing = {f["experiment"] for f in in_domain_failures(config, summaries)}
    out = []
    for exp in config["experiments"]:
        if target is None or exp in failing:
            continue
        for own in in_domain_test_sets(config, exp):
            if own == target:
                continue
            a, b = summaries.get((exp, own)), summaries.get((exp, target))
            if a is None or b is None:
                continue
            classes = list((a.get("mean_foreground") or {}).get("classes") or [])
            if not classes:
                continue
            ta = composite.subject_terms(composite.summary_values(a, classes))
            tb = composite.subject_terms(composite.summary_values(b, classes))
            iv = intervals.difference_interval(ta.to_numpy(), tb.to_numpy(), subjects_a=list(ta.index),
                                               subjects_b=list(tb.index))
            if iv["estimate"] is None:
                continue
            harm = bool(iv["ci95"] is not None and iv["ci95"][0] > threshold)
            ci = (f"95 % interval {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f}" if iv["ci95"] else iv["note"])
            text = (f"{exp} falls by {iv['estimate']:.2f} in {composite.NAME} ({', '.join(classes)}) from {own} "
                    f"to {target} ({ci}; {iv['n_a']} and {iv['n_b']} subjects)")
            out.append({"experiment": exp, "from": own, "to": target, "estimate": iv["estimate"],
                        "ci95": iv["ci95"], "n_a": iv["n_a"], "n_b": iv["n_b"], "harm": harm, "text": text})
    return out


def decide_domain_shift(check: dict, detectable: bool, drops: list[dict], threshold: float) -> dict:
    """The domain-shift check with the trained models' evidence: FAIL when the shift is detectable and some
    model's drop interval lies wholly above `threshold`; otherwise as the diagnostics said, with the evidence."""
    out = dict(check)
    harmed = [d for d in drops if d["harm"]]
    if not drops:
        out["reason"] += (" No trained model measured harm (none scored on both its own domain and the target, "
                          "or every one failed in its own domain), so this stays at the diagnostics' status.")
        return out
    measured = "; ".join(d["text"] for d in drops)
    if detectable and harmed:
        out["status"] = FAIL
        out["reason"] += (f" Measured harm, so FAIL: {measured}. The interval of "
                          f"{', '.join(d['experiment'] for d in harmed)} lies wholly above {threshold:.2f} "
                          "(verdict.harm_min_drop).")
    elif detectable:
        out["reason"] += (f" Detectable, but no model shows harm beyond doubt (no drop interval wholly above "
                          f"{threshold:.2f}, verdict.harm_min_drop): {measured}. So WARN \"detectable shift\", "
                          "not FAIL.")
    else:
        out["reason"] += f" What the trained models show: {measured}."
    return out


def final_checklist(config: dict, diagnostics: dict, domain_shift: dict, files: PipelineFiles) -> dict:
    """The diagnostics' checklist with the domain shift decided on measured harm and the `pipeline` check added."""
    summaries = {key: contracts.read_summary(path) if Path(path).is_file() else None
                 for key, path in files.summaries.items()}
    drops = domain_drops(config, summaries)
    threshold = float(config["verdict"]["harm_min_drop"])
    checks = []
    for c in copy.deepcopy(diagnostics["checks"]):
        if c.get("id") == PIPELINE_CHECK_ID:
            continue
        if c.get("id") == DOMAIN_SHIFT_ID:
            c = decide_domain_shift(c, bool(domain_shift.get("detectable_shift")), drops, threshold)
        checks.append(c)
    data_overall = worst(c["status"] for c in checks)
    pipeline = pipeline_check(config, files)
    return {
        "overall": data_overall,
        "checks": [*checks, pipeline],
        "next_steps": diagnostics.get("next_steps", []),
        "overall_definition": ("the worst status of the data checks; the pipeline check has its own status and "
                               "does not enter it"),
        "domain_drops": [{k: d[k] for k in ("experiment", "from", "to", "estimate", "ci95", "n_a", "n_b", "harm")}
                         for d in drops],
    }


def files_from_rule(named: dict[str, list[str]], config: dict) -> PipelineFiles:
    """The rule's named inputs ({name: [paths]}) as PipelineFiles, lists in `expand`'s config order."""
    experiments, test_sets = list(config["experiments"]), list(config["test_sets"])
    pairs = [(e, t) for e in experiments for t in test_sets]

    def by(name: str, keys: list) -> dict:
        paths = [Path(p) for p in named.get(name, [])]
        if paths and len(paths) != len(keys):
            raise ValueError(f"rule verdict: {len(paths)} file(s) as input {name!r} for {len(keys)} keys "
                             "(rules/verdict.smk must expand it in config order)")
        return dict(zip(keys, paths))

    info = named.get("nnunet_info") or []
    return PipelineFiles(sanity=by("sanity", sanity_experiments(config)), round_trip=Path(named["round_trip"][0]),
                         nnunet=by("nnunet", test_sets), nnunet_info=Path(info[0]) if info else None,
                         summaries=by("summaries", pairs), histories=by("histories", experiments))


def write_verdict(config: dict, named: dict[str, list[str]], checklist_json, checklist_md) -> dict:
    """Read the diagnostics' checklist and domain_shift.json and every trained model's results (the rule's
    named inputs); write the final checklist (JSON and Markdown); return it."""
    diagnostics = contracts.read_checklist(named["checklist"][0])
    domain_shift = json.loads(Path(named["domain_shift"][0]).read_text())
    out = final_checklist(config, diagnostics, domain_shift, files_from_rule(named, config))
    Path(checklist_json).parent.mkdir(parents=True, exist_ok=True)
    Path(checklist_json).write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
    steps = [s["text"] if isinstance(s, dict) else str(s) for s in out["next_steps"]]
    Path(checklist_md).write_text(checklist_markdown(
        out, "Verdict: can this dataset support the task?",
        f"**Dataset: {out['overall']}** (the worst of the data checks below); pipeline ruled out? "
        f"**{out['checks'][-1]['value']}** ({out['checks'][-1]['status']})", steps))
    for c in out["checks"]:
        log.info("%s: %s (%s)", c["id"], c["status"], c["value"])
    log.info("dataset: %s", out["overall"])
    return out

