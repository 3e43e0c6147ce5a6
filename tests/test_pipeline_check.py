"""The report's "Pipeline ruled out?" part: sanity statuses, the paired nnU-Net comparison, the statement."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from datasets import eval_summary
from test_train import tiny_config
from usseg import composite
from usseg.checks import pipeline as pipeline_report
from usseg.checks.pipeline import (
    PipelineFiles,
    pipeline_context,
    statements,
    subject_scores,
)
from usseg.names import Names
from usseg.report import page
from usseg.report.provenance_index import Artifact
from usseg.report.sections import pipeline as pipeline_section


class _Context:
    """What the report's section reads of usseg.report.context.ReportContext, for these files."""

    def __init__(self, cfg, files):
        self.config, self.names = cfg, Names(cfg)
        self.pipeline = pipeline_context(cfg, files, str, lambda e: self.names.experiment(e).text)
        self.inputs = SimpleNamespace(pipeline_files=lambda: files)

    def rel(self, path):
        return str(path)

    def artifact(self, base_id, kind, title, files, derived=False):
        return Artifact(base_id, kind, title, [str(f) for f in files], derived)


def render_html(cfg, files) -> str:
    """The report's "Pipeline ruled out?" section as the page renders it."""
    return str(page.body(pipeline_section, pipeline_section.build(_Context(cfg, files))))

SUBJECTS = ["s1", "s2", "s3", "s4"]


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _summary(per_subject: dict[str, dict[str, float]], classes: list[str]) -> dict:
    """A summary.json whose class-macro mean (dice, interval, subjects) is computed as usseg.evaluate does."""
    s = eval_summary(per_subject, classes)
    fg = composite.composite(composite.summary_values(s, classes))
    s["mean_foreground"].update(dice=fg["estimate"], ci95=fg["ci95"], n_subjects=fg["n_subjects"])
    s["dice_mean_foreground"] = fg["estimate"]
    return s


def _sanity(exp: str, overfit: float = 0.95, shuffled: float = 0.2, chance: float = 0.25) -> dict:
    above = shuffled - chance
    return {"experiment": exp, "status": "PASS" if overfit >= 0.8 and above <= 0.1 else "FAIL",
            "overfit": {"status": "PASS" if overfit >= 0.8 else "FAIL", "dice_mean": overfit, "min_dice": 0.8,
                        "images": 4, "subjects": 4, "epochs": 500, "epochs_trained": 212},
            "shuffled_label": {"status": "PASS" if above <= 0.1 else "FAIL", "dice_mean_last_epoch": shuffled,
                               "chance_dice_mean": chance, "dice_above_chance": above, "max_dice_above_chance": 0.1,
                               "val_images": 32, "val_subjects": 2, "epochs": 8}}


def _run(tmp_path, ours: dict[str, float], ref: dict[str, float], *, overfit=0.95, installed=True,
         monkeypatch=None, enabled=True, real_val=0.6, schedule=None):
    """A results tree: the sanity JSONs, one experiment (liver) and nnU-Net, per test set subject -> Dice."""
    cfg = tiny_config()
    cfg["experiments"] = {"liver_unet": {"classes": ["liver"]}}
    cfg["test_sets"] = ["test_aus", "test_rus"]
    cfg["nnunet"] = {"enabled": enabled, "within_dice": 0.05}
    res = tmp_path / "results"
    _write(res / "sanity/liver_unet.json", _sanity("liver_unet", overfit=overfit))
    _write(res / "sanity/label_round_trip.json", {"status": "PASS", "images": 10, "subjects": 5,
                                                  "worst_mismatch": 0.0, "max_mismatch": 0.001, "failures": [],
                                                  "message": "ok"})
    for ts in cfg["test_sets"]:
        shift = 0.0 if ts == "test_aus" else 0.3  # both models lose 0.3 on real images
        _write(res / f"experiments/liver_unet/eval/{ts}/summary.json",
               _summary({s: {"liver": ours[s] - shift} for s in SUBJECTS}, ["liver"]))
        _write(res / f"nnunet/eval/{ts}/summary.json",
               _summary({s: {"liver": ref[s] - shift, "bone": 0.1} for s in SUBJECTS}, ["liver", "bone"]))
    # The real model's training: its validation Dice at the last epoch (the shuffled control's guess is 0.25).
    (res / "experiments/liver_unet").mkdir(parents=True, exist_ok=True)
    (res / "experiments/liver_unet/history.csv").write_text(
        f"epoch,train_loss,val_loss,val_dice_liver,val_dice_mean,lr\n1,1.0,1.0,0.3,0.3,0.01\n"
        f"2,0.5,0.6,{real_val},{real_val},0.01\n")
    if schedule is not None:
        _write(res / "nnunet/reference.json", {"epochs": schedule[0], "iterations_per_epoch": schedule[1],
                                               "parameters": 2e7, "patch_size": [160, 160], "batch_size": 7,
                                               "device": "cuda"})
    if monkeypatch is not None:
        monkeypatch.setattr(pipeline_report, "is_installed", lambda: installed)
    return cfg, res


def _files(cfg, res) -> PipelineFiles:
    """The files of the results tree, as the report rule names them (results/sanity, nnunet, experiments)."""
    return PipelineFiles(
        sanity={e: res / f"sanity/{e}.json" for e in pipeline_report.sanity_experiments(cfg)},
        round_trip=res / "sanity/label_round_trip.json",
        nnunet={ts: res / f"nnunet/eval/{ts}/summary.json" for ts in cfg["test_sets"]},
        nnunet_info=res / "nnunet/reference.json",
        summaries={(e, ts): res / f"experiments/{e}/eval/{ts}/summary.json"
                   for e in cfg["experiments"] for ts in cfg["test_sets"]},
        histories={e: res / f"experiments/{e}/history.csv" for e in cfg["experiments"]})


def test_subject_scores_are_terms_of_the_class_macro_mean():
    s = _summary({"a": {"liver": 0.8, "bone": 0.2}, "b": {"liver": None, "bone": 0.4}, "c": {"liver": None}},
                 ["liver", "bone"])
    scores = subject_scores(s, ["liver", "bone"])
    # Class means: liver 0.8 (a), bone 0.3 (a, b); class-macro mean 0.55. b lacks liver, so its term is not its
    # own mean (0.4) but 0.55 + (0.4 - 0.3) / 2 = 0.6; a's is 0.55 + (0 + (0.2 - 0.3)) / 2 = 0.5.
    assert scores["a"] == pytest.approx(0.5) and scores["b"] == pytest.approx(0.6) and math.isnan(scores["c"])
    assert (scores["a"] + scores["b"]) / 2 == pytest.approx((0.8 + 0.3) / 2)


def test_close_to_nnunet_and_both_fall_says_the_data(tmp_path, monkeypatch):
    ours = {"s1": 0.80, "s2": 0.82, "s3": 0.79, "s4": 0.81}
    ref = {"s1": 0.81, "s2": 0.81, "s3": 0.80, "s4": 0.80}
    cfg, res = _run(tmp_path, ours, ref, monkeypatch=monkeypatch, schedule=(1000, 250))
    ctx = pipeline_context(cfg, _files(cfg, res))
    assert ctx["sanity"]["status"] == "PASS" and ctx["nnunet"]["state"] == "ran"
    sim = next(r for r in ctx["comparison"] if r["test_set"] == "test_aus")
    # Paired on subjects: the mean difference of the per-subject differences, with a t interval over 4 subjects.
    assert sim["delta"] == pytest.approx(0.0) and sim["n_subjects"] == 4 and sim["ci"] is not None
    assert sim["classes"] == ["liver"]  # nnU-Net's bone does not enter the liver experiment's comparison
    (st,) = ctx["statements"]
    # Against nnU-Net's full schedule, with an informative shuffled control (real model 0.35 above the guess).
    assert st["verdict"] == "data" and "bottleneck is the data" in st["text"] and "0.30" in st["text"]
    assert ctx["answer"].startswith("Yes") and (ctx["status"], ctx["badge"]) == ("PASS", "Yes")
    assert "1000 epoch(s) of 250 iterations on cuda" in " ".join(render_html(cfg, _files(cfg, res)).split())
    check = pipeline_report.pipeline_check(cfg, _files(cfg, res))
    assert set(check) == {"id", "title", "status", "value", "threshold", "reason"}
    assert (check["id"], check["status"], check["value"]) == ("pipeline", "PASS", "Yes")


def test_a_10_iteration_reference_can_only_rule_the_pipeline_in(tmp_path, monkeypatch):
    ours = {"s1": 0.80, "s2": 0.82, "s3": 0.79, "s4": 0.81}
    ref = {"s1": 0.81, "s2": 0.81, "s3": 0.80, "s4": 0.80}
    cfg, res = _run(tmp_path, ours, ref, monkeypatch=monkeypatch, schedule=(1, 10))
    ctx = pipeline_context(cfg, _files(cfg, res))
    (st,) = ctx["statements"]
    assert st["verdict"] == "no_defect"
    assert "no defect detected against a short reference (10 of nnU-Net's 250,000 training iterations" in st["text"]
    every_word = " ".join([ctx["answer"], st["text"]])
    assert "the data, not the pipeline" not in every_word and "bottleneck is the data" not in every_word
    # The badge shows the answer, not the sanity checks' PASS.
    assert (ctx["status"], ctx["badge"]) == ("WARN", "No defect found") and ctx["answer"].startswith("Not ruled out")
    assert ctx["sanity"]["status"] == "PASS"
    # Unknown schedule (no reference.json) counts as short.
    (res / "nnunet/reference.json").unlink()
    assert pipeline_context(cfg, _files(cfg, res))["statements"][0]["verdict"] == "no_defect"
    # A short reference that does better still rules the pipeline in.
    cfg, res = _run(tmp_path / "worse", dict.fromkeys(SUBJECTS, 0.5), ref, monkeypatch=monkeypatch, schedule=(1, 10))
    ctx = pipeline_context(cfg, _files(cfg, res))
    assert ctx["statements"][0]["verdict"] == "pipeline" and (ctx["status"], ctx["badge"]) == ("FAIL", "No")


def test_the_shuffled_control_is_not_informative_when_the_real_model_does_not_beat_the_guess(tmp_path, monkeypatch):
    same = {"s1": 0.80, "s2": 0.82, "s3": 0.79, "s4": 0.81}
    # The demo's case: the real model's validation Dice is 0.04 above the image-blind guess, under the 0.10 margin.
    cfg, res = _run(tmp_path, same, same, monkeypatch=monkeypatch, real_val=0.29, schedule=(1000, 250))
    ctx = pipeline_context(cfg, _files(cfg, res))
    row = ctx["sanity"]["experiments"][0]["shuffled"]
    assert row["status"] == "not informative" and row["informative"] is False
    assert row["real_above"] == pytest.approx(0.04)
    assert ctx["status"] == "WARN" and "not informative for liver_unet" in ctx["answer"]
    assert not ctx["answer"].startswith("Yes")
    assert "not informative" in render_html(cfg, _files(cfg, res))


def test_a_model_that_learns_nothing_is_said_first_and_no_gap_is_read(tmp_path, monkeypatch):
    # Dice 0.003-0.017 on its own (simulator) test set: a gain "from simulator to real images" means nothing.
    nothing = {"s1": 0.003, "s2": 0.017, "s3": 0.01, "s4": 0.005}
    cfg, res = _run(tmp_path, nothing, dict.fromkeys(SUBJECTS, 0.8), monkeypatch=monkeypatch)
    # On real images it "gains" (0.13 above its simulator Dice).
    _write(res / "experiments/liver_unet/eval/test_rus/summary.json",
           _summary({k: {"liver": v + 0.13} for k, v in nothing.items()}, ["liver"]))
    ctx = pipeline_context(cfg, _files(cfg, res))
    assert ctx["answer"].startswith("No: liver_unet fails in its own domain: class-macro mean Dice 0.01")
    assert "below 0.30 (verdict.in_domain_min_dice)" in ctx["answer"] and "no simulator-to-real gap" in ctx["answer"]
    # How long it trained is said: a short first run fails here for its brevity, not its data.
    assert cfg["experiment_defaults"]["epochs"] == 2
    assert "after 2 epochs of training" in ctx["answer"] and "too few epochs" in ctx["answer"]
    # The number's interval and the subjects it rests on are bracketed, so the sentence reads as one.
    assert re.search(r"Dice 0\.01 \((\[[-0-9., ]+\]|no interval), 4 subjects\) on test_aus, below", ctx["answer"])
    assert ctx["statements"] == [] and (ctx["status"], ctx["badge"]) == ("FAIL", "No")
    (failure,) = ctx["in_domain_failures"]
    assert failure["test_set"] == "test_aus" and failure["dice"] == pytest.approx(np.mean(list(nothing.values())))


def test_clearly_below_nnunet_says_the_pipeline(tmp_path, monkeypatch):
    ours = {"s1": 0.50, "s2": 0.52, "s3": 0.49, "s4": 0.51}
    ref = {"s1": 0.81, "s2": 0.81, "s3": 0.80, "s4": 0.80}
    cfg, res = _run(tmp_path, ours, ref, monkeypatch=monkeypatch)
    ctx = pipeline_context(cfg, _files(cfg, res))
    (st,) = ctx["statements"]
    assert st["verdict"] == "pipeline" and "below nnU-Net" in st["text"] and ctx["answer"].startswith("No")


def test_a_wide_interval_is_undecided_and_two_subjects_get_none():
    rows = [{"experiment": "e", "test_set": "test_aus", "domain": "synthetic", "delta": 0.0, "ci": [-0.3, 0.3],
             "n_subjects": 4, "usseg": 0.8, "nnunet": 0.8},
            {"experiment": "e", "test_set": "test_rus", "domain": "real", "delta": 0.0, "ci": None,
             "n_subjects": 2, "usseg": 0.5, "nnunet": 0.5}]
    (st,) = statements(rows, 0.05)
    assert st["verdict"] == "undecided" and "more test subjects" in st["text"]


def test_a_failed_sanity_check_is_not_ruled_out(tmp_path, monkeypatch):
    same = dict.fromkeys(SUBJECTS, 0.8)
    cfg, res = _run(tmp_path, same, same, overfit=0.3, monkeypatch=monkeypatch)
    ctx = pipeline_context(cfg, _files(cfg, res))
    assert ctx["sanity"]["status"] == "FAIL" and ctx["answer"].startswith("No: a sanity check FAILs")
    html = render_html(cfg, _files(cfg, res))
    assert "FAIL" in html and "0.300" in html


def test_not_installed_and_switched_off_say_so(tmp_path, monkeypatch):
    same = dict.fromkeys(SUBJECTS, 0.8)
    cfg, res = _run(tmp_path, same, same, installed=False, monkeypatch=monkeypatch)
    ctx = pipeline_context(cfg, _files(cfg, res))
    assert ctx["nnunet"]["state"] == "not_installed" and not ctx["comparison"]
    assert "nnU-Net reference not installed" in render_html(cfg, _files(cfg, res))
    cfg["nnunet"]["enabled"] = False
    assert "switched off" in render_html(cfg, _files(cfg, res))


def test_missing_sanity_results_are_not_run_and_html_is_escaped(tmp_path, monkeypatch):
    same = dict.fromkeys(SUBJECTS, 0.8)
    cfg, res = _run(tmp_path, same, same, monkeypatch=monkeypatch)
    (res / "sanity/liver_unet.json").unlink()
    cfg["experiments"] = {"<b>x</b>": {"classes": ["liver"]}}
    html = render_html(cfg, _files(cfg, res))
    assert "NOT RUN" in html and "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def _real_rows(real_delta: float, real_ci: list[float]) -> list[dict]:
    """usseg above a reference that is near the floor on simulator images, and the real-image comparison."""
    return [{"experiment": "e", "test_set": "test_aus", "domain": "synthetic", "delta": 0.45, "ci": [0.34, 0.55],
             "n_subjects": 4, "usseg": 0.60, "nnunet": 0.15},
            {"experiment": "e", "test_set": "test_rus", "domain": "real", "delta": real_delta, "ci": real_ci,
             "n_subjects": 4, "usseg": 0.12 + real_delta, "nnunet": 0.12}]


def test_the_real_image_gap_is_judged_by_the_paired_interval_not_by_the_drops():
    # usseg falls by 0.54, the floor-level reference by 0.03; on real images usseg is 0.06 below it, but the
    # interval reaches past -0.05 and up to +0.01: it cannot say nnU-Net does better there.
    (st,) = statements(_real_rows(-0.06, [-0.13, 0.01]), 0.05)
    assert st["verdict"] == "undecided" and "more real test subjects are needed" in st["text"]
    assert "usseg's" not in st["text"]
    (st,) = statements(_real_rows(-0.20, [-0.30, -0.10]), 0.05)
    assert st["verdict"] == "pipeline" and "nnU-Net does better on the same subjects" in st["text"]
    (st,) = statements(_real_rows(0.10, [-0.02, 0.22]), 0.05)
    assert st["verdict"] == "data" and "bottleneck is the data" in st["text"] and "falls by 0.38" in st["text"]


def test_an_interval_from_inside_to_above_the_margin_is_not_undecided():
    # +0.04 to +0.11 on simulator images: usseg is not worse than nnU-Net there, whatever the width.
    rows = _real_rows(0.04, [-0.01, 0.10])
    rows[0].update(delta=0.08, ci=[0.04, 0.11])
    (st,) = statements(rows, 0.05)
    assert st["text"].startswith("e is level with or above nnU-Net on simulator images")
    assert st["verdict"] == "data"
    rows[0].update(delta=-0.02, ci=[-0.09, 0.05])
    (st,) = statements(rows, 0.05)
    assert st["verdict"] == "undecided" and "reaches below -0.05" in st["text"]


def test_far_above_the_reference_is_not_within_it():
    rows = [{"experiment": "e", "test_set": "test_aus", "domain": "synthetic", "delta": 0.59, "ci": [0.5, 0.68],
             "n_subjects": 4, "usseg": 0.8, "nnunet": 0.21},
            {"experiment": "e", "test_set": "test_rus", "domain": "real", "delta": 0.3, "ci": None,
             "n_subjects": 2, "usseg": 0.5, "nnunet": 0.2}]
    (st,) = statements(rows, 0.05)
    assert "above nnU-Net" in st["text"] and "within" not in st["text"].split(":")[0]
    # usseg falls, nnU-Net barely (it is near the floor on both), but usseg is still the better model on
    # real images: that is no evidence against the pipeline. With 2 real subjects nothing follows.
    assert st["verdict"] == "undecided" and "too few test subjects for an interval" in st["text"]
    rows[0]["ci"], rows[0]["n_subjects"] = None, 2
    (st,) = statements(rows, 0.05)
    assert st["verdict"] == "undecided" and "no interval: 2 subjects" in st["text"]
