"""The report's "What would help" section (usseg.report.gap_study)."""

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
from usseg.figure_text import MAX_WIDTH_PX, MIN_FONT_PX
from usseg.names import Names
from usseg.remedies import gap_stats
from usseg.remedies.spec import LOSO_REMEDY, LOSO_TITLE
from usseg.report import gap_study as gap_report
from usseg.report import page
from usseg.report.context import Figure, image_facts
from usseg.report.provenance_index import Artifact
from usseg.report.sections import gap as gap_section


def _closure(delta_rus, lo, hi, n_seeds=3, seed_sd=0.02):
    rows = [gap_stats.scalar_row("fda", "all", "train_seconds", 10.0, 12.0, n_seeds=n_seeds)]
    for ts in ("test_aus", "test_rus"):
        for metric in ("dice", "surface_dice"):
            d, a, b = (delta_rus, lo, hi) if ts == "test_rus" else (0.0, -0.05, 0.05)
            rows.append({"remedy": "fda", "test_set": ts, "metric": metric, "baseline": 0.4, "value": 0.4 + d,
                         "delta": d, "ci_lo": a, "ci_hi": b, "n_subjects": 4, "n_seeds": n_seeds,
                         "seed_sd": seed_sd})
    return gap_stats.gap_closure_table(rows)


def _effects(closure):
    """seed_effects.csv of a closure table: three seeds spread around each row's delta."""
    rows = [{"remedy": r["remedy"], "test_set": r["test_set"], "metric": r["metric"], "seed": k,
             "baseline": r["baseline"], "value": r["value"] + e, "delta": r["delta"] + e}
            for r in closure[closure["metric"].isin(["dice", "surface_dice"])].to_dict("records")
            for k, e in enumerate((-0.02, 0.0, 0.02))]
    return gap_stats.seed_effect_table(rows)


def _results(tmp_path, closure):
    gap = tmp_path / "gap"
    gap.mkdir()
    closure.to_csv(gap / "gap_closure.csv", index=False)
    _effects(closure).to_csv(gap / "seed_effects.csv", index=False)
    pd.DataFrame({"held_out_subject": ["a", "b", "c"], "n_images": [2, 2, 2], "dice": [0.5, 0.6, 0.7],
                  "surface_dice": [0.6, 0.7, 0.8], "n_seeds": [3, 3, 3], "dice_seed_sd": [0.02, 0.05, 0.01],
                  "surface_dice_seed_sd": [0.01, 0.02, 0.03]}).to_csv(gap / "loso.csv", index=False)
    curve = gap_stats.learning_curve_summary(pd.DataFrame({
        "fraction": [0.5] * 6 + [1.0] * 6, "subject": ["s1", "s2", "s3"] * 4, "seed": ([0] * 3 + [1] * 3) * 2,
        "value": [0.3, 0.4, 0.5, 0.31, 0.42, 0.5, 0.5, 0.55, 0.72, 0.52, 0.56, 0.7]}))
    curve.insert(0, "metric", "dice")
    curve.insert(0, "test_set", "test_aus")
    curve.to_csv(gap / "learning_curve.csv", index=False)
    (gap / "when_to_stop.json").write_text(json.dumps(_stop(4, 0.08)))
    # The gap_summary rule's outputs by name, as the report rule hands them over.
    return {name: gap / f"{name}.{ext}" for name, ext in
            (("gap_closure", "csv"), ("seed_effects", "csv"), ("loso", "csv"), ("learning_curve", "csv"),
             ("when_to_stop", "json"))}


def _config(enabled=True):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["gap_study"]["enabled"] = enabled
    cfg["gap_study"]["remedies"]["fda"] = {"title": "Fourier domain adaptation",
                                           "settings": {"remedy": {"name": "fda"}}}
    return cfg


def _rus_dice(closure):
    return closure[(closure["test_set"] == "test_rus") & (closure["metric"] == "dice")].iloc[0]


def test_conclusion_claims_only_what_the_interval_supports():
    up = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, 0.02, 0.18)), "real")
    spans = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, -0.02, 0.18)), "real")
    none = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, math.nan, math.nan)), "real")
    assert "improvement" in up and "no detectable change" in spans and "no claim" in none
    assert "by +0.100 (from 0.400 to 0.500, 4 subjects x 3 seeds, between-seed SD of the change 0.020" in up
    assert "95% CI with seeds +0.020 to +0.180" in up
    # One seed: no interval can hold the training noise, and the words say so.
    one = gap_report.effect_sentence("fda", _rus_dice(_closure(0.1, math.nan, math.nan, n_seeds=1,
                                                                seed_sd=math.nan)), "real")
    assert "1 seed;" in one and "training noise is unmeasured" in one and "improvement" not in one


def test_learning_curve_conclusion_follows_its_last_step_interval():
    def curve(values_full):
        rows = [{"fraction": f, "subject": f"s{i}", "seed": k, "value": v + 0.005 * k}
                for f, values in ((0.5, [0.3, 0.4, 0.5, 0.6]), (1.0, values_full))
                for k in range(3) for i, v in enumerate(values)]
        c = gap_stats.learning_curve_summary(pd.DataFrame(rows))
        c.insert(0, "metric", "dice")
        c.insert(0, "test_set", "test_rus")
        return c

    labels = {"test_rus": "test_rus (real)"}
    up = gap_report.conclusion_sentences(_closure(0.0, -0.1, 0.1).iloc[0:0], curve([0.35, 0.46, 0.54, 0.66]),
                                         "test_rus", labels)
    assert len(up) == 1 and "from 50 % to 100 %" in up[0] and "changed Dice by +0.05" in up[0]
    assert "helped on these test subjects, training noise included" in up[0] and "4 subjects x 3 seeds" in up[0]
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
    assert "On test_rus (4 labeled real subjects" not in html
    # Every remedy by its title in the matrix; the seeds' columns in words, their keys on hover.
    assert "<td>Fourier domain adaptation</td>" in html
    assert '<th class=num title="n_seeds">seeds</th>' in html and 'title="seed_sd">between-seed SD' in html
    assert "3 seeds" in html and "arm_settings" not in html
    # Arms trained with settings of their own say so: their baseline is not the Dice table's experiment.
    cfg["gap_study"]["arm_settings"] = {"epochs": 12}
    html = str(page.body(gap_section, gap_section.build(_Context(cfg, results))))
    assert "<code>gap_study.arm_settings</code> (epochs: 12)" in html
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
    cfg = _config()  # gap_study.remedies.fda.title: "Fourier domain adaptation"
    steps = gap_report.ranked_steps(_closure(0.1, 0.02, 0.18), "test_rus", "RUS test set (real)", Names(cfg))
    assert steps[0]["name"].text == "Fourier domain adaptation" and steps[0]["name"].key == "fda"
    assert steps[0]["sentence"].startswith("Fourier domain adaptation changed Dice on the RUS test set (real)")
    loso = gap_report.ranked_steps(_closure(0.1, 0.02, 0.18).assign(remedy=LOSO_REMEDY), "test_rus",
                                   "real", Names(cfg))
    assert loso[0]["name"].text == LOSO_TITLE
    # report.names.remedies renames a remedy in the report only.
    cfg["report"] = {"names": {"remedies": {"fda": "FDA"}}}
    assert gap_report.ranked_steps(_closure(0.1, 0.02, 0.18), "test_rus", "real", Names(cfg))[0]["label"] == "FDA"


def test_next_steps_are_ranked_by_measured_delta():
    closure = pd.concat([_closure(0.05, -0.01, 0.1), _closure(0.1, 0.02, 0.2).assign(remedy="hm")])
    ranked = gap_report.rank_next_steps(closure, "test_rus")
    assert [r["remedy"] for r in ranked] == ["hm", "fda"]
    assert [r["interval"] for r in ranked] == ["above 0", "spans 0"]


# ----------------------------------------------------------------------------- the verdict's ranking and when to stop


def _row(remedy, delta, lo, hi, n=6, test_set="test_rus", metric="dice", n_seeds=3, seed_sd=0.02):
    return {"remedy": remedy, "test_set": test_set, "metric": metric, "baseline": 0.40, "value": 0.40 + delta,
            "delta": delta, "ci_lo": lo, "ci_hi": hi, "n_subjects": n, "n_seeds": n_seeds, "seed_sd": seed_sd}


def _mixed_closure():
    """Four remedies on real-image Dice, one of each interval kind, plus rows the ranking must ignore."""
    return gap_stats.gap_closure_table([
        _row("hm", 0.08, 0.02, 0.14),
        _row("fda", 0.03, -0.02, 0.08),
        _row("aug", -0.06, -0.10, -0.01),
        _row(LOSO_REMEDY, 0.10, math.nan, math.nan, n=2),
        _row("hm", 0.30, 0.25, 0.35, test_set="test_aus"),  # the simulator's test set: not ranked
        _row("fda", 0.20, 0.10, 0.30, metric="surface_dice"),  # another metric: not ranked
        gap_stats.scalar_row("hm", "all", "train_seconds", 10.0, 90.0),
    ])


def _stop(n, sd, change=0.05, seed_sd=math.nan, n_seeds=1):
    """when_to_stop.json as the gap rule writes it (NaN stored as null): both kinds with one spread."""
    kinds = {}
    for kind, source in (("remedy", "pooled over the remedies"), ("real_subjects", "leave one subject out")):
        entry = gap_stats.when_to_stop_kind(n, sd, n - 1, seed_sd, n_seeds, change)
        entry.update(sd_source=source, text=gap_stats.when_to_stop_kind_text(kind, entry))
        kinds[kind] = entry
    result = {"test_set": "test_rus", "metric": "dice", "n_subjects": n, "n_seeds": n_seeds, "alpha": 0.05,
              "power": 0.8, "change": change, "kinds": kinds, "text": " ".join(k["text"] for k in kinds.values())}
    return json.loads(json.dumps(_nulls(result)))


def _nulls(obj):
    if isinstance(obj, dict):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nulls(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def test_verdict_ranks_real_image_dice_by_measured_change_with_intervals():
    names = Names({"gap_study": {"remedies": {"hm": {"title": "Histogram matching", "settings": {"epochs": 1}}}}})
    ranking = gap_report.verdict_ranking(_mixed_closure(), _stop(6, 0.05), "test_rus", "test_rus (real)", names)
    steps = ranking["steps"]
    assert [s["remedy"] for s in steps] == [LOSO_REMEDY, "hm", "fda", "aug"]
    assert [s["excludes_zero"] for s in steps] == [False, True, False, True]
    by = {s["remedy"]: s["sentence"] for s in steps}
    assert by["hm"].startswith("Histogram matching changed Dice on the test_rus (real) by +0.08")
    assert "95% CI with seeds +0.020 to +0.140" in by["hm"] and "between-seed SD of the change 0.020" in by["hm"]
    assert "improvement" in by["hm"] and "made things worse" in by["aug"]
    assert "no detectable change" in by["fda"] and "no claim" in by[LOSO_REMEDY]
    assert by[LOSO_REMEDY].startswith(LOSO_TITLE) and by["fda"].startswith("fda changed")  # no title: the key
    summary = ranking["summary"]
    assert "interval of Histogram matching lies above 0" in summary and "interval of aug lies below 0" in summary
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
    needed = gap_stats.subjects_needed(0.05, 0.08)
    remedy = stop["kinds"]["remedy"]
    assert remedy["subjects_needed"] == needed > 4
    lo, hi = remedy["subjects_needed_range"]
    assert lo < needed < hi
    assert "On test_rus (4 labeled real subjects" in text and "its own spread" in text
    assert f"needs {needed} labeled real subjects ({lo} to {hi} over that interval)" in text
    assert "For a remedy" in text and "For adding labeled real subjects" in text
    assert f"gain less than {remedy['minimum_detectable_change']:.3f}" in text
    # The same file with other numbers gives other words: nothing is typed in.
    other = json.loads(json.dumps(stop))
    other["kinds"]["remedy"]["text"] = "For a remedy: measured elsewhere."
    assert "measured elsewhere" in gap_report.when_to_stop_paragraph(other)


def test_when_to_stop_with_fewer_than_three_subjects_cannot_be_estimated():
    text = gap_report.when_to_stop_paragraph(_stop(2, 0.05))
    assert text.count(": cannot be estimated (2 labeled real subject(s)") == 2 and "needs" not in text


def test_verdict_ranking_names_what_the_files_lack():
    with pytest.raises(ValueError, match="gap_closure.csv lacks the column.*seed_sd"):
        gap_report.verdict_ranking(_mixed_closure().drop(columns="seed_sd"), _stop(6, 0.05), "test_rus", "real")
    stop = _stop(6, 0.05)
    del stop["kinds"]
    with pytest.raises(ValueError, match="when_to_stop.json lacks the key.*kinds"):
        gap_report.verdict_ranking(_mixed_closure(), stop, "test_rus", "real")
    stop = _stop(6, 0.05)
    del stop["kinds"]["remedy"]["subjects_needed_range"]
    with pytest.raises(ValueError, match="kinds.remedy lacks the key.*subjects_needed_range"):
        gap_report.verdict_ranking(_mixed_closure(), stop, "test_rus", "real")
