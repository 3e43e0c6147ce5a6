"""The report's "Pipeline ruled out?" part: the sanity checks and usseg's models beside the nnU-Net reference.

`pipeline_context` reads the files of a `PipelineFiles` (named by the report
rule) and returns a plain dict, which the report's section
(usseg.report.sections.pipeline) renders. Nothing here is typed in: every status,
difference and sentence is computed from these files.

- `sanity`: results/sanity/{experiment}.json for every network experiment and
  `round_trip`: results/sanity/label_round_trip.json (usseg.checks.sanity): PASS/FAIL
  with their numbers and thresholds.
- `nnunet`: results/nnunet/eval/{test_set}/summary.json (usseg's own evaluation
  of nnU-Net's predictions) and `nnunet_info`: results/nnunet/reference.json
  (its schedule).
- `summaries`: results/experiments/{experiment}/eval/{test_set}/summary.json.

- `histories`: results/experiments/{experiment}/history.csv: the real model's
  validation Dice, against which the shuffled-label control is read.

The comparison is paired on subjects: per test subject, a model's term of the
class-macro mean Dice over the experiment's composite classes (usseg.composite;
those of the experiment's `mean_foreground`), the same classes for both
models; the difference usseg - nnU-Net has a paired t interval over subjects
(usseg.remedies.gap_stats.paired_delta; no interval below 3 subjects).

What the part can conclude, and how it says it (`pipeline_check` puts it in
the final checklist as the `pipeline` check, with its own status):

- a model below `verdict.in_domain_min_dice` on a test set of its own training
  modality has failed in-domain: said first, and no gap is read from it (FAIL);
- a failed sanity check, or nnU-Net doing better on the same subjects: No (FAIL);
- a reference shorter than nnU-Net's own schedule can only rule the pipeline
  *in* (a defect shows when it does better): when usseg is within reach of it,
  "no defect detected against a short reference" (WARN), never "the data, not
  the pipeline";
- the shuffled-label control is a positive control: when the real model does
  not beat the image-blind guess by the control's margin either, it is "not
  informative" (it could not have failed), not a PASS;
- Yes (PASS) only against nnU-Net's full schedule with informative controls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from usseg import composite, contracts, rerun
from usseg.checks.nnunet_reference import is_installed, not_installed_note
from usseg.experiment import Experiment
from usseg.remedies.gap_stats import MIN_SUBJECTS_FOR_INTERVAL, paired_delta

NOT_RUN = "NOT RUN"


@dataclass(frozen=True)
class PipelineFiles:
    """The files this part reads, as the report rule names them (usseg.report.ReportInputs.pipeline_files)."""

    sanity: dict[str, Path]  # network experiment -> its sanity checks' JSON
    round_trip: Path  # the label round trip's JSON
    nnunet: dict[str, Path]  # test set -> usseg's evaluation of nnU-Net's predictions (summary.json)
    nnunet_info: Path | None  # the reference's schedule (reference.json)
    summaries: dict[tuple[str, str], Path]  # (experiment, test set) -> usseg's summary.json
    histories: dict[str, Path] = field(default_factory=dict)  # experiment -> its training's history.csv


def sanity_experiments(config: dict) -> list[str]:
    """The experiments the training checks run for: every network (the random forest has no training loop)."""
    return [e for e in config["experiments"] if Experiment.from_config(config, e).is_network]


def _load(path: Path | None, reader: Callable[[Path], dict]) -> dict | None:
    """The file read by its contract reader, or None when it is not there (a check not run)."""
    return reader(path) if path is not None and Path(path).is_file() else None


def _num(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


NOT_INFORMATIVE = "not informative"


def real_model_val_dice(history: Path | None) -> float | None:
    """The real model's validation Dice at its last epoch (history.csv `val_dice_mean`); None when unknown."""
    if history is None or not Path(history).is_file():
        return None
    try:
        values = pd.read_csv(history)["val_dice_mean"].dropna()
    except (KeyError, ValueError, OSError):
        return None
    return float(values.iloc[-1]) if len(values) else None


def shuffled_reading(shuffled: dict, real_val: float | None) -> dict:
    """The shuffled-label control read as a positive control: informative only when the real model beats the
    image-blind guess by more than the control's margin (else a shuffled run within the margin shows nothing)."""
    chance, margin = shuffled.get("chance_dice_mean"), shuffled.get("max_dice_above_chance")
    above = None if real_val is None or chance is None else real_val - chance
    informative = None if above is None or margin is None else above > margin
    status = shuffled["status"]
    if status != "FAIL" and informative is False:
        status = NOT_INFORMATIVE
    return {"status": status, "real_val_dice": real_val, "real_above": above, "informative": informative}


def sanity_part(config: dict, files: PipelineFiles, name: Callable[[Path], str] = str) -> dict:
    """PASS/FAIL of each check with its numbers; NOT RUN for a missing result file (shown as `name` says).

    The shuffled-label control of an experiment whose real model does not beat the image-blind guess by
    the margin is "not informative" (`shuffled_reading`); `uninformative` lists those experiments."""
    rows = []
    for exp in sanity_experiments(config):
        path = files.sanity.get(exp)
        rel = name(path) if path is not None else f"the sanity checks of {exp}"
        data = _load(path, contracts.read_sanity)
        if data is None:
            rows.append({"experiment": exp, "status": NOT_RUN, "file": rel})
            continue
        o, s = data["overfit"], data["shuffled_label"]
        reading = shuffled_reading(s, real_model_val_dice(files.histories.get(exp)))
        rows.append({
            "experiment": exp, "status": data["status"], "file": rel,
            "overfit": {"status": o["status"], "dice": o["dice_mean"], "threshold": o["min_dice"],
                        "images": o["images"], "subjects": o["subjects"], "epochs": o["epochs"],
                        "epochs_trained": o["epochs_trained"]},
            "shuffled": {"status": reading["status"], "dice": s["dice_mean_last_epoch"],
                         "chance": s["chance_dice_mean"], "above": s["dice_above_chance"],
                         "threshold": s["max_dice_above_chance"], "real_val_dice": reading["real_val_dice"],
                         "real_above": reading["real_above"], "informative": reading["informative"],
                         "val_images": s["val_images"], "val_subjects": s["val_subjects"], "epochs": s["epochs"]},
        })
    rel = name(files.round_trip)
    rt = _load(files.round_trip, contracts.read_round_trip)
    round_trip = {"status": NOT_RUN, "file": rel} if rt is None else {
        "status": rt["status"], "file": rel, "images": rt["images"], "subjects": rt["subjects"],
        "worst_mismatch": rt["worst_mismatch"], "threshold": rt["max_mismatch"], "failures": len(rt["failures"]),
        "message": rt["message"]}
    statuses = [r["status"] for r in rows] + [round_trip["status"]]
    overall = "FAIL" if "FAIL" in statuses else (NOT_RUN if NOT_RUN in statuses else "PASS")
    uninformative = [r for r in rows if r["status"] != NOT_RUN and r["shuffled"]["status"] == NOT_INFORMATIVE]
    return {"status": overall, "experiments": rows, "round_trip": round_trip, "uninformative": uninformative}


def _modality_domain(config: dict, test_set: str) -> str | None:
    for m, spec in config["dataset"]["modalities"].items():
        if test_set == contracts.test_set_name(m):
            return spec.get("domain")
    return None


def subject_scores(summary: dict, classes: list[str]) -> dict[str, float]:
    """subject -> its term of the class-macro mean Dice over `classes` (usseg.composite.subject_terms),
    from summary.json's per_subject; NaN where none of the classes is scored."""
    return composite.subject_terms(composite.summary_values(summary, classes)).to_dict()


def in_domain_test_sets(config: dict, experiment: str) -> list[str]:
    """The run's test sets of the experiment's own training modalities."""
    mods = Experiment.from_config(config, experiment).train_modalities
    return [ts for ts in config["test_sets"] if any(ts == contracts.test_set_name(m) for m in mods)]


def in_domain_failures(config: dict, summaries: Mapping[tuple[str, str], dict | None]) -> list[dict]:
    """Experiments whose class-macro mean Dice on a test set of their own domain is below
    verdict.in_domain_min_dice: [{experiment, test_set, dice, threshold, text}], in config order."""
    threshold = float(config["verdict"]["in_domain_min_dice"])
    out = []
    for exp in config["experiments"]:
        for ts in in_domain_test_sets(config, exp):
            s = summaries.get((exp, ts))
            fg = (s or {}).get("mean_foreground") or {}
            dice = _num(fg.get("dice")) if fg.get("dice") is not None else None
            if dice is None or dice >= threshold:
                continue
            ci = fg.get("ci95")
            at = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "no interval"
            # The epochs are said because a short first run (configs/quick.yaml) fails here for its brevity.
            epochs = Experiment.from_config(config, exp).epochs
            text = (f"{exp} fails in its own domain: {composite.NAME} {dice:.2f} ({at}, {fg.get('n_subjects', 0)} "
                    f"subjects) on {ts}, below {threshold:.2f} (verdict.in_domain_min_dice), after {epochs} "
                    "epochs of training. A model that learns nothing where it was trained points at the training "
                    "first (too few epochs, the pipeline or its settings); no simulator-to-real gap is read from it.")
            out.append({"experiment": exp, "test_set": ts, "dice": dice, "threshold": threshold, "text": text})
            break
    return out


def comparison_rows(config: dict, summaries: dict[tuple[str, str], Path], reference: dict[str, dict]) -> list[dict]:
    """One row per usseg experiment and test set: usseg, nnU-Net and the paired difference on the same subjects."""
    rows = []
    for exp in config["experiments"]:
        for ts in config["test_sets"]:
            ours = _load(summaries.get((exp, ts)), contracts.read_summary)
            ref = reference.get(ts)
            if ours is None or ref is None:
                continue
            classes = list((ours.get("mean_foreground") or {}).get("classes") or ours.get("dice") or [])
            ref_terms, our_terms = composite.paired_terms(composite.summary_values(ref, classes),
                                                          composite.summary_values(ours, classes))
            d = paired_delta(ref_terms, our_terms)
            has_ci = d.n_subjects >= MIN_SUBJECTS_FOR_INTERVAL
            rows.append({
                "experiment": exp, "test_set": ts, "domain": _modality_domain(config, ts),
                "classes": classes, "n_subjects": d.n_subjects,
                "usseg": _num(d.value), "nnunet": _num(d.baseline), "delta": _num(d.delta),
                "ci": [_num(d.ci_lo), _num(d.ci_hi)] if has_ci else None, "method": d.method,
            })
    return rows


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _ci(row: dict) -> str:
    if row["ci"] is None:
        return f"no interval: {row['n_subjects']} subjects"
    return f"95% CI {row['ci'][0]:+.2f} to {row['ci'][1]:+.2f}, {row['n_subjects']} subjects"


FULL_SCHEDULE = (1000, 250)  # nnU-Net's own epochs and iterations per epoch
NO_DEFECT = "no defect detected against a short reference"


def is_short_schedule(info: dict | None) -> bool:
    """Whether the reference trained for less than nnU-Net's own schedule (unknown counts as short)."""
    if not info:
        return True
    return int(info.get("epochs", 0)) * int(info.get("iterations_per_epoch", 0)) < FULL_SCHEDULE[0] * FULL_SCHEDULE[1]


def schedule_text(info: dict | None) -> str:
    """The reference's schedule against nnU-Net's own, e.g. '10 of nnU-Net's 250,000 training iterations, 0.004 %'."""
    full = FULL_SCHEDULE[0] * FULL_SCHEDULE[1]
    if not info:
        return f"its schedule is unknown (results/nnunet/reference.json); nnU-Net's own is {full:,} iterations"
    done = int(info.get("epochs", 0)) * int(info.get("iterations_per_epoch", 0))
    return f"{done:,} of nnU-Net's {full:,} training iterations, {100 * done / full:.3g} %"


def _real_image_statement(exp: str, head: str, real: dict, ours_drop: float, ref_drop: float,
                          within: float, short: str = "") -> tuple[str, str]:
    """(verdict, text) once usseg is within reach of nnU-Net on simulator images: judged on the real
    images by the paired interval of usseg - nnU-Net on the same real subjects, not by comparing the two
    models' drops (a reference near the floor on both test sets has no drop to show). `short`: the
    reference's schedule when it is shorter than nnU-Net's own (it can then rule the pipeline in, not out)."""
    ts = real["test_set"]
    at = f"({ts}: {_fmt(real['delta'])}, {_ci(real)})"
    if real["ci"] is None:
        return "undecided", (f"{head}; on real images {at} there are too few test subjects for an interval, so "
                             "the comparison cannot say whether the real-image gap is the pipeline's or the data's.")
    lo, hi = real["ci"]
    if hi < -within:
        return "pipeline", (f"{head}, but on real images nnU-Net does better on the same subjects {at}: the "
                            "real-image gap is partly usseg's, not only the data's.")
    if lo < -within:
        return "undecided", (f"{head}; on real images {at} the interval is too wide to tell whether nnU-Net does "
                             f"better there by more than {within:.2f}: more real test subjects are needed.")
    level = f"{head}, and on real images it is not below nnU-Net by more than {within:.2f} {at}"
    if short:
        return "no_defect", (f"{level}: {NO_DEFECT} ({short}). A reference this short can show a pipeline "
                             f"defect, never rule one out, so it cannot say whether {exp}'s fall of "
                             f"{ours_drop:.2f} from simulator to real images is the data's or the pipeline's.")
    if ours_drop > within:
        return "data", (f"{level}; {exp} falls by {ours_drop:.2f} from simulator to real images, nnU-Net by "
                        f"{ref_drop:.2f}. The bottleneck is the data, not the pipeline.")
    return "neither", (f"{level}; {exp} falls by {ours_drop:.2f} from simulator to real images, nnU-Net by "
                       f"{ref_drop:.2f}.")


def statements(rows: list[dict], within: float, short_schedule: bool = False, skip=(),
               schedule: str = "", label: Callable[[str], str] = str) -> list[dict]:
    """What follows, per experiment with a synthetic and a real test set: pipeline or data?

    "Within `within` of nnU-Net on simulator images" needs the difference's
    interval inside +-within, "above" and "below" the whole interval beyond
    it, "level with or above" an interval from inside to above; one that
    reaches below -within is undecided (with no interval, below 3 subjects, no
    conclusion); `label(experiment)` is how an experiment is named. Then the real
    images (_real_image_statement): nnU-Net better there (the whole interval
    below -within) makes the gap partly usseg's; usseg not below it by more
    than `within` (the whole interval above -within) makes it the data's when
    usseg falls, or, against a short reference (`short_schedule`, described by
    `schedule`), "no defect detected against a short reference"; anything
    between is undecided. Experiments in `skip` (failed in-domain) get no statement.
    """
    out = []
    short = (schedule or schedule_text(None)) if short_schedule else ""
    by_exp: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        if r["experiment"] not in skip:
            by_exp.setdefault(r["experiment"], {}).setdefault(r["domain"], []).append(r)
    for key, domains in by_exp.items():
        exp = label(key)
        for sim in domains.get("synthetic", []):
            for real in domains.get("real", []):
                if None in (sim["delta"], real["usseg"], real["nnunet"], sim["usseg"], sim["nnunet"]):
                    continue
                bound = sim["ci"] if sim["ci"] is not None else [sim["delta"], sim["delta"]]
                ours_drop = sim["usseg"] - real["usseg"]
                ref_drop = sim["nnunet"] - real["nnunet"]
                where = f"({sim['test_set']}: {_fmt(sim['delta'])}, {_ci(sim)})"
                if sim["ci"] is None:
                    verdict = "undecided"
                    text = (f"{exp} against nnU-Net on simulator images {where}: too few test subjects for an "
                            "interval, so the comparison cannot say whether the pipeline or the data limits it.")
                elif bound[1] < -within:
                    verdict = "pipeline"
                    text = (f"{exp} is below nnU-Net on simulator images {where}: on the same data and split "
                            "nnU-Net does better, so the pipeline leaves Dice on the table; fix it before blaming "
                            "the data.")
                elif bound[0] < -within:
                    verdict = "undecided"
                    text = (f"{exp} against nnU-Net on simulator images {where}: the interval reaches below "
                            f"-{within:.2f}, so it cannot tell whether nnU-Net does better: more test subjects "
                            "are needed.")
                else:
                    # Not below nnU-Net by more than `within`: what the question "is it the pipeline?" needs.
                    if bound[1] <= within:
                        head = f"{exp} is within {within:.2f} Dice of nnU-Net on simulator images {where}"
                    elif bound[0] > within:
                        head = f"{exp} is above nnU-Net on simulator images {where}"
                    else:
                        head = f"{exp} is level with or above nnU-Net on simulator images {where}"
                    verdict, text = _real_image_statement(exp, head, real, ours_drop, ref_drop, within, short)
                out.append({"experiment": key, "verdict": verdict, "text": text})
    return out


def nnunet_part(config: dict, files: PipelineFiles, name: Callable[[Path], str] = str) -> dict:
    """The reference's state (ran, switched off, not installed, not run yet), its schedule and summaries."""
    cfg = config.get("nnunet", {})
    summaries = {ts: _load(files.nnunet.get(ts), contracts.read_summary) for ts in config["test_sets"]}
    summaries = {ts: s for ts, s in summaries.items() if s is not None}
    if not cfg.get("enabled", True):
        state, note = "disabled", ("nnU-Net reference switched off (nnunet.enabled: false in the config); set it to "
                                   "true to compare usseg with nnU-Net on the same subjects.")
    elif not is_installed():
        state, note = "not_installed", not_installed_note()
    elif len(summaries) < len(config["test_sets"]):
        state, note = "not_run", (f"nnU-Net reference not run yet: `{rerun.command('nnunet_reference')}` "
                                  f"(or `{rerun.command('report')}`).")
    else:
        state, note = "ran", ""
    info = _load(files.nnunet_info, contracts.read_nnunet_reference) if state == "ran" else None
    return {"state": state, "note": note, "info": info,
            "files": [name(files.nnunet[ts]) for ts in summaries] if state == "ran" else [],
            "summaries": summaries if state == "ran" else {}}


PIPELINE_CHECK_ID, PIPELINE_CHECK_TITLE = "pipeline", "Pipeline ruled out?"


def _answer(sanity: dict, nnunet: dict, said: list[dict], failing: list[dict]) -> tuple[str, str, str]:
    """(status, badge, answer): what the evidence supports, most serious first (module docstring)."""
    verdicts = {s["verdict"] for s in said}
    short = is_short_schedule(nnunet["info"])
    uninformative = [r["experiment"] for r in sanity.get("uninformative", [])]
    caveat = ""
    if uninformative:
        caveat = (f" The shuffled-label control is not informative for {', '.join(uninformative)}: the real model "
                  "does not beat the image-blind guess by the control's margin either, so a shuffled run within "
                  "the margin could not have failed.")
    if failing:
        return "FAIL", "No", "No: " + " ".join(f["text"] for f in failing)
    if sanity["status"] == "FAIL":
        return "FAIL", "No", ("No: a sanity check FAILs, so the pipeline is not ruled out; fix it before reading the "
                              "data's numbers.")
    if sanity["status"] == NOT_RUN:
        return "WARN", "Not yet", f"Not yet: some sanity checks have not run (`{rerun.command('sanity_checks')}`)."
    if "pipeline" in verdicts:
        return "FAIL", "No", "No: the sanity checks PASS, but nnU-Net does better on the same subjects (below)."
    if said and verdicts <= {"data", "neither"} and not short and not uninformative:
        return "PASS", "Yes", "Yes: the sanity checks PASS and usseg is within reach of nnU-Net on the same subjects."
    if said and verdicts <= {"data", "neither", "no_defect"}:
        if short:
            return "WARN", "No defect found", (
                f"Not ruled out: {NO_DEFECT} ({schedule_text(nnunet['info'])}). The sanity checks PASS and usseg "
                "is within reach of that reference, but a reference this short can only show a defect, not rule "
                "one out: run nnU-Net's full schedule (configs/article.yaml)." + caveat)
        return "WARN", "Not ruled out", ("Not ruled out: the sanity checks PASS and usseg is within reach of nnU-Net "
                                         "on the same subjects." + caveat)
    why = nnunet["note"] or "the nnU-Net comparison below does not settle it"
    return "WARN", "Not ruled out", f"Not ruled out: the sanity checks PASS; {why[0].lower()}{why[1:]}" + (
        "" if why.endswith(".") else ".") + caveat


def pipeline_context(config: dict, files: PipelineFiles, name: Callable[[Path], str] = str,
                     label: Callable[[str], str] = str) -> dict:
    """Everything the "Pipeline ruled out?" part shows, computed from `files`; `name(path)` is how a file is
    shown, `label(experiment)` how an experiment is named (usseg.names)."""
    within = float(config.get("nnunet", {}).get("within_dice", 0.05))
    sanity = sanity_part(config, files, name)
    nnunet = nnunet_part(config, files, name)
    summaries = {key: _load(path, contracts.read_summary) for key, path in files.summaries.items()}
    failing = in_domain_failures(config, summaries)
    rows = comparison_rows(config, files.summaries, nnunet["summaries"])
    said = statements(rows, within, short_schedule=is_short_schedule(nnunet["info"]),
                      skip={f["experiment"] for f in failing}, schedule=schedule_text(nnunet["info"]), label=label)
    status, badge, answer = _answer(sanity, nnunet, said, failing)
    return {"answer": answer, "status": status, "badge": badge, "in_domain_failures": failing, "sanity": sanity,
            "nnunet": nnunet, "comparison": rows, "statements": said, "within_dice": within,
            "short_schedule": is_short_schedule(nnunet["info"]),
            "min_subjects_for_interval": MIN_SUBJECTS_FOR_INTERVAL}


def pipeline_check(config: dict, files: PipelineFiles) -> dict:
    """The `pipeline` check of the final checklist (results/verdict/checklist.json): the answer with its own
    status, in the diagnostics checks' shape {id, title, status, value, threshold, reason}."""
    ctx = pipeline_context(config, files)
    within = ctx["within_dice"]
    threshold = (f"sanity checks PASS with an informative shuffled-label control; class-macro mean Dice in the "
                 f"model's own domain >= {float(config['verdict']['in_domain_min_dice']):.2f}; usseg not below "
                 f"nnU-Net's full schedule ({FULL_SCHEDULE[0]} epochs of {FULL_SCHEDULE[1]} iterations) by more "
                 f"than {within:.2f} Dice on the same subjects")
    reason = " ".join([ctx["answer"], *(s["text"] for s in ctx["statements"])])
    return {"id": PIPELINE_CHECK_ID, "title": PIPELINE_CHECK_TITLE, "status": ctx["status"], "value": ctx["badge"],
            "threshold": threshold, "reason": reason}
