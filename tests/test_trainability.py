"""What the data can train (usseg.trainability): decided from the split, with a reason for each part left out."""

from __future__ import annotations

import copy

import pandas as pd

from conftest import tiny_config
from usseg.trainability import TrainingPlan, plan_from_tables


def tables(rows: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, splits) of (image_id, modality, split) rows."""
    manifest = pd.DataFrame([{"image_id": i, "modality": m} for i, m, _ in rows])
    splits = pd.DataFrame([{"image_id": i, "subject_id": i, "split": s} for i, _, s in rows])
    return manifest, splits


def config(gap=False, nnunet=False) -> dict:
    cfg = copy.deepcopy(tiny_config())
    cfg["gap_study"]["enabled"] = gap
    cfg["gap_study"]["baseline"] = "multiorgan_unet_weighted"
    cfg["nnunet"]["enabled"] = nnunet
    return cfg


def test_everything_trains_on_labeled_simulator_training_images():
    manifest, splits = tables([("a", "AUS", "train"), ("b", "AUS", "val"), ("c", "RUS", "test_rus")])
    plan = plan_from_tables(config(gap=True), manifest, splits)
    assert plan == TrainingPlan()
    assert plan.trained(["liver_unet", "liver_rf"]) == ["liver_unet", "liver_rf"] and plan.notice() == ""


def test_labels_only_in_the_test_split_train_nothing_and_say_why():
    """The reference dataset's real part alone: every label is in the test split."""
    manifest, splits = tables([("a", "RUS", "unlabeled"), ("c", "RUS", "test_rus"), ("d", "AUS", "test_aus")])
    cfg = config(gap=True)
    plan = plan_from_tables(cfg, manifest, splits)
    assert set(plan.untrained) == set(cfg["experiments"])
    assert all(r == "no labeled training images in modality AUS" for r in plan.untrained.values())
    assert plan.trained(cfg["experiments"]) == []
    assert "multiorgan_unet_weighted" in plan.gap and "cannot be trained" in plan.gap
    assert plan.notice() == ("Not trained: liver_unet, multiorgan_unet_weighted, liver_rf "
                             "(no labeled training images in modality AUS).")


def test_an_experiment_on_another_modality_still_trains():
    manifest, splits = tables([("a", "RUS", "train"), ("b", "RUS", "val"), ("c", "RUS", "test_rus")])
    cfg = config()
    cfg["experiments"]["liver_unet"]["train_modalities"] = ["RUS"]
    plan = plan_from_tables(cfg, manifest, splits)
    assert plan.trained(cfg["experiments"]) == ["liver_unet"]


def test_without_validation_images_a_network_trains_but_its_sanity_checks_do_not():
    manifest, splits = tables([("a", "AUS", "train"), ("c", "RUS", "test_rus")])
    plan = plan_from_tables(config(), manifest, splits)
    assert plan.untrained == {}
    assert set(plan.no_sanity) == {"liver_unet", "multiorgan_unet_weighted"}  # the forest has no such check
    assert plan.sanity(["liver_unet", "multiorgan_unet_weighted"]) == []


def test_the_nnunet_reference_needs_labeled_training_images_of_its_modalities(monkeypatch):
    import usseg.trainability as trainability

    monkeypatch.setattr(trainability, "reference_runs", lambda cfg: cfg["enabled"])
    manifest, splits = tables([("a", "RUS", "train"), ("c", "RUS", "test_rus")])
    assert plan_from_tables(config(nnunet=True), manifest, splits).nnunet == (
        "no labeled training images in modality AUS")
    manifest, splits = tables([("a", "AUS", "val"), ("c", "RUS", "test_rus")])
    assert plan_from_tables(config(nnunet=True), manifest, splits).nnunet is None
