"""The report's "What would help" section (usseg.gap_report)."""

from __future__ import annotations

import json
import math

import pandas as pd
import yaml

from conftest import REPO
from usseg import gap_report
from usseg.remedies import gap_stats
from usseg.report import page


def _closure(delta_rus, lo, hi):
    rows = [gap_stats.scalar_row("fda", "all", "train_seconds", 10.0, 12.0)]
    for ts in ("test_aus", "test_rus"):
        for metric in ("dice", "surface_dice"):
            d, a, b = (delta_rus, lo, hi) if ts == "test_rus" else (0.0, -0.05, 0.05)
            rows.append({"remedy": "fda", "test_set": ts, "metric": metric, "baseline": 0.4, "value": 0.4 + d,
                         "delta": d, "ci_lo": a, "ci_hi": b, "n_subjects": 4})
    return gap_stats.gap_closure_table(rows)


def _results(tmp_path, closure):
    gap = tmp_path / "gap"
    gap.mkdir()
    closure.to_csv(gap / "gap_closure.csv", index=False)
    pd.DataFrame({"held_out_subject": ["a", "b", "c"], "n_images": [2, 2, 2], "dice": [0.5, 0.6, 0.7],
                  "surface_dice": [0.6, 0.7, 0.8]}).to_csv(gap / "loso.csv", index=False)
    curve = gap_stats.learning_curve_summary(pd.DataFrame({
        "fraction": [0.5] * 3 + [1.0] * 3, "subject": ["s1", "s2", "s3"] * 2,
        "value": [0.3, 0.4, 0.5, 0.5, 0.55, 0.72]}))
    curve.insert(0, "metric", "dice")
    curve.insert(0, "test_set", "test_aus")
    curve.to_csv(gap / "learning_curve.csv", index=False)
    (gap / "when_to_stop.json").write_text(json.dumps({"text": "With 4 labeled real subjects ..."}))
    # The gap_summary rule's outputs by name, as the report rule hands them over.
    return {name: gap / f"{name}.{ext}" for name, ext in
            (("gap_closure", "csv"), ("loso", "csv"), ("learning_curve", "csv"), ("when_to_stop", "json"))}


def _config(enabled=True):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["gap_study"]["enabled"] = enabled
    return cfg


def _rus_dice(closure):
    return closure[(closure["test_set"] == "test_rus") & (closure["metric"] == "dice")].iloc[0]


def test_conclusion_claims_only_what_the_interval_supports():
    up = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, 0.02, 0.18)), "real")
    spans = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, -0.02, 0.18)), "real")
    none = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, math.nan, math.nan)), "real")
    assert "improvement" in up and "no detectable change" in spans and "no claim" in none
    assert "+0.10" in up and "4 subjects" in up


def test_section_renders_with_id_figures_and_demo_note(tmp_path):
    results = _results(tmp_path, _closure(-0.08, -0.15, -0.01))
    html = gap_report.render_gap_section(_config(), results)
    gap_sections = [s for s in page.SECTIONS if s.ID == gap_report.SECTION_ID]
    # The page wraps the body in <section id="gap"><h2>What would help</h2> (usseg.report.sections.gap).
    assert gap_sections[0].ID == "gap" and gap_sections[0].HEADING == "What would help"
    assert html.count("data:image/png;base64,") == 3
    assert gap_report.DEMO_NOTE in html
    assert "made things worse" in html and "More simulator data" in html
    assert "With 4 labeled real subjects" in html


def test_section_is_empty_when_the_study_is_off(tmp_path):
    assert gap_report.render_gap_section(_config(enabled=False), {}) == ""


def test_next_steps_are_ranked_by_measured_delta():
    closure = pd.concat([_closure(0.05, -0.01, 0.1), _closure(0.1, 0.02, 0.2).assign(remedy="hm")])
    ranked = gap_report.rank_next_steps(closure, "test_rus")
    assert [r["remedy"] for r in ranked] == ["hm", "fda"]
    assert [r["interval"] for r in ranked] == ["above 0", "spans 0"]
