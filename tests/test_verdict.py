"""The final verdict (usseg.verdict): domain shift FAILs only on measured harm; the pipeline check is added."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from datasets import eval_summary
from test_train import tiny_config
from usseg import composite, verdict
from usseg.checks.pipeline import PipelineFiles, sanity_experiments
from usseg.names import Names
from usseg.report.drops import drops_summary

AUS, RUS = ["ct10", "ct11", "ct12", "ct13"], ["a", "b", "g", "h"]


def _summary(values: dict[str, float]) -> dict:
    s = eval_summary({k: {"liver": v} for k, v in values.items()}, ["liver"])
    fg = composite.composite(composite.summary_values(s, ["liver"]))
    s["mean_foreground"].update(dice=fg["estimate"], ci95=fg["ci95"], n_subjects=fg["n_subjects"])
    s["dice_mean_foreground"] = s["dice"]["liver"] = fg["estimate"]
    return s


def _config() -> dict:
    cfg = tiny_config()
    cfg["experiments"] = {"good": {"classes": ["liver"]}, "nothing": {"classes": ["liver"]}}
    cfg["test_sets"] = ["test_aus", "test_rus"]
    return cfg


def _summaries(drop: float = 0.4) -> dict:
    good_aus = dict(zip(AUS, [0.90, 0.92, 0.88, 0.91]))
    return {("good", "test_aus"): _summary(good_aus),
            ("good", "test_rus"): _summary({s: v - drop for s, v in zip(RUS, good_aus.values())}),
            # A model that learns nothing in its own domain "gains" on real images: no drop is read from it.
            ("nothing", "test_aus"): _summary(dict(zip(AUS, [0.003, 0.017, 0.01, 0.005]))),
            ("nothing", "test_rus"): _summary(dict(zip(RUS, [0.13, 0.15, 0.14, 0.12])))}


def _diag_checklist(status: str = "WARN") -> dict:
    def check(cid, st):
        return {"id": cid, "title": cid, "status": st, "value": 1.0, "threshold": "t", "reason": f"{cid} said."}

    return {"overall": "WARN", "checks": [check("composition", "PASS"), check("domain_shift", status)],
            "next_steps": [{"check": "domain_shift", "side": "model", "text": "adapt"}]}


def test_a_detectable_shift_fails_only_with_measured_harm():
    cfg = _config()
    drops = verdict.domain_drops(cfg, _summaries())
    assert [d["experiment"] for d in drops] == ["good"]  # the model failing in-domain is left out
    (d,) = drops
    assert d["estimate"] == pytest.approx(0.4) and d["harm"] and d["ci95"][0] > 0.05
    check = _diag_checklist()["checks"][1]
    failed = verdict.decide_domain_shift(check, True, drops, 0.05)
    assert failed["status"] == "FAIL" and "Measured harm, so FAIL: good falls by 0.40" in failed["reason"]
    # Detectable without harm: a drop whose interval reaches below the threshold stays WARN, said in words.
    small = verdict.domain_drops(cfg, _summaries(drop=0.03))
    kept = verdict.decide_domain_shift(check, True, small, 0.05)
    assert kept["status"] == "WARN" and 'So WARN "detectable shift", not FAIL' in kept["reason"]
    # Harm without a detectable shift does not make a FAIL either.
    assert verdict.decide_domain_shift(check, False, drops, 0.05)["status"] == "WARN"


def test_the_final_checklist_adds_the_pipeline_check_and_keeps_the_data_overall(tmp_path):
    cfg = _config()
    res = tmp_path / "results"
    summaries = {}
    for (exp, ts), s in _summaries().items():
        path = res / f"experiments/{exp}/eval/{ts}/summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(s))
        summaries[(exp, ts)] = path
    files = PipelineFiles(sanity={e: res / f"sanity/{e}.json" for e in sanity_experiments(cfg)},
                          round_trip=res / "sanity/label_round_trip.json", nnunet={}, nnunet_info=None,
                          summaries=summaries)
    out = verdict.final_checklist(cfg, _diag_checklist(), {"detectable_shift": True}, files)
    by_id = {c["id"]: c for c in out["checks"]}
    assert by_id["domain_shift"]["status"] == "FAIL" and out["overall"] == "FAIL"
    pipeline = by_id["pipeline"]
    assert set(pipeline) == {"id", "title", "status", "value", "threshold", "reason"}
    # The model that learns nothing is said first; the pipeline check has its own status.
    assert pipeline["status"] == "FAIL" and pipeline["reason"].startswith("No: nothing fails in its own domain")
    assert out["checks"][-1] is pipeline and out["next_steps"][0]["text"] == "adapt"
    assert [d["experiment"] for d in out["domain_drops"]] == ["good"]
    # The overall is the data's: a pipeline FAIL alone does not make it FAIL.
    calm = verdict.final_checklist(cfg, _diag_checklist("PASS"), {"detectable_shift": False}, files)
    assert calm["overall"] == "PASS" and calm["checks"][-1]["status"] == "FAIL"


def test_the_models_say_first_when_one_fails_in_its_own_domain():
    cfg = _config()
    ctx = SimpleNamespace(config=cfg, experiments=list(cfg["experiments"]), summaries=_summaries(),
                          domain_pairs=lambda: [("test_aus", "test_rus")], fg_classes=lambda: ["liver"],
                          names=Names(cfg))
    said = drops_summary(ctx)["lines"]
    assert str(said[0]["experiment"]) == "nothing" and said[0]["text"].startswith("nothing fails in its own domain")
    assert not any("gain" in d["text"] for d in said if str(d["experiment"]) == "nothing")
    (good,) = [d["text"] for d in said if str(d["experiment"]) == "good"]
    # Every number carries its interval: both sides and the drop.
    assert good.startswith("liver Dice 0.90 [0.88, 0.93] on simulator images, 0.50 [0.48, 0.53] on real images: "
                           "a drop of 0.40 (95 % interval of the drop"), good
