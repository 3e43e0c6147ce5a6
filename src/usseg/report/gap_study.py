"""The report's "What would help" section (HTML id `gap`) from results/gap/ (docs/remedies.md).

`gap_context` reads the study's outputs and returns what the report's
section (usseg.report.sections.gap) shows: the remedies as a forest plot of
their paired deltas (each seed's effect beside the interval with seeds
included), the LOSO score per held-out subject with its spread between seeds,
the learning curve, "when to stop" per kind of change, and a plain-language
conclusion in which every claim follows from an interval that includes
training noise (`conclusion_sentences`). `rank_next_steps` orders the remedies
by their measured effect, and `verdict_ranking` words it, with "when to stop",
for the verdict's "what to try next" (usseg.report.sections.verdict). Each
remedy is named by usseg.names (its gap_study.remedies.<key>.title), its key
beside it.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping

import numpy as np
import pandas as pd

from usseg import contracts
from usseg.figure_text import MAX_WIDTH_IN, label_rows, png_bytes, pyplot
from usseg.names import Names
from usseg.remedies import gap_stats
from usseg.remedies.spec import gap_baseline

SECTION_ID = "gap"
FILES = ("gap_closure.csv", "seed_effects.csv", "loso.csv", "learning_curve.csv", "when_to_stop.json")
DEMO_NOTE = ("On the generated demo dataset these effects illustrate the method; they are not facts about real "
             "ultrasound.")
METRIC_NAMES = {"dice": "Dice", "surface_dice": "surface Dice"}


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


def effect_sentence(name: str, row, test_set_label: str) -> str:
    """One remedy's measured effect in words, starting with its name (`effect_clause`)."""
    return f"{name} {effect_clause(row, test_set_label)}"


def effect_clause(row, test_set_label: str) -> str:
    """effect_sentence without the remedy's name ("changed Dice on ... by ..."), for a page that shows the
    name with its config key; the claim is what its interval, seeds included, supports, nothing more."""
    metric = METRIC_NAMES.get(row["metric"], row["metric"])
    n, seeds = _count(row["n_subjects"]), _count(row.get("n_seeds", 1))
    spread = (f", between-seed SD of the change {_fmt(row['seed_sd'], '.3f')}" if seeds >= 2 else "")
    measured = (f"changed {metric} on the {test_set_label} by {_signed(row['delta'])} "
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


# What an interval (seeds included) supports, in the ranking table's last column.
# (No detectable change is not the same as no effect: the hover sentence and the summary say so.)
READING = {"above 0": "improvement", "below 0": "made things worse", "spans 0": "no detectable change",
           "none": "no claim (no interval)"}


def effect_cells(row) -> dict:
    """One remedy's effect as the ranking table's cells: the change (from, to), its interval with seeds,
    subjects x seeds, the between-seed SD of the change, and what the interval supports (`READING`)."""
    seeds = _count(row.get("n_seeds", 1))
    return {"change_text": f"{_signed(row['delta'])} ({_fmt(row['baseline'], '.3f')} to {_fmt(row['value'], '.3f')})",
            "ci_text": (f"{_signed(row['ci_lo'])} to {_signed(row['ci_hi'])}"
                        if interval_word(row["ci_lo"], row["ci_hi"]) != "none" else "none"),
            "n_text": f"{_count(row['n_subjects'])} x {seeds}",
            "seed_sd_text": _fmt(row.get("seed_sd"), ".3f") if seeds >= 2 else "one seed",
            "reading": READING[interval_word(row["ci_lo"], row["ci_hi"])]}


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
                         names: Names | None = None) -> list[str]:
    """The plain-language conclusion: every remedy's effect on real-image Dice (each remedy by its name,
    `names`), then the learning curve."""
    names = names or Names({})
    out = [effect_sentence(names.remedy(r["remedy"]).text, r, labels.get(target, target))
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


def ranked_steps(closure: pd.DataFrame, test_set: str, test_set_label: str, names: Names | None = None) -> list[dict]:
    """The remedies on `test_set` Dice, best measured change first, each with its name (`names`: usseg.names,
    a remedy's title), the sentence of what its interval supports (`effect_sentence`, and `clause` without
    the name) and whether the interval excludes 0."""
    names = names or Names({})
    out = []
    for r in rank_next_steps(closure, test_set):
        name = names.remedy(r["remedy"])
        out.append({**r, "name": name, "label": name.text, "excludes_zero": r["interval"] in ("above 0", "below 0"),
                    "sentence": effect_sentence(name.text, r, test_set_label),
                    "clause": effect_clause(r, test_set_label), **effect_cells(r)})
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
                    names: Names | None = None) -> dict:
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
    steps = ranked_steps(closure, test_set, test_set_label, names)
    return {"test_set": test_set_label, "steps": steps, "summary": ranking_summary(steps, test_set_label),
            "when_to_stop": when_to_stop_paragraph(stop)}


# ----------------------------------------------------------------------------- figures


def forest_figure(closure: pd.DataFrame, effects: pd.DataFrame | None = None,
                  names: Names | None = None) -> bytes | None:
    """The remedies' paired deltas: a panel per metric, rows grouped by test set; the interval with seeds
    included (line), the mean change (dot; hollow without an interval) and each seed's change (small grey
    marks, from seed_effects.csv).

    Each remedy by its name (`names`, wrapped to fit), so a row can be read at the report's width.
    """
    plt = pyplot()
    rows = closure[closure["metric"].isin(list(METRIC_NAMES))].reset_index(drop=True)
    if rows.empty:
        return None
    names = names or Names({})
    metrics = [m for m in METRIC_NAMES if m in set(rows["metric"])]
    test_sets = sorted(rows["test_set"].unique())
    remedies = sorted(rows["remedy"].unique())
    layout, y = [], 0  # (y, test set, remedy or None for the test set's heading)
    for ts in test_sets:
        layout.append((y, ts, None))
        y += 1
        for remedy in remedies:
            layout.append((y, ts, remedy))
            y += 1
    fig, axes = plt.subplots(1, len(metrics), figsize=(MAX_WIDTH_IN, 0.28 * y + 1.2), sharey=True,
                             squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        sub = rows[rows["metric"] == metric].set_index(["test_set", "remedy"])
        for row, ts, remedy in layout:
            if remedy is None:
                ax.axhspan(row - 0.5, row + 0.5, color="0.93", zorder=0)
                continue
            if (ts, remedy) not in sub.index:
                continue
            r = sub.loc[(ts, remedy)]
            if math.isfinite(r["ci_lo"]) and math.isfinite(r["ci_hi"]):
                ax.plot([r["ci_lo"], r["ci_hi"]], [row, row], color="0.3", lw=1.8)
            if effects is not None and len(effects):
                mine = effects[(effects["remedy"] == remedy) & (effects["test_set"] == ts)
                               & (effects["metric"] == metric)]
                ax.plot(mine["delta"], [row + 0.22] * len(mine), "|", color="0.55", ms=6)
            if math.isfinite(r["ci_lo"]) and math.isfinite(r["ci_hi"]):
                ax.plot(r["delta"], row, "o", color="tab:blue", ms=6)
            else:
                ax.plot(r["delta"], row, "o", mfc="white", color="tab:blue", ms=6)
        ax.axvline(0, color="tab:red", lw=0.9)
        ax.set_title(f"change in {METRIC_NAMES[metric]} against the baseline", fontsize=10)
        ax.set_xlabel("paired change, 95 % interval over subjects and seeds")
        ax.grid(axis="x", alpha=0.3)
    labels = [names.test_set(ts).text if remedy is None else textwrap.fill(names.remedy(remedy).text, 34)
              for _row, ts, remedy in layout]
    label_rows(axes[0][0], [row for row, _t, _r in layout], labels,
               [remedy is None for _row, _t, remedy in layout], y)
    return png_bytes(fig)


def loso_figure(loso: pd.DataFrame) -> bytes | None:
    """Each held-out subject's Dice and surface Dice (mean over seeds), with the SD between seeds."""
    plt = pyplot()
    if loso.empty:
        return None
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH_IN, max(4.6, 0.55 * len(loso) + 2.0)), 3.0),
                           layout="constrained")
    x = np.arange(len(loso))
    for shift, metric, label in ((-0.2, "dice", "Dice"), (0.2, "surface_dice", "surface Dice")):
        sd = loso[f"{metric}_seed_sd"].astype(float).fillna(0.0) if f"{metric}_seed_sd" in loso else None
        ax.bar(x + shift, loso[metric], 0.4, yerr=sd, capsize=2, label=label)
    ax.set_xticks(x, loso["held_out_subject"].astype(str), rotation=45 if len(loso) > 8 else 0,
                  ha="right" if len(loso) > 8 else "center")
    ax.set_ylim(0, 1)
    ax.set_xlabel("held-out real subject")
    ax.set_ylabel("score on the held-out subject")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return png_bytes(fig)


def curve_figure(curve: pd.DataFrame, names: Names | None = None) -> bytes | None:
    plt = pyplot()
    rows = curve[curve["metric"] == "dice"]
    if rows.empty:
        return None
    names = names or Names({})
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    for test_set, group in rows.groupby("test_set", sort=True):
        group = group.sort_values("level")
        # No interval (one seed, or fewer than 3 subjects): the point alone.
        low = (group["mean"] - group["ci_lo"]).fillna(0.0)
        high = (group["ci_hi"] - group["mean"]).fillna(0.0)
        ax.errorbar(group["level"] * 100, group["mean"], yerr=[low, high], marker="o", capsize=3,
                    label=names.test_set(test_set).text)
    ax.set_xlabel("% of simulator training subjects")
    ax.set_ylabel("subject-level Dice\n(95 % interval, seeds incl.)")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return png_bytes(fig)


# ----------------------------------------------------------------------------- the section's data

TABLE_FORMATS = {"baseline": ".3f", "value": ".3f", "delta": "+.3f", "ci_lo": "+.3f", "ci_hi": "+.3f",
                 "seed_sd": ".3f"}
# The matrix's column headers, in the order of contracts.GAP_CLOSURE_COLUMNS (each file column in words).
CLOSURE_HEADERS = {"remedy": "remedy", "test_set": "test set", "metric": "metric", "baseline": "baseline",
                   "value": "remedy's value", "delta": "change", "ci_lo": "95 % interval, low",
                   "ci_hi": "95 % interval, high", "n_subjects": "subjects", "n_seeds": "seeds",
                   "seed_sd": "between-seed SD of the change"}


def closure_rows(closure: pd.DataFrame, names: Names | None = None) -> list[list[str]]:
    """gap_closure.csv's rows as the matrix shows them (columns contracts.GAP_CLOSURE_COLUMNS): the remedy,
    test set and metric by name, numbers formatted (counts as whole numbers, empty where there is none)."""
    names = names or Names({})
    out = []
    for row in closure.to_dict("records"):
        cells = [names.remedy(row["remedy"]).text, names.test_set(row["test_set"]).text,
                 METRIC_NAMES.get(row["metric"], str(row["metric"]).replace("_", " "))]
        for col in contracts.GAP_CLOSURE_COLUMNS[3:]:
            value = row[col]
            if col in TABLE_FORMATS:
                cells.append(_fmt(value, TABLE_FORMATS[col]))
            elif col in ("n_subjects", "n_seeds"):
                cells.append(str(int(value)) if value is not None and math.isfinite(float(value)) else "")
            else:
                cells.append(str(value))
        out.append(cells)
    return out


def gap_context(config: dict, files: dict, names: Names | None = None) -> dict | None:
    """What the report's "What would help" section shows (usseg.report.sections.gap); None when the study
    is off. Figures are PNG bytes.

    `files`: the gap_summary rule's outputs by name (gap_closure, seed_effects, loso, learning_curve,
    when_to_stop).
    """
    if not config.get("gap_study", {}).get("enabled"):
        return None
    names = names or Names(config)
    closure = contracts.read_gap_closure(files["gap_closure"])
    effects = contracts.read_seed_effects(files["seed_effects"]) if "seed_effects" in files else None
    loso = contracts.read_loso(files["loso"])
    curve = contracts.read_learning_curve(files["learning_curve"])
    stop = contracts.read_when_to_stop(files["when_to_stop"])
    target = target_test_set(config)
    labels = {ts: names.test_set(ts).text for ts in config["test_sets"]}
    spread = gap_stats.loso_spread(pd.Series(loso["dice"].to_numpy(float), index=loso["held_out_subject"])) \
        if len(loso) else None
    return {
        "section_id": SECTION_ID,
        "baseline": names.experiment(gap_baseline(config)),
        "seeds": int(config["gap_study"].get("seeds", 1)),
        # The settings every arm trains with besides the baseline's (gap_study.arm_settings), in words.
        "arm_settings": ", ".join(f"{k}: {json.dumps(v)}" for k, v in
                                  (config["gap_study"].get("arm_settings") or {}).items()),
        "demo": config.get("data_root") is None,
        "demo_note": DEMO_NOTE,
        "columns": list(contracts.GAP_CLOSURE_COLUMNS),
        "rows": closure_rows(closure, names),
        "forest_png": forest_figure(closure, effects, names),
        "loso_png": loso_figure(loso),
        "loso_spread": None if spread is None else {k: _fmt(v) if k != "n_subjects" else v for k, v in spread.items()},
        "curve_png": curve_figure(curve, names),
        "conclusion": conclusion_sentences(closure, curve, target, labels, names),
        "curve_sentences": conclusion_sentences(closure.iloc[0:0], curve, target, labels, names),
        "when_to_stop": when_to_stop_paragraph(stop),
        "next_steps": ranked_steps(closure, target, labels.get(target, target), names),
        "target": labels.get(target, target),
    }
