"""The report's "What would help" section (usseg.gap_report)."""

from __future__ import annotations

import base64
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from usseg import gap_report
from usseg.figure_text import MAX_WIDTH_PX, MIN_FONT_PX
from usseg.names import Names
from usseg.remedies import gap_stats
from usseg.report import page
from usseg.report.context import Figure, image_facts
from usseg.report.provenance_index import Artifact
from usseg.report.sections import gap as gap_section


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
    (gap / "when_to_stop.json").write_text(json.dumps(_stop(4, 0.08)))
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
    assert "by +0.100 (from 0.400 to 0.500, 4 subjects" in up


def test_learning_curve_conclusion_follows_its_last_step_interval():
    def curve(values_full):
        c = gap_stats.learning_curve_summary(pd.DataFrame({
            "fraction": [0.5] * 4 + [1.0] * 4, "subject": ["s1", "s2", "s3", "s4"] * 2,
            "value": [0.3, 0.4, 0.5, 0.6, *values_full]}))
        c.insert(0, "metric", "dice")
        c.insert(0, "test_set", "test_rus")
        return c

    labels = {"test_rus": "test_rus (real)"}
    up = gap_report.conclusion_sentences(_closure(0.0, -0.1, 0.1).iloc[0:0], curve([0.35, 0.46, 0.54, 0.66]),
                                         "test_rus", labels)
    assert len(up) == 1 and "from 50 % to 100 %" in up[0] and "changed Dice by +0.05" in up[0]
    # An interval above 0 from one training per share: said to help these subjects, with what it leaves out.
    assert "helped on these test subjects" in up[0] and "variation between trainings" in up[0]
    flat = gap_report.conclusion_sentences(_closure(0.0, -0.1, 0.1).iloc[0:0], curve([0.4, 0.35, 0.55, 0.6]),
                                           "test_rus", labels)
    assert "no detectable change" in flat[0] and "helped" not in flat[0]


class _Context:
    """What the report's gap section reads of usseg.report.context.ReportContext, for these files."""

    def __init__(self, cfg, files):
        self.config, self.names, self.inputs = cfg, Names(cfg), SimpleNamespace(gap=files)

    def artifact(self, base_id, kind, title, files, derived=False):
        return Artifact(base_id, kind, title, [str(f) for f in files], derived)

    def derived_figure(self, base_id, title, png, caption, files=None):
        art = self.artifact(base_id, "figure", title, files or [], derived=True)
        return Figure(art, "image/png", base64.b64encode(png).decode("ascii"), caption, *image_facts(png))


def test_section_renders_with_id_figures_and_demo_note(tmp_path):
    results = _results(tmp_path, _closure(-0.08, -0.15, -0.01))
    cfg = _config()
    html = str(page.body(gap_section, gap_section.build(_Context(cfg, results))))
    gap_sections = [s for s in page.SECTIONS if s.ID == gap_report.SECTION_ID]
    # The page wraps the body in <section id="gap"><h2>What would help</h2> (usseg.report.sections.gap).
    assert gap_sections[0].ID == "gap" and gap_sections[0].HEADING == "What would help"
    assert html.count("data:image/png;base64,") == 3
    assert gap_report.DEMO_NOTE in html and "More simulator data" in html
    # The remedies' own sentences and when to stop are the verdict's (tests/test_report_verdict.py), not repeated.
    assert "With 4 labeled real subjects" not in html
    # Every figure made for the page: its smallest text recorded, at least the minimum, and at most the column wide.
    for key in ("forest_png", "loso_png", "curve_png"):
        png = gap_report.gap_context(cfg, results)[key]
        width, _height, font = image_facts(png)
        assert font is not None and font >= MIN_FONT_PX and width <= MAX_WIDTH_PX, (key, width, font)


def test_section_is_left_out_when_the_study_is_off():
    assert gap_report.gap_context(_config(enabled=False), {}) is None
    # The section shows only what ran: the report context says so (on, with training, and able to run).
    assert gap_section.enabled(SimpleNamespace(gap_ran=True))
    assert not gap_section.enabled(SimpleNamespace(gap_ran=False))


def test_remedies_are_named_as_the_config_names_them():
    cfg = _config()
    cfg["report"] = {"names": {"experiments": {"fda": "Fourier domain adaptation"}}}
    steps = gap_report.ranked_steps(_closure(0.1, 0.02, 0.18), "test_rus", "RUS test set (real)", Names(cfg))
    assert steps[0]["name"].text == "Fourier domain adaptation" and steps[0]["name"].key == "fda"
    assert steps[0]["sentence"].startswith("Fourier domain adaptation changed Dice on the RUS test set (real)")
    loso = gap_report.ranked_steps(_closure(0.1, 0.02, 0.18).assign(remedy=gap_stats.LOSO_REMEDY), "test_rus",
                                   "real", Names(cfg))
    assert loso[0]["name"].text == "adding labeled real subjects (leave one subject out)"


def test_next_steps_are_ranked_by_measured_delta():
    closure = pd.concat([_closure(0.05, -0.01, 0.1), _closure(0.1, 0.02, 0.2).assign(remedy="hm")])
    ranked = gap_report.rank_next_steps(closure, "test_rus")
    assert [r["remedy"] for r in ranked] == ["hm", "fda"]
    assert [r["interval"] for r in ranked] == ["above 0", "spans 0"]


# ----------------------------------------------------------------------------- the verdict's ranking and when to stop


def _row(remedy, delta, lo, hi, n=6, test_set="test_rus", metric="dice"):
    return {"remedy": remedy, "test_set": test_set, "metric": metric, "baseline": 0.40, "value": 0.40 + delta,
            "delta": delta, "ci_lo": lo, "ci_hi": hi, "n_subjects": n}


def _mixed_closure():
    """Four remedies on real-image Dice, one of each interval kind, plus rows the ranking must ignore."""
    return gap_stats.gap_closure_table([
        _row("hm", 0.08, 0.02, 0.14),
        _row("fda", 0.03, -0.02, 0.08),
        _row("aug", -0.06, -0.10, -0.01),
        _row(gap_stats.LOSO_REMEDY, 0.10, math.nan, math.nan, n=2),
        _row("hm", 0.30, 0.25, 0.35, test_set="test_aus"),  # the simulator's test set: not ranked
        _row("fda", 0.20, 0.10, 0.30, metric="surface_dice"),  # another metric: not ranked
        gap_stats.scalar_row("hm", "all", "train_seconds", 10.0, 90.0),
    ])


def _stop(n, sd, change=0.05):
    """when_to_stop.json as the gap rule writes it (NaN stored as null)."""
    result = gap_stats.when_to_stop(n, sd, change)
    result.update(test_set="test_rus", metric="dice", sd_source="pooled SD of the remedies' paired differences",
                  text=gap_stats.when_to_stop_text(result))
    return json.loads(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                                  for k, v in result.items()}))


def test_verdict_ranks_real_image_dice_by_measured_change_with_intervals():
    ranking = gap_report.verdict_ranking(_mixed_closure(), _stop(6, 0.05), "test_rus", "test_rus (real)")
    steps = ranking["steps"]
    assert [s["remedy"] for s in steps] == [gap_stats.LOSO_REMEDY, "hm", "fda", "aug"]
    assert [s["excludes_zero"] for s in steps] == [False, True, False, True]
    by = {s["remedy"]: s["sentence"] for s in steps}
    assert by["hm"].startswith("hm changed Dice on the test_rus (real) by +0.08") and "95% CI +0.020 to +0.140" in by["hm"]
    assert "improvement" in by["hm"] and "made things worse" in by["aug"]
    assert "no detectable change" in by["fda"] and "no claim" in by[gap_stats.LOSO_REMEDY]
    assert by[gap_stats.LOSO_REMEDY].startswith("adding labeled real subjects")
    summary = ranking["summary"]
    assert "interval of hm lies above 0" in summary and "interval of aug lies below 0" in summary
    assert "other 2 showed no detectable change" in summary and "not a test between remedies" in summary


def test_an_interval_that_includes_zero_is_never_an_improvement():
    rng, stop = np.random.default_rng(3), _stop(6, 0.05)
    for _ in range(60):
        rows = []
        for i in range(rng.integers(1, 6)):
            delta = float(rng.normal(0, 0.05))
            half = float(rng.uniform(0.001, 0.08))
            lo, hi = (math.nan, math.nan) if rng.random() < 0.15 else (delta - half, delta + half)
            rows.append(_row(f"r{i}", delta, lo, hi))
        closure = gap_stats.gap_closure_table(rows)
        ranking = gap_report.verdict_ranking(closure, stop, "test_rus", "real")
        improved = [s["remedy"] for s in ranking["steps"] if "improvement" in s["sentence"]]
        assert improved == [s["remedy"] for s in ranking["steps"] if s["ci_lo"] > 0]
        named = ranking["summary"].split("lies above 0")[0] if "lies above 0" in ranking["summary"] else ""
        for s in ranking["steps"]:
            if not s["ci_lo"] > 0:
                assert f" {s['remedy']} " not in named.replace(",", " ") + " "
        if not improved:
            assert "improvement" not in ranking["summary"]


def test_no_interval_excludes_zero_says_so():
    closure = gap_stats.gap_closure_table([_row("hm", 0.04, -0.01, 0.09), _row("fda", 0.01, -0.03, 0.05)])
    summary = gap_report.verdict_ranking(closure, _stop(6, 0.05), "test_rus", "real")["summary"]
    assert summary.startswith("No interval excludes 0: none of the 2 measured remedies")
    assert "improvement" not in summary


def test_when_to_stop_numbers_come_from_the_file():
    stop = _stop(4, 0.08)
    text = gap_report.when_to_stop_paragraph(stop)
    mdc = gap_stats.minimum_detectable_change(4, 0.08)
    needed = gap_stats.subjects_needed(0.05, 0.08)
    assert stop["minimum_detectable_change"] == mdc and stop["subjects_needed"] == needed > 4
    assert "With 4 labeled real subjects on test_rus" in text and "SD of 0.080" in text
    assert f"detects (two-sided alpha 0.05, power 0.8) is {mdc:.3f}" in text
    assert f"would need {needed} labeled real subjects, {needed - 4} more than now" in text
    assert "gap_study.change_to_detect" in text and "pooled SD" in text
    # The same file with other numbers gives other words: nothing is typed in.
    other = dict(stop, minimum_detectable_change=0.123, subjects_needed=40, n_subjects=9)
    assert "is 0.123" in gap_report.when_to_stop_paragraph(other) and "31 more" in gap_report.when_to_stop_paragraph(other)


def test_when_to_stop_with_enough_subjects_or_none():
    enough = gap_report.when_to_stop_paragraph(_stop(30, 0.02))
    assert "which the 30 at hand already give" in enough and "more than now" not in enough
    one = _stop(1, math.nan)
    assert one["minimum_detectable_change"] is None
    text = gap_report.when_to_stop_paragraph(one)
    assert "no change in real-image Dice can be shown" in text and "With 1 labeled real subject(s)" in text


def test_verdict_ranking_names_what_the_files_lack():
    with pytest.raises(ValueError, match="gap_closure.csv lacks the column.*ci_lo"):
        gap_report.verdict_ranking(_mixed_closure().drop(columns="ci_lo"), _stop(6, 0.05), "test_rus", "real")
    stop = _stop(6, 0.05)
    del stop["subjects_needed"]
    with pytest.raises(ValueError, match="when_to_stop.json lacks the key.*subjects_needed"):
        gap_report.verdict_ranking(_mixed_closure(), stop, "test_rus", "real")
