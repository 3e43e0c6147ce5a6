"""The report's "What would help" section (HTML id `gap`) from results/gap/ (docs/remedies.md).

`gap_context` reads the study's outputs and returns what the template
templates/gap.html.j2 shows: the remedies as a forest plot of their paired
deltas (each seed's effect beside the interval with seeds included), the LOSO
score per held-out subject with its spread between seeds, the learning curve,
"when to stop" per kind of change, and a plain-language conclusion in which
every claim follows from an interval that includes training noise
(`conclusion_sentences`). `rank_next_steps` orders the remedies by their
measured effect, and `verdict_ranking` words it, with "when to stop", for the
verdict's "what to try next" (usseg.report.sections.verdict). Each remedy is
named by its title (gap_study.remedies.<key>.title), its key beside it.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from usseg import contracts
from usseg.remedies import gap_stats
from usseg.remedies.spec import gap_baseline, gap_remedy_titles

SECTION_ID = "gap"
FILES = ("gap_closure.csv", "seed_effects.csv", "loso.csv", "learning_curve.csv", "when_to_stop.json")
DEMO_NOTE = ("On the generated demo dataset these effects illustrate the method; they are not facts about real "
             "ultrasound.")
METRIC_NAMES = {"dice": "Dice", "surface_dice": "surface Dice"}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(x, spec: str = ".2f") -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else format(float(x), spec)


def _signed(x) -> str:
    # Three decimals: with two, an interval end of -0.0015 would read "-0.00", as if it touched 0.
    return _fmt(x, "+.3f")


def interval_word(lo, hi) -> str:
    """'above 0', 'below 0', 'spans 0' or 'none' (no interval): what a paired interval supports."""
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return "none"
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "spans 0"


def _count(value) -> int:
    return int(value) if value is not None and math.isfinite(float(value)) else 0


def effect_text(row, test_set_label: str) -> str:
    """One remedy's measured effect in words, without its name; the claim is what its interval, seeds
    included, supports, nothing more."""
    metric = METRIC_NAMES.get(row["metric"], row["metric"])
    n, seeds = _count(row["n_subjects"]), _count(row.get("n_seeds", 1))
    spread = (f", between-seed SD of the change {_fmt(row['seed_sd'], '.3f')}" if seeds >= 2 else "")
    measured = (f"changed {test_set_label} {metric} by {_signed(row['delta'])} "
                f"(from {_fmt(row['baseline'], '.3f')} to {_fmt(row['value'], '.3f')}, {n} subjects x {seeds} "
                f"seed{'s' if seeds != 1 else ''}{spread}")
    word = interval_word(row["ci_lo"], row["ci_hi"])
    ci = f"95% CI with seeds {_signed(row['ci_lo'])} to {_signed(row['ci_hi'])}"
    if word == "none":
        why = ("too few subjects for an interval" if n < gap_stats.MIN_SUBJECTS_FOR_INTERVAL else
               "one training per arm, so the training noise is unmeasured")
        return f"{measured}; {why}): no claim either way."
    if word == "above 0":
        return f"{measured}, {ci}): an improvement the subjects and seeds support."
    if word == "below 0":
        return f"{measured}, {ci}): it made things worse."
    return f"{measured}, {ci}): no detectable change, which is not the same as no effect."


def effect_sentence(name: str, row, test_set_label: str) -> str:
    """One remedy's measured effect in words, starting with its name (`effect_text`)."""
    return f"{name} {effect_text(row, test_set_label)}"


def rank_next_steps(closure: pd.DataFrame, test_set: str, metric: str = "dice") -> list[dict]:
    """The remedies ranked by their measured delta on `test_set` (best first), each with its interval word.

    For the verdict's "what to try next": ranked by measurement, not a fixed list.
    """
    ranked = gap_stats.rank_remedies(closure, test_set, metric)
    return [{"remedy": r["remedy"], "metric": metric, "test_set": test_set, "baseline": float(r["baseline"]),
             "value": float(r["value"]), "delta": float(r["delta"]), "ci_lo": float(r["ci_lo"]),
             "ci_hi": float(r["ci_hi"]), "n_subjects": r["n_subjects"], "n_seeds": r.get("n_seeds", 1),
             "seed_sd": float(r.get("seed_sd", math.nan)), "interval": r["interval"]}
            for r in ranked.to_dict("records")]


CURVE_MEANING = {
    "improving": "more simulator subjects helped on these test subjects, training noise included",
    "worse": "the last step made things worse",
    "no detectable change": "no detectable change, which is not the same as no effect",
    "undetermined": "no interval (too few subjects, or one training per share)",
}


def conclusion_sentences(closure: pd.DataFrame, curve: pd.DataFrame, target: str, labels: dict,
                         titles: Mapping[str, str] | None = None) -> list[str]:
    """The plain-language conclusion: every remedy's effect on real-image Dice, then the learning curve."""
    out = [effect_sentence(remedy_label(r["remedy"], titles), r, labels.get(target, target))
           for r in rank_next_steps(closure, target)]
    for test_set, group in curve[curve["metric"] == "dice"].groupby("test_set", sort=True) if len(curve) else []:
        group = group.sort_values("level")
        verdict = gap_stats.learning_curve_verdict(group.reset_index(drop=True))
        if len(group) < 2:
            continue
        last = group.iloc[-1]
        share = f"{_fmt(group.iloc[-2]['level'] * 100, '.0f')} % to {_fmt(last['level'] * 100, '.0f')} %"
        seeds = _count(last.get("n_seeds", 1))
        ci = ("no interval" if verdict == "undetermined" else
              f"95% CI with seeds {_signed(last['step_ci_lo'])} to {_signed(last['step_ci_hi'])}")
        out.append(f"More simulator data, {labels.get(test_set, test_set)}: going from {share} of the simulator "
                   f"training subjects changed Dice by {_signed(last['step_delta'])} "
                   f"({ci}, {int(last['step_n_subjects'])} subjects x {seeds} seed{'s' if seeds != 1 else ''}, "
                   f"between-seed SD {_fmt(last.get('step_seed_sd', math.nan), '.3f')}): {CURVE_MEANING[verdict]}.")
    return out


# ----------------------------------------------------------------------------- the verdict's "what to try next"

# The keys of when_to_stop.json the verdict reads (contracts.WHEN_TO_STOP_KEYS, each kind's
# contracts.WHEN_TO_STOP_KIND_KEYS).
STOP_KEYS = contracts.WHEN_TO_STOP_KEYS


def target_test_set(config: dict) -> str:
    """The real-image test set the study ranks on: test_{target_modality}, as the gap rules name it."""
    return f"test_{str(config['dataset']['target_modality']).lower()}"


def remedy_label(remedy: str, titles: Mapping[str, str] | None = None) -> str:
    """A gap_closure.csv remedy's human name: its title (gap_study.remedies.<key>.title, or LOSO's), else the key."""
    return {**gap_remedy_titles({}), **(titles or {})}.get(remedy, remedy)


def ranked_steps(closure: pd.DataFrame, test_set: str, test_set_label: str,
                 titles: Mapping[str, str] | None = None) -> list[dict]:
    """The remedies on `test_set` Dice, best measured change first, each with its name (`label`), the words
    of what its interval supports (`effect`, and `sentence` = name + effect) and whether the interval
    excludes 0."""
    out = []
    for r in rank_next_steps(closure, test_set):
        label = remedy_label(r["remedy"], titles)
        effect = effect_text(r, test_set_label)
        out.append({**r, "label": label, "excludes_zero": r["interval"] in ("above 0", "below 0"),
                    "effect": effect, "sentence": f"{label} {effect}"})
    return out


def _names(steps: list[dict]) -> str:
    names = [s["label"] for s in steps]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ranking_summary(steps: list[dict], test_set_label: str) -> str:
    """Which intervals exclude 0, in words; an interval that includes 0 is never called an improvement."""
    if not steps:
        return f"The gap study measured no remedy on {test_set_label} Dice."
    above = [s for s in steps if s["interval"] == "above 0"]
    below = [s for s in steps if s["interval"] == "below 0"]
    rest = len(steps) - len(above) - len(below)
    parts = []
    if above:
        parts.append(f"the interval of {_names(above)} lies above 0 (an improvement the subjects and seeds "
                     "support)")
    if below:
        parts.append(f"the interval of {_names(below)} lies below 0 (made things worse)")
    if parts:
        text = f"Of {len(steps)} measured remedies, " + "; ".join(parts) + "."
        if rest:
            text += (f" The other {rest} showed no detectable change (their intervals include 0 or could not "
                     "be computed).")
    else:
        text = (f"No interval excludes 0: none of the {len(steps)} measured remedies changed {test_set_label} "
                "Dice detectably, training noise included, which is not the same as no effect.")
    return (text + " The order is by the measured mean change; it is not a test between remedies, whose "
            "intervals may overlap.")


def when_to_stop_paragraph(stop: Mapping) -> str:
    """"When to stop" from when_to_stop.json: per kind of change (a remedy; adding labeled real subjects),
    the smallest detectable change in real-image Dice now and the labeled real subjects a change of
    gap_study.change_to_detect needs, as ranges from the SD's interval; each sized with its own spread."""
    kinds = stop.get("kinds") or {}
    n, test_set = int(stop["n_subjects"]), stop.get("test_set", "the real test set")
    head = (f"On {test_set} ({n} labeled real subject{'s' if n != 1 else ''}; two-sided alpha "
            f"{float(stop['alpha']):g}, power {float(stop['power']):g}; a change of {float(stop['change']):.3f} "
            "is gap_study.change_to_detect), each kind of change is sized with its own spread.")
    parts = [str(entry["text"]) for entry in kinds.values()]
    tail = ""
    remedy = kinds.get("remedy") or {}
    if remedy.get("estimable") and remedy.get("minimum_detectable_change") is not None:
        tail = (f" Until more labeled real subjects (or seeds) are added, a remedy that can only be expected to "
                f"gain less than {float(remedy['minimum_detectable_change']):.3f} cannot be told from no change.")
    return " ".join([head, *parts]) + tail


def verdict_ranking(closure: pd.DataFrame, stop: Mapping, test_set: str, test_set_label: str,
                    titles: Mapping[str, str] | None = None) -> dict:
    """What the verdict shows when the gap study ran: the ranked remedies, which intervals exclude 0,
    and "when to stop"; every number read from gap_closure.csv and when_to_stop.json."""
    missing = [c for c in contracts.GAP_CLOSURE_COLUMNS if c not in closure.columns]
    if missing:
        raise ValueError(f"gap_closure.csv lacks the column(s) {', '.join(missing)}")
    missing = [k for k in STOP_KEYS if k not in stop]
    if missing:
        raise ValueError(f"when_to_stop.json lacks the key(s) {', '.join(missing)}")
    for kind, entry in (stop.get("kinds") or {}).items():
        missing = [k for k in contracts.WHEN_TO_STOP_KIND_KEYS if k not in entry]
        if missing:
            raise ValueError(f"when_to_stop.json kinds.{kind} lacks the key(s) {', '.join(missing)}")
    steps = ranked_steps(closure, test_set, test_set_label, titles)
    return {"test_set": test_set_label, "steps": steps, "summary": ranking_summary(steps, test_set_label),
            "when_to_stop": when_to_stop_paragraph(stop)}


# ----------------------------------------------------------------------------- figures


def forest_figure(closure: pd.DataFrame, effects: pd.DataFrame | None = None,
                  titles: Mapping[str, str] | None = None) -> str | None:
    """The remedies' paired deltas (Dice and surface Dice, every test set): the interval with seeds included
    (line), the mean change (dot) and each seed's change (small grey marks, from seed_effects.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = closure[closure["metric"].isin(list(METRIC_NAMES))].reset_index(drop=True)
    if rows.empty:
        return None
    panels = sorted(rows.groupby(["test_set", "metric"]).groups)
    remedies = sorted(rows["remedy"].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.5 * len(remedies) + 1.4),
                             sharey=True, squeeze=False)
    for ax, (test_set, metric) in zip(axes[0], panels):
        sub = rows[(rows["test_set"] == test_set) & (rows["metric"] == metric)].set_index("remedy")
        for y, remedy in enumerate(remedies):
            if remedy not in sub.index:
                continue
            r = sub.loc[remedy]
            if math.isfinite(r["ci_lo"]) and math.isfinite(r["ci_hi"]):
                ax.plot([r["ci_lo"], r["ci_hi"]], [y, y], color="0.3")
            if effects is not None and len(effects):
                mine = effects[(effects["remedy"] == remedy) & (effects["test_set"] == test_set)
                               & (effects["metric"] == metric)]
                ax.plot(mine["delta"], [y + 0.18] * len(mine), "|", color="0.55", ms=6)
            ax.plot(r["delta"], y, "o", color="tab:blue")
        ax.axvline(0, color="tab:red", lw=0.8)
        ax.set_title(f"{test_set}, {METRIC_NAMES[metric]}", fontsize=9)
        ax.set_xlabel("change vs baseline")
    axes[0][0].set_yticks(range(len(remedies)), [remedy_label(r, titles) for r in remedies])
    axes[0][0].invert_yaxis()
    return _png(fig)


def loso_figure(loso: pd.DataFrame) -> str | None:
    """Each held-out subject's Dice and surface Dice (mean over seeds), with the SD between seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if loso.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(3.0, 0.5 * len(loso) + 1.5), 2.6))
    x = np.arange(len(loso))
    for shift, metric, label in ((-0.2, "dice", "Dice"), (0.2, "surface_dice", "surface Dice")):
        sd = loso[f"{metric}_seed_sd"].astype(float).fillna(0.0) if f"{metric}_seed_sd" in loso else None
        ax.bar(x + shift, loso[metric], 0.4, yerr=sd, capsize=2, label=label)
    ax.set_xticks(x, loso["held_out_subject"].astype(str), rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out real subject")
    ax.legend(fontsize=8)
    return _png(fig)


def curve_figure(curve: pd.DataFrame) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = curve[curve["metric"] == "dice"]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 2.8))
    for test_set, group in rows.groupby("test_set", sort=True):
        group = group.sort_values("level")
        # No interval (one seed, or fewer than 3 subjects): the point alone.
        low = (group["mean"] - group["ci_lo"]).fillna(0.0)
        high = (group["ci_hi"] - group["mean"]).fillna(0.0)
        ax.errorbar(group["level"] * 100, group["mean"], yerr=[low, high], marker="o", capsize=3, label=test_set)
    ax.set_xlabel("% of simulator training subjects")
    ax.set_ylabel("subject-level Dice (95% CI, seeds incl.)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _png(fig)


# ----------------------------------------------------------------------------- the section

TABLE_FORMATS = {"baseline": ".3f", "value": ".3f", "delta": "+.3f", "ci_lo": "+.3f", "ci_hi": "+.3f",
                 "seed_sd": ".3f"}


def closure_rows(closure: pd.DataFrame, titles: Mapping[str, str] | None = None) -> list[dict]:
    """gap_closure.csv's rows as the template shows them: the remedy's title and key, then each column
    formatted (counts as whole numbers, empty where there is none)."""
    out = []
    for row in closure.to_dict("records"):
        cells = []
        for col in contracts.GAP_CLOSURE_COLUMNS[1:]:
            value = row[col]
            if col in TABLE_FORMATS:
                cells.append(_fmt(value, TABLE_FORMATS[col]))
            elif col in ("n_subjects", "n_seeds"):
                cells.append(str(int(value)) if value is not None and math.isfinite(float(value)) else "")
            else:
                cells.append(str(value))
        out.append({"remedy": row["remedy"], "title": remedy_label(row["remedy"], titles), "cells": cells})
    return out


def gap_context(config: dict, files: dict) -> dict | None:
    """What templates/gap.html.j2 renders; None when the study is off.

    `files`: the gap_summary rule's outputs by name (gap_closure, seed_effects, loso, learning_curve,
    when_to_stop).
    """
    if not config.get("gap_study", {}).get("enabled"):
        return None
    closure = contracts.read_gap_closure(files["gap_closure"])
    effects = contracts.read_seed_effects(files["seed_effects"]) if "seed_effects" in files else None
    loso = contracts.read_loso(files["loso"])
    curve = contracts.read_learning_curve(files["learning_curve"])
    stop = contracts.read_when_to_stop(files["when_to_stop"])
    target = target_test_set(config)
    titles = gap_remedy_titles(config)
    labels = {ts: f"{ts} ({'real' if ts == target else 'simulator'})" for ts in config["test_sets"]}
    spread = gap_stats.loso_spread(pd.Series(loso["dice"].to_numpy(float), index=loso["held_out_subject"])) \
        if len(loso) else None
    return {
        "section_id": SECTION_ID,
        "baseline": gap_baseline(config),
        "seeds": int(config["gap_study"].get("seeds", 1)),
        "demo": config.get("data_root") is None,
        "demo_note": DEMO_NOTE,
        "columns": list(contracts.GAP_CLOSURE_COLUMNS),
        "rows": closure_rows(closure, titles),
        "forest_png": forest_figure(closure, effects, titles),
        "loso_png": loso_figure(loso),
        "loso_spread": None if spread is None else {k: _fmt(v) if k != "n_subjects" else v for k, v in spread.items()},
        "curve_png": curve_figure(curve),
        "conclusion": conclusion_sentences(closure, curve, target, labels, titles),
        "when_to_stop": when_to_stop_paragraph(stop),
        "next_steps": ranked_steps(closure, target, labels.get(target, target), titles),
        "target": labels.get(target, target),
    }


def render_gap_section(config: dict, files: dict) -> str:
    """The section's HTML ('' when the study is off), from templates/gap.html.j2 (`files`: as for gap_context)."""
    context = gap_context(config, files)
    if context is None:
        return ""
    env = Environment(loader=PackageLoader("usseg", "templates"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("gap.html.j2").render(**context)
