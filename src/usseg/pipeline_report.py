"""The report's "Pipeline ruled out?" part: the sanity checks and usseg's models beside the nnU-Net reference.

`pipeline_context` reads the files of a `PipelineFiles` (named by the report
rule) and returns a plain dict; `render_html` renders it with
templates/pipeline_checks.html.j2. Nothing here is typed in: every status,
difference and sentence is computed from these files.

- `sanity`: results/sanity/{experiment}.json for every network experiment and
  `round_trip`: results/sanity/label_round_trip.json (usseg.sanity): PASS/FAIL
  with their numbers and thresholds.
- `nnunet`: results/nnunet/eval/{test_set}/summary.json (usseg's own evaluation
  of nnU-Net's predictions) and `nnunet_info`: results/nnunet/reference.json
  (its schedule).
- `summaries`: results/experiments/{experiment}/eval/{test_set}/summary.json.

The comparison is paired on subjects: per test subject, a model's score is
its mean Dice over the experiment's foreground classes (those of the
experiment's `mean_foreground`), the same classes for both models;
the difference usseg - nnU-Net has a paired t interval over subjects
(usseg.remedies.gap_stats.paired_delta; no interval below 3 subjects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from usseg import contracts
from usseg.experiment import Experiment
from usseg.nnunet_reference import NOT_INSTALLED, is_installed
from usseg.remedies.gap_stats import MIN_SUBJECTS_FOR_INTERVAL, paired_delta

TEMPLATE = "templates/pipeline_checks.html.j2"
NOT_RUN = "NOT RUN"


@dataclass(frozen=True)
class PipelineFiles:
    """The files this part reads, as the report rule names them (usseg.report.ReportInputs.pipeline_files)."""

    sanity: dict[str, Path]  # network experiment -> its sanity checks' JSON
    round_trip: Path  # the label round trip's JSON
    nnunet: dict[str, Path]  # test set -> usseg's evaluation of nnU-Net's predictions (summary.json)
    nnunet_info: Path | None  # the reference's schedule (reference.json)
    summaries: dict[tuple[str, str], Path]  # (experiment, test set) -> usseg's summary.json


def sanity_experiments(config: dict) -> list[str]:
    """The experiments the training checks run for: every network (the random forest has no training loop)."""
    return [e for e in config["experiments"] if Experiment.from_config(config, e).is_network]


def _load(path: Path | None, reader: Callable[[Path], dict]) -> dict | None:
    """The file read by its contract reader, or None when it is not there (a check not run)."""
    return reader(path) if path is not None and Path(path).is_file() else None


def _num(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def sanity_part(config: dict, files: PipelineFiles, name: Callable[[Path], str] = str) -> dict:
    """PASS/FAIL of each check with its numbers; NOT RUN for a missing result file (shown as `name` says)."""
    rows = []
    for exp in sanity_experiments(config):
        path = files.sanity.get(exp)
        rel = name(path) if path is not None else f"the sanity checks of {exp}"
        data = _load(path, contracts.read_sanity)
        if data is None:
            rows.append({"experiment": exp, "status": NOT_RUN, "file": rel})
            continue
        o, s = data["overfit"], data["shuffled_label"]
        rows.append({
            "experiment": exp, "status": data["status"], "file": rel,
            "overfit": {"status": o["status"], "dice": o["dice_mean"], "threshold": o["min_dice"],
                        "images": o["images"], "subjects": o["subjects"], "epochs": o["epochs"],
                        "epochs_trained": o["epochs_trained"]},
            "shuffled": {"status": s["status"], "dice": s["dice_mean_last_epoch"], "chance": s["chance_dice_mean"],
                         "above": s["dice_above_chance"], "threshold": s["max_dice_above_chance"],
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
    return {"status": overall, "experiments": rows, "round_trip": round_trip}


def _modality_domain(config: dict, test_set: str) -> str | None:
    for m, spec in config["dataset"]["modalities"].items():
        if test_set == contracts.test_set_name(m):
            return spec.get("domain")
    return None


def subject_scores(summary: dict, classes: list[str]) -> dict[str, float]:
    """subject -> mean Dice over `classes` of summary.json's per_subject (NaN where none is scored)."""
    out = {}
    for subject, per_class in (summary.get("per_subject") or {}).items():
        values = [per_class.get(c) for c in classes]
        values = [v for v in values if v is not None and math.isfinite(v)]
        out[subject] = sum(values) / len(values) if values else math.nan
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
            d = paired_delta(subject_scores(ref, classes), subject_scores(ours, classes))
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
SHORT_CAVEAT = (" (against a short nnU-Net schedule, a sanity reference that is itself undertrained: this cannot "
                "rule the pipeline out until the full schedule has run, e.g. configs/article.yaml)")


def is_short_schedule(info: dict | None) -> bool:
    """Whether the reference trained for less than nnU-Net's own schedule (unknown counts as short)."""
    if not info:
        return True
    return int(info.get("epochs", 0)) * int(info.get("iterations_per_epoch", 0)) < FULL_SCHEDULE[0] * FULL_SCHEDULE[1]


def _real_image_statement(exp: str, head: str, real: dict, ours_drop: float, ref_drop: float,
                          within: float) -> tuple[str, str]:
    """(verdict, text) once usseg is within reach of nnU-Net on simulator images: judged on the real
    images by the paired interval of usseg - nnU-Net on the same real subjects, not by comparing the two
    models' drops (a reference near the floor on both test sets has no drop to show)."""
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
    if ours_drop > within:
        return "data", (f"{head}, and on real images it is not below nnU-Net by more than {within:.2f} {at}; "
                        f"{exp} falls by {ours_drop:.2f} from simulator to real images, nnU-Net by "
                        f"{ref_drop:.2f}. The bottleneck is the data, not the pipeline.")
    return "neither", (f"{head}, and on real images it is not below nnU-Net by more than {within:.2f} {at}; "
                       f"{exp} falls by {ours_drop:.2f} from simulator to real images, nnU-Net by {ref_drop:.2f}.")


def statements(rows: list[dict], within: float, short_schedule: bool = False) -> list[dict]:
    """What follows, per experiment with a synthetic and a real test set: pipeline or data?

    "Within `within` of nnU-Net on simulator images" needs the difference's
    interval inside +-within, "above" and "below" the whole interval beyond
    it, "level with or above" an interval from inside to above; one that
    reaches below -within is undecided (with no interval, below 3 subjects, no
    conclusion). Then the real
    images (_real_image_statement): nnU-Net better there (the whole interval
    below -within) makes the gap partly usseg's; usseg not below it by more
    than `within` (the whole interval above -within) makes it the data's when
    usseg falls; anything between is undecided.
    """
    out = []
    by_exp: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_exp.setdefault(r["experiment"], {}).setdefault(r["domain"], []).append(r)
    for exp, domains in by_exp.items():
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
                    verdict, text = _real_image_statement(exp, head, real, ours_drop, ref_drop, within)
                if short_schedule and verdict in ("data", "neither"):
                    text = text[:-1] + SHORT_CAVEAT + "."
                out.append({"experiment": exp, "verdict": verdict, "text": text})
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
        state, note = "not_installed", NOT_INSTALLED
    elif len(summaries) < len(config["test_sets"]):
        state, note = "not_run", "nnU-Net reference not run yet: `snakemake nnunet_reference` (or `snakemake report`)."
    else:
        state, note = "ran", ""
    info = _load(files.nnunet_info, contracts.read_nnunet_reference) if state == "ran" else None
    return {"state": state, "note": note, "info": info,
            "files": [name(files.nnunet[ts]) for ts in summaries] if state == "ran" else [],
            "summaries": summaries if state == "ran" else {}}


def pipeline_context(config: dict, files: PipelineFiles, name: Callable[[Path], str] = str) -> dict:
    """Everything the "Pipeline ruled out?" part shows, computed from `files`; `name(path)` is how a file is shown."""
    within = float(config.get("nnunet", {}).get("within_dice", 0.05))
    sanity = sanity_part(config, files, name)
    nnunet = nnunet_part(config, files, name)
    rows = comparison_rows(config, files.summaries, nnunet["summaries"])
    said = statements(rows, within, short_schedule=is_short_schedule(nnunet["info"]))
    verdicts = {s["verdict"] for s in said}
    if sanity["status"] == "FAIL":
        answer = "No: a sanity check FAILs, so the pipeline is not ruled out; fix it before reading the data's numbers."
    elif sanity["status"] == NOT_RUN:
        answer = "Not yet: some sanity checks have not run (`snakemake sanity_checks`)."
    elif "pipeline" in verdicts:
        answer = "No: the sanity checks PASS, but nnU-Net does better on the same subjects (below)."
    elif said and verdicts <= {"data", "neither"} and not is_short_schedule(nnunet["info"]):
        answer = "Yes: the sanity checks PASS and usseg is within reach of nnU-Net on the same subjects."
    elif said and verdicts <= {"data", "neither"}:
        answer = ("As far as a short nnU-Net run can tell: the sanity checks PASS and usseg is within reach of "
                  "the short reference; run nnU-Net's full schedule to rule the pipeline out.")
    else:
        answer = "Partly: the sanity checks PASS; the nnU-Net comparison below does not settle it."
    return {"answer": answer, "sanity": sanity, "nnunet": nnunet, "comparison": rows, "statements": said,
            "within_dice": within, "min_subjects_for_interval": MIN_SUBJECTS_FOR_INTERVAL}


def render_html(config: dict, files: PipelineFiles, link: Callable[[str, str, str], str] | None = None,
                name: Callable[[Path], str] = str) -> str:
    """The part as HTML. `link(base_id, title, shown_path)` returns the markup of a provenance link (optional);
    `name(path)` is how a file is shown (and passed to `link`)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    template = env.from_string(resources.files("usseg").joinpath(TEMPLATE).read_text())

    def prov(base_id: str, title: str, rel: str) -> Markup:
        return Markup(link(base_id, title, rel)) if link is not None else Markup("")

    return template.render(ctx=pipeline_context(config, files, name), prov=prov)
