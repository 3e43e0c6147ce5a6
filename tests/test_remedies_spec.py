"""Remedy settings: parsing the proposed config blocks, and the transforms they build."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from monai.transforms import Compose

from datasets import fan_frame
from usseg.errors import ConfigError
from usseg.remedies import spec, style, transforms

DOCS = Path(__file__).resolve().parents[1] / "docs" / "remedies.md"


def test_parse_remedy_defaults_and_values():
    assert spec.parse_remedy(None) == spec.NoRemedy()
    assert spec.parse_remedy({}) == spec.NoRemedy()
    assert spec.parse_remedy({"name": "none"}) == spec.NoRemedy()
    fda = spec.parse_remedy({"name": "fda", "beta": 0.01})
    assert isinstance(fda, spec.FourierDomainAdaptation) and fda.beta == 0.01 and fda.prob == 1.0
    assert spec.parse_remedy({"name": "fda", "beta": [0.01, 0.05]}).beta == (0.01, 0.05)
    norm = spec.parse_remedy({"name": "fov_normalise", "method": "zscore"})
    assert norm == spec.FovNormalisation(method="zscore")
    assert spec.parse_remedy({"name": "bn_adapt", "batch_size": 8}).batch_size == 8
    assert spec.parse_remedy({"name": "pseudo_label", "threshold": 0.8}).threshold == 0.8
    assert spec.parse_remedy({"name": "mean_teacher"}).ema_decay == 0.99
    assert set(spec.NEEDS_TARGET_FRAMES) < set(spec.REMEDIES)


@pytest.mark.parametrize(
    "block,match",
    [
        ({"name": "fdaa"}, r"remedy.name = 'fdaa'; use one of none, fov_normalise"),
        ({"beta": 0.1}, "remedy.name = None"),
        ({"name": "fda", "betta": 0.1}, "unknown key.*betta.*allowed: beta, prob, max_target_images"),
        ({"name": "fda", "beta": 0.9}, r"remedy.beta = 0.9 must lie in \[0, 0.5\]"),
        ({"name": "fda", "beta": [0.1, 0.01]}, "low <= high"),
        ({"name": "fda", "beta": "small"}, "must be a number"),
        ({"name": "fov_normalise", "method": "minmax"}, "use one of percentile, zscore"),
        ({"name": "fov_normalise", "low": 60, "high": 40}, "0 <= low < high <= 100"),
        ({"name": "histogram_matching", "reference": "mean"}, "use one of random_frame, pooled"),
        ({"name": "histogram_matching", "prob": 2}, r"remedy.prob = 2.0 must lie in \[0, 1\]"),
        ({"name": "bn_adapt", "batch_size": 0}, "whole number >= 1"),
        ({"name": "bn_adapt", "frames": "all"}, "use one of unlabeled, test"),
        ({"name": "pseudo_label", "threshold": 1.2}, "remedy.threshold"),
        ({"name": "mean_teacher", "ema_decay": 1.5}, "ema_decay"),
        ("fda", "must be a mapping"),
    ],
)
def test_parse_remedy_errors_name_the_key(block, match):
    with pytest.raises(ConfigError, match=match):
        spec.parse_remedy(block, "remedy")
    with pytest.raises(ConfigError, match="experiments.x.remedy"):
        spec.parse_remedy(block, "experiments.x.remedy")


def test_parse_augmentation_extras():
    extras = spec.parse_augmentation_extras(
        {"flip_prob": 0.5, "ultrasound": {"haze": {"prob": 0.3}, "depth_attenuation": {"rate": [0, 2]}}, "generic": True}
    )
    assert extras.ultrasound == {"haze": {"prob": 0.3}, "depth_attenuation": {"rate": [0, 2]}}
    assert extras.generic == spec.GenericAugmentation()
    assert spec.parse_augmentation_extras(None) == spec.AugmentationExtras()
    tfs = transforms.augmentation_transforms(extras, (64, 64))
    assert [type(t).__name__ for t in tfs][:2] == ["RandDepthAttenuationd", "RandHazed"] and len(tfs) == 5
    assert "rate" in spec.transform_settings("depth_attenuation")
    with pytest.raises(ConfigError, match="ultrasound.shadow is not a transform"):
        spec.parse_augmentation_extras({"ultrasound": {"shadow": {}}})
    with pytest.raises(ConfigError, match="unknown key.*radius_x.*allowed: prob, radius, sigma"):
        spec.parse_augmentation_extras({"ultrasound": {"haze": {"radius_x": 1}}})
    with pytest.raises(ConfigError, match="haze.sigma"):
        spec.parse_augmentation_extras({"ultrasound": {"haze": {"sigma": [0, 0.1]}}})
    with pytest.raises(ConfigError, match="generic.*unknown key"):
        spec.parse_augmentation_extras({"generic": {"ops": 2}})
    with pytest.raises(ConfigError, match="num_operations"):
        spec.parse_augmentation_extras({"generic": {"num_operations": 0}})


def test_parse_gap_study():
    assert spec.parse_gap_study(None) == spec.GapStudy()
    study = spec.parse_gap_study({"enabled": False, "learning_curve_fractions": [0.5, 1.0], "change_to_detect": 0.1})
    assert not study.enabled and study.learning_curve_fractions == (0.5, 1.0) and study.change_to_detect == 0.1
    assert study.seeds == 3 and study.remedies == ()
    study = spec.parse_gap_study({"seeds": 5, "remedies": {"cw": {"title": " Class weights ",
                                                                 "settings": {"loss": {"class_weights": "auto"}}},
                                                          "fov": {"settings": {"remedy": {"name": "fov_normalise"}}}}})
    assert study.seeds == 5 and [r.key for r in study.remedies] == ["cw", "fov"]
    assert study.remedies[0].title == "Class weights" and study.remedies[1].title == "fov"  # no title: the key
    assert spec.gap_remedy_titles({"gap_study": {"remedies": {"cw": {"title": "CW", "settings": {"epochs": 1}}}}}) \
        == {"cw": "CW", spec.LOSO_REMEDY: spec.LOSO_TITLE}
    for block, match in [
        ({"seeds": 0}, "seeds"),
        ({"seeds": True}, "seeds"),
        ({"remedies": {"a/b": {"settings": {"epochs": 1}}}}, "cannot name a remedy"),
        ({"remedies": {"a": {"settings": {}}}}, "non-empty mapping"),
        ({"remedies": {"a": {"title": "", "settings": {"epochs": 1}}}}, "title"),
        ({"remedies": {"a": {"settings": {"classes": ["liver"]}}}}, "cannot be changed by a remedy"),
        ({"remedies": {"a": {"settings": {"epochs": 1}, "extra": 1}}}, "unknown key"),
        ({"loso": "yes"}, "loso"),
        ({"learning_curve_fractions": [1.0, 0.5]}, "increasing"),
        ({"learning_curve_fractions": [0, 1]}, "increasing"),
        ({"power": 1.0}, "strictly between"),
        ({"runs": 2}, "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=match):
            spec.parse_gap_study(block)


def test_train_transforms_and_test_images():
    image, label = fan_frame(64, seed=1, gain=0.35)
    det, rnd = transforms.train_transforms(spec.FovNormalisation())
    out = Compose(det + rnd)({"image": image, "label": label})
    assert out["image"].max() == pytest.approx(1.0) and np.array_equal(out["label"], label)
    np.testing.assert_allclose(transforms.prepare_test_images(spec.FovNormalisation(), image)[0], out["image"][0], atol=1e-6)
    assert transforms.prepare_test_images(spec.NoRemedy(), image) is image
    bank = style.TargetBank.from_images(fan_frame(64, seed=5, gain=0.75)[0])
    det, rnd = transforms.train_transforms(spec.FourierDomainAdaptation(beta=0.05), bank, ["AUS"])
    styled = Compose(det + rnd)({"image": image, "label": label, "modality": "AUS"})
    assert styled["image"].mean() > image.mean() + 0.05
    with pytest.raises(ConfigError, match="needs target frames"):
        transforms.train_transforms(spec.HistogramMatching())
    assert transforms.train_transforms(spec.BatchNormAdaptation()) == ([], [])


def test_the_config_blocks_in_the_docs_parse():
    """docs/remedies.md's proposed YAML is what the parsers accept."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/remedies.md has no yaml block"
    cfg = yaml.safe_load(blocks[0])
    study = spec.parse_gap_study(cfg["gap_study"])
    names = set()
    for remedy in study.remedies:
        where = f"gap_study.remedies.{remedy.key}.settings"
        names.add(spec.parse_remedy(remedy.settings.get("remedy"), f"{where}.remedy").name)
        spec.parse_augmentation_extras(remedy.settings.get("augmentation"), f"{where}.augmentation")
    assert names | {"none"} == set(spec.REMEDIES)  # every remedy has an example
