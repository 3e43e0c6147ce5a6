"""The gap study's tables from evaluation outputs (usseg.gap)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from datasets import eval_summary
from usseg import gap
from usseg.config import check_config
from usseg.errors import DataError


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


def test_subject_scores_average_the_shared_classes(tmp_path):
    d = write_eval(tmp_path / "e", {"a": 0.5, "b": 0.7}, nsd_offset=0.1)
    s = gap.subject_scores(d)
    assert list(s["subject_id"]) == ["a", "b"]
    assert s["dice"].tolist() == pytest.approx([0.5, 0.7])
    assert s["surface_dice"].tolist() == pytest.approx([0.6, 0.8])
    with pytest.raises(DataError, match="summary.json does not exist: run the evaluate step first"):
        gap.subject_scores(tmp_path / "missing")


def test_gap_closure_pairs_subjects_and_records_cost(tmp_path):
    subjects = ["s1", "s2", "s3", "s4"]
    base = {s: v for s, v in zip(subjects, [0.4, 0.5, 0.6, 0.3])}
    better = {s: v + d for (s, v), d in zip(base.items(), [0.10, 0.12, 0.08, 0.11])}
    dirs = {}
    for t in ("test_aus", "test_rus"):
        dirs[("base", t)] = write_eval(tmp_path / "base" / t, base)
        dirs[("rem", t)] = write_eval(tmp_path / "rem" / t, better)
    domain = {"rem": {"before": {"possible": True, "auc": 0.9}, "after": {"possible": True, "auc": 0.7}}}
    table = gap.gap_closure("base", ["rem"], dirs, ["test_aus", "test_rus"], {"base": 10.0, "rem": 15.0}, domain)
    assert list(table.columns) == ["remedy", "test_set", "metric", "baseline", "value", "delta", "ci_lo", "ci_hi",
                                   "n_subjects"]
    row = table[(table["test_set"] == "test_rus") & (table["metric"] == "dice")].iloc[0]
    assert row["delta"] == pytest.approx(0.1025) and row["n_subjects"] == 4 and 0 < row["ci_lo"] < row["ci_hi"]
    cost = table[table["metric"] == "train_seconds"].iloc[0]
    assert cost["delta"] == 5.0 and math.isnan(cost["ci_lo"])
    assert table[table["metric"] == "domain_auc"].iloc[0]["delta"] == pytest.approx(-0.2)
    assert set(table["metric"]) == {"dice", "surface_dice", "train_seconds", "domain_auc"}

    stop = gap.when_to_stop(dirs[("base", "test_rus")], dirs, "base", ["rem"], "test_rus",
                            {"change_to_detect": 0.05, "alpha": 0.05, "power": 0.8})
    assert stop["n_subjects"] == 4 and stop["minimum_detectable_change"] > 0
    assert "pooled SD" in stop["sd_source"] and "4 labeled real subjects" in stop["text"]


def test_when_to_stop_without_remedies_uses_the_baseline_spread(tmp_path):
    d = write_eval(tmp_path / "b", {"a": 0.2, "b": 0.5, "c": 0.8})
    stop = gap.when_to_stop(d, {}, "b", [], "test_rus", {"change_to_detect": 0.05, "alpha": 0.05, "power": 0.8})
    assert "between-subject SD" in stop["sd_source"]
    assert stop["sd_diff"] == pytest.approx(np.std([0.2, 0.5, 0.8], ddof=1))  # sqrt(2 * (1 - 0.5)) = 1


def test_loso_table_keeps_the_held_out_subject(tmp_path):
    dirs = {s: write_eval(tmp_path / s, {s: v}) for s, v in (("b", 0.4), ("a", 0.6))}
    table = gap.loso_table(dirs)
    assert list(table.columns)[0] == "held_out_subject"
    assert table["held_out_subject"].tolist() == ["a", "b"] and table["dice"].tolist() == pytest.approx([0.6, 0.4])
    with pytest.raises(DataError, match="held-out subject"):
        gap.loso_table({"z": dirs["a"]})


def test_learning_curve_table_has_intervals_per_test_set_and_metric(tmp_path):
    subjects = ["s1", "s2", "s3"]
    dirs = {}
    for f, shift in (("0.5", 0.0), ("1", 0.1)):
        dirs[(f, "test_aus")] = write_eval(tmp_path / f, {s: 0.3 + 0.1 * i + shift for i, s in enumerate(subjects)})
    table = gap.learning_curve_table(dirs)
    assert table.columns[:3].tolist() == ["test_set", "metric", "level"]
    dice = table[table["metric"] == "dice"]
    assert dice["level"].tolist() == [0.5, 1.0]
    assert dice.iloc[1]["step_delta"] == pytest.approx(0.1) and dice.iloc[1]["step_n_subjects"] == 3


def test_remedy_experiments_share_the_baseline_classes():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["gap_study"] = {"enabled": True, "baseline": "multiorgan_unet"}
    cfg["experiments"]["multiorgan_fov"] = {"remedy": {"name": "fov_normalise"}}
    check_config(cfg)
    # liver_unet predicts other classes and liver_rf is a forest: neither is compared.
    assert gap.remedy_experiments(cfg) == ["multiorgan_unet_weighted", "multiorgan_fov"]
    loso = gap.loso_experiment(cfg)
    assert loso.train_modalities == ("AUS", "RUS") and loso.name == "multiorgan_unet_loso"
    curve = gap.curve_experiment(cfg, "0.5")
    assert curve.name == "multiorgan_unet_share0.5" and curve.train_modalities == ("AUS",)
    assert gap.fraction_names(cfg) == ["0.25", "0.5", "1"]


def test_when_to_stop_pools_the_spread_of_every_measured_change(tmp_path):
    # A remedy with a steady small effect and LOSO with a large, uneven one: the
    # sensitivity must reflect both, not the steadiest change alone.
    subjects = ["s1", "s2", "s3", "s4"]
    base = dict(zip(subjects, [0.4, 0.5, 0.6, 0.3]))
    steady = {s: v + 0.01 * (i % 2) for i, (s, v) in enumerate(base.items())}
    dirs = {("base", "test_rus"): write_eval(tmp_path / "base", base),
            ("rem", "test_rus"): write_eval(tmp_path / "rem", steady)}
    study = {"change_to_detect": 0.05, "alpha": 0.05, "power": 0.8}
    alone = gap.when_to_stop(dirs[("base", "test_rus")], dirs, "base", ["rem"], "test_rus", study)
    loso = pd.Series([0.9, 0.5, 0.95, 0.35], index=subjects)
    both = gap.when_to_stop(dirs[("base", "test_rus")], dirs, "base", ["rem"], "test_rus", study,
                            {gap.LOSO_REMEDY: loso})
    assert both["sd_diff"] > 5 * alone["sd_diff"]
    assert both["minimum_detectable_change"] > alone["minimum_detectable_change"]
    assert both["subjects_needed"] > alone["subjects_needed"]
    assert "every measured change" in both["sd_source"]
