"""The gap study's arms and its tables from the arms' evaluation outputs (usseg.gap.study)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from datasets import eval_summary
from usseg import contracts
from usseg.config import check_config
from usseg.errors import ConfigError, DataError
from usseg.gap import study as gap
from usseg.gap.files import eval_dir, seed_dir, seed_files
from usseg.remedies import gap_stats


def write_eval(folder, scores: dict, nsd_offset: float = 0.0, classes=("liver", "kidney")):
    """An evaluation folder: per_subject.csv with dice/nsd per class, summary.json naming the shared classes."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for subject, value in scores.items():
        row = {"subject_id": subject, "n_images": 2}
        for c in classes:
            row[f"dice_{c}"] = value
            row[f"nsd_{c}"] = value + nsd_offset
        row["dice_adrenal"] = 0.0  # not a shared class: left out of the subject's mean
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "per_subject.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(eval_summary(classes=classes)))
    return folder


def write_arm(arm_dir, per_seed: list[dict[str, dict]], seconds: float = 10.0):
    """An arm's folder: per seed offset, timing.csv and eval/{test_set}/ from {test_set: {subject: score}}."""
    for k, tables in enumerate(per_seed):
        folder = seed_dir(arm_dir, k)
        for test_set, scores in tables.items():
            write_eval(Path(eval_dir(folder, test_set)), scores)
        pd.DataFrame({"epoch": [1, 2], "seconds": [seconds / 2, seconds / 2]}).to_csv(f"{folder}/timing.csv",
                                                                                        index=False)
    return str(arm_dir)


def config(**study):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["gap_study"].update(study)
    return check_config(cfg)


# ----------------------------------------------------------------------------- the arms


def test_arms_are_the_baseline_plus_each_remedy_and_share():
    cfg = config()
    arms = gap.fixed_arms(cfg)
    assert arms[0] == "baseline" and "curve_0.5" in arms and "curve_1" not in arms  # 1.0 is the baseline arm
    assert [a for a in arms if a.startswith("remedy_")] == [f"remedy_{k}" for k in cfg["gap_study"]["remedies"]]
    assert gap.seed_offsets(cfg) == [0, 1, 2]
    fov = gap.arm_experiment(cfg, "remedy_fov_normalise")
    base = gap.baseline_experiment(cfg)
    assert fov.remedy.name == "fov_normalise" and fov.epochs == base.epochs and fov.name == "remedy_fov_normalise"
    # The overlay merges key by key: class weights change the loss, keep its name.
    weights = gap.arm_experiment(cfg, "remedy_class_weights")
    assert weights.loss.class_weights == "auto" and weights.loss.name == base.loss.name
    loso = gap.arm_experiment(cfg, "loso_g")
    assert loso.train_modalities == ("AUS", "RUS") and loso.seed == base.seed
    assert gap.arm_experiment(cfg, "curve_0.5").train_modalities == ("AUS",)
    with pytest.raises(ValueError, match="not a gap-study arm"):
        gap.arm_kind("nonsense")


def test_arms_reuse_the_trainings_they_share():
    cfg = config(arm_settings={})  # the arms train with the baseline's own settings
    plan = {a: gap.reuse_plan(cfg, a, "results/experiments/{experiment}", "results/gap/arms/{arm}")
            for a in gap.fixed_arms(cfg)}
    # Seed 0 of an arm with an experiment's settings is that experiment (training and evaluation).
    assert plan["baseline"] == ({0: "results/experiments/multiorgan_unet"},) * 2
    assert plan["remedy_class_weights"] == ({0: "results/experiments/multiorgan_unet_weighted"},) * 2
    # bn_adapt acts at prediction only: every seed is scored on the baseline arm's models.
    trained, evaluated = plan["remedy_bn_adapt"]
    assert trained == {k: f"results/gap/arms/baseline/seed{k}" for k in range(3)} and evaluated == {}
    # LOSO folds and learning-curve shares train on other splits: never an experiment's training.
    assert plan["curve_0.5"] == ({}, {}) and gap.experiment_like(cfg, "loso_g") is None
    assert plan["remedy_fov_normalise"] == ({}, {})
    files = gap.reused_files(*plan["baseline"], ["test_aus"])
    assert "results/experiments/multiorgan_unet/model.safetensors" in files
    assert "results/experiments/multiorgan_unet/eval/test_aus/per_subject.csv" in files


def test_arm_settings_apply_to_every_arm_and_end_the_reuse_of_experiments():
    cfg = config(arm_settings={"epochs": 7})
    base = gap.baseline_experiment(cfg)
    assert base.epochs != 7  # the experiment itself is untouched
    for arm in [*gap.fixed_arms(cfg), "loso_g"]:
        assert gap.arm_experiment(cfg, arm).epochs == 7, arm
    assert gap.arm_experiment(cfg, "remedy_fov_normalise").remedy.name == "fov_normalise"
    plan = {a: gap.reuse_plan(cfg, a, "results/experiments/{experiment}", "results/gap/arms/{arm}")
            for a in gap.fixed_arms(cfg)}
    # No experiment trains with the arms' settings: the baseline arm trains all its seeds ...
    assert plan["baseline"] == ({}, {}) and plan["remedy_class_weights"] == ({}, {})
    # ... and a prediction-only remedy is still scored on the baseline arm's models.
    assert plan["remedy_bn_adapt"][0] == {k: f"results/gap/arms/baseline/seed{k}" for k in range(3)}
    for bad, message in (({"seed": 3}, "seed cannot be changed"), ({"classes": ["liver"]}, "classes"),
                         ({"model": {"name": "random_forest"}}, "train a network")):
        with pytest.raises(ConfigError, match=message):
            config(arm_settings=bad)


def test_seed_files_are_the_contract_layout():
    files = seed_files("results/gap/arms/baseline", [0, 1], ["test_rus"])
    assert "results/gap/arms/baseline/seed1/model.safetensors" in files
    assert "results/gap/arms/baseline/seed0/eval/test_rus/summary.json" in files
    assert "results/gap/arms/baseline/seed1/eval/test_rus/confusion.csv" in files
    assert "results/gap/arms/baseline/seed0/curves.png" in files
    assert len(files) == 2 * (4 + 4)


def test_remedies_are_validated_against_the_baseline():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["gap_study"]["remedies"] = {"forest": {"settings": {"model": {"name": "random_forest"}}}}
    with pytest.raises(ConfigError, match="gap_study.remedies.forest.settings.*not one"):
        check_config(cfg)
    cfg["gap_study"]["remedies"] = {"liver": {"settings": {"classes": ["liver"]}}}
    with pytest.raises(ConfigError, match="classes cannot be changed by a remedy"):
        check_config(cfg)
    cfg["gap_study"]["remedies"] = {"same": {"settings": {"loss": {"class_weights": "none"}}}}
    with pytest.raises(ConfigError, match="changes nothing"):
        check_config(cfg)
    cfg["gap_study"]["remedies"] = {"bad": {"settings": {"remedy": {"name": "fda", "beta": 2}}}}
    with pytest.raises(ConfigError, match="gap_study.remedies.bad.settings.remedy.beta"):
        check_config(cfg)
    cfg["gap_study"]["remedies"] = {"typo": {"settings": {"epochz": 3}}}
    with pytest.raises(ConfigError, match="epochz"):
        check_config(cfg)


# ----------------------------------------------------------------------------- the tables

SUBJECTS = ["s1", "s2", "s3", "s4"]


def _study(tmp_path, remedy_offsets=(0.10, 0.12, 0.08, 0.11), seed_shift=(0.0, 0.01, -0.01)):
    """A baseline and one remedy arm, three seeds each, on test_aus and test_rus; two LOSO folds."""
    base = dict(zip(SUBJECTS, [0.4, 0.5, 0.6, 0.3]))
    arms = {}
    arms["baseline"] = write_arm(tmp_path / "baseline", [
        {t: {s: v + sh for s, v in base.items()} for t in ("test_aus", "test_rus")} for sh in seed_shift])
    arms["remedy_rem"] = write_arm(tmp_path / "remedy_rem", [
        {t: {s: v + d + 2 * sh for (s, v), d in zip(base.items(), remedy_offsets)} for t in ("test_aus", "test_rus")}
        for sh in seed_shift], seconds=15.0)
    arms["curve_0.5"] = write_arm(tmp_path / "curve_0.5", [
        {t: {s: v - 0.1 + sh for s, v in base.items()} for t in ("test_aus", "test_rus")} for sh in seed_shift])
    for s, v in (("s1", 0.7), ("s2", 0.6), ("s3", 0.9)):
        arms[f"loso_{s}"] = write_arm(tmp_path / f"loso_{s}", [{"test_rus": {s: v + sh}} for sh in seed_shift])
    return arms


def _outputs(tmp_path):
    names = ("gap_closure", "seed_effects", "loso", "learning_curve", "when_to_stop", "gap_closure_json",
             "learning_curve_dice")
    ext = {"when_to_stop": "json", "gap_closure_json": "json"}
    return {n: str(tmp_path / "out" / f"{n}.{ext.get(n, 'csv')}") for n in names}


STUDY = {"seeds": 3, "remedies": {"rem": {"title": "A remedy", "settings": {"epochs": 3}}},
         "learning_curve_fractions": [0.5, 1.0], "change_to_detect": 0.05, "alpha": 0.05, "power": 0.8}


def test_write_gap_results_follows_the_contract(tmp_path):
    arms = _study(tmp_path)
    out = _outputs(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "domain.json").write_text(json.dumps(
        {"remedy": "fda", "harmonises": True, "before": {"possible": True, "auc": 0.9},
         "after": {"possible": True, "auc": 0.7}}))
    gap.write_gap_results(STUDY, ["test_aus", "test_rus"], "test_rus", arms, {"rem": str(tmp_path / "domain.json")},
                          out)
    closure = contracts.read_gap_closure(out["gap_closure"])
    assert list(closure.columns) == contracts.GAP_CLOSURE_COLUMNS
    row = closure[(closure["remedy"] == "rem") & (closure["test_set"] == "test_rus") & (closure["metric"] == "dice")]
    row = row.iloc[0]
    assert row["delta"] == pytest.approx(0.1025) and row["n_subjects"] == 4 and row["n_seeds"] == 3
    # Per seed the remedy moved twice as much as the baseline: the change's seed SD is that of the shifts.
    assert row["seed_sd"] == pytest.approx(np.std([0.0, 0.01, -0.01], ddof=1))
    assert 0 < row["ci_lo"] < row["ci_hi"]
    cost = closure[closure["metric"] == "train_seconds"].iloc[0]
    assert cost["delta"] == 5.0 and cost["n_seeds"] == 3 and math.isnan(cost["ci_lo"])
    assert closure[closure["metric"] == "domain_auc"].iloc[0]["delta"] == pytest.approx(-0.2)
    loso_row = closure[closure["remedy"] == gap.LOSO_REMEDY]
    assert set(loso_row["metric"]) == {"dice", "surface_dice"} and (loso_row["n_subjects"] == 3).all()
    effects = contracts.read_seed_effects(out["seed_effects"])
    mine = effects[(effects["remedy"] == "rem") & (effects["test_set"] == "test_rus") & (effects["metric"] == "dice")]
    assert mine["seed"].tolist() == [0, 1, 2] and mine["delta"].mean() == pytest.approx(row["delta"])
    loso = contracts.read_loso(out["loso"])
    assert loso["held_out_subject"].tolist() == ["s1", "s2", "s3"] and (loso["n_seeds"] == 3).all()
    assert loso["dice"].tolist() == pytest.approx([0.7, 0.6, 0.9])
    assert loso["dice_seed_sd"].tolist() == pytest.approx([0.01] * 3)
    curve = contracts.read_learning_curve(out["learning_curve"])
    dice = curve[(curve["metric"] == "dice") & (curve["test_set"] == "test_rus")]
    assert dice["level"].tolist() == [0.5, 1.0] and dice.iloc[1]["step_delta"] == pytest.approx(0.1)
    assert dice.iloc[1]["n_seeds"] == 3 and np.isfinite(dice.iloc[1]["step_ci_lo"])
    stop = contracts.read_when_to_stop(out["when_to_stop"])
    assert stop["n_subjects"] == 4 and stop["n_seeds"] == 3 and set(stop["kinds"]) == {"remedy", "real_subjects"}
    for kind in stop["kinds"].values():
        assert kind["estimable"] and kind["sd_subject_ci95"][0] < kind["sd_subject"] < kind["sd_subject_ci95"][1]
    assert "pooled over the 1 remedies" in stop["kinds"]["remedy"]["sd_source"]
    assert "leave one subject out" in stop["kinds"]["real_subjects"]["sd_source"]
    metrics = json.loads((tmp_path / "out" / "gap_closure_json.json").read_text())
    assert metrics["rem"]["test_rus"]["dice"]["n_seeds"] == 3


def test_when_to_stop_sizes_each_kind_with_its_own_spread():
    """A remedy with a steady small effect and LOSO with a large, uneven one (issue 26: a 90-fold variance
    ratio): each kind keeps its own SD; nothing pools them."""
    idx = ["s1", "s2", "s3", "s4"]
    base = pd.DataFrame({k: [0.4, 0.5, 0.6, 0.3] for k in range(3)}, index=idx)
    steady = base + np.array([[0.0], [0.01], [0.0], [0.01]])
    loso = pd.DataFrame({k: [0.9, 0.5, 0.95, 0.35] for k in range(3)}, index=idx)
    study = {"change_to_detect": 0.05, "alpha": 0.05, "power": 0.8}
    stop = gap.when_to_stop(base, {"rem": gap_stats.seeded_delta(base, steady)},
                            gap_stats.seeded_delta(base, loso), "test_rus", study)
    remedy, real = stop["kinds"]["remedy"], stop["kinds"]["real_subjects"]
    assert real["sd_subject"] > 20 * remedy["sd_subject"]
    assert real["minimum_detectable_change"] > remedy["minimum_detectable_change"]
    assert real["subjects_needed"] > remedy["subjects_needed"]
    # No remedy measured: the baseline's spread at an assumed correlation, said so.
    alone = gap.when_to_stop(base + np.array([[0.0], [0.1], [0.2], [0.3]]), {}, None, "test_rus", study)
    assert "no remedy measured" in alone["kinds"]["remedy"]["sd_source"] and set(alone["kinds"]) == {"remedy"}


def test_when_to_stop_below_three_subjects_cannot_be_estimated():
    base = pd.DataFrame({k: [0.4, 0.5] for k in range(3)}, index=["a", "b"])
    arm = base + 0.05
    stop = gap.when_to_stop(base, {"rem": gap_stats.seeded_delta(base, arm)}, gap_stats.seeded_delta(base, arm),
                            "test_rus", {"change_to_detect": 0.05, "alpha": 0.05, "power": 0.8})
    for kind in stop["kinds"].values():
        assert not kind["estimable"] and kind["subjects_needed"] is None and "cannot be estimated" in kind["text"]


def test_arm_scores_and_loso_check_their_subjects(tmp_path):
    arm = write_arm(tmp_path / "a", [{"test_rus": {"a": 0.5, "b": 0.6}}, {"test_rus": {"a": 0.5}}])
    with pytest.raises(DataError, match="other subjects than the arm's other seeds"):
        gap.arm_scores([seed_dir(arm, 0), seed_dir(arm, 1)], "test_rus")
    fold = write_arm(tmp_path / "f", [{"test_rus": {"b": 0.6}}])
    with pytest.raises(DataError, match="held-out subject 'a'"):
        gap.loso_scores({"a": [seed_dir(fold, 0)]}, "test_rus")


def test_subject_scores_average_the_shared_classes(tmp_path):
    d = write_eval(tmp_path / "e", {"a": 0.5, "b": 0.7}, nsd_offset=0.1)
    s = gap.subject_scores(d)
    assert list(s["subject_id"]) == ["a", "b"]
    assert s["dice"].tolist() == pytest.approx([0.5, 0.7])
    assert s["surface_dice"].tolist() == pytest.approx([0.6, 0.8])
    with pytest.raises(DataError, match="summary.json does not exist: run the evaluate step first"):
        gap.subject_scores(tmp_path / "missing")
