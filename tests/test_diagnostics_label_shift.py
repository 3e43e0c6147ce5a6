"""Label shift: organ presence, size and position per domain, with subjects as units, feed the domain verdict."""

import json

import numpy as np
import pandas as pd
import pytest

from test_diagnostics_fixtures import (
    CLEAN,
    DATASET_CFG,
    DIAG_CFG,
    colour_mask,
    draw_frame,
    make_frames,
    scale_organs,
    subject_anatomy,
    write_dataset,
)
from usseg.diagnostics.domain_shift import check_domain_shift
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.label_shift import check_label_shift
from usseg.diagnostics.label_stats import class_centroids, collect_label_stats
from usseg.diagnostics.survey import survey_images


def _redraw(frames, modality, factor, organs):
    """Frames of `modality` drawn again with the radii of `organs` scaled by `factor` (same style and noise)."""
    for f in frames:
        if f.modality != modality:
            continue
        anatomy = scale_organs(subject_anatomy(f.modality, f.subject, 0, True), factor, organs)
        rng = np.random.default_rng([0, sum(map(ord, f.modality + f.subject)), f.number])
        f.image, labels = draw_frame(anatomy, "real", rng, padding=False)
        if f.mask is not None:
            f.mask = colour_mask(labels, False)
    return frames


def _run(tmp_path, frames):
    fx = write_dataset(tmp_path, frames)
    fx.out_dir.mkdir(parents=True)
    inputs = load_inputs(
        DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    survey = survey_images(inputs, 400, 0, 12)
    shift = check_label_shift(inputs, collect_label_stats(inputs), survey, fx.outputs)
    return fx, inputs, survey, shift


def test_class_centroids():
    labels = np.zeros((10, 20), dtype=np.uint8)
    labels[2:4, 5:9] = 1
    c = class_centroids(labels, 3)
    assert c[1] == pytest.approx([2.5, 6.5]) and np.isnan(c[2]).all()


def test_smaller_real_kidneys_are_named_and_nothing_else(tmp_path):
    frames = _redraw(make_frames(CLEAN, same_style=True), "RUS", 0.6, {"kidney"})
    fx, inputs, survey, shift = _run(tmp_path, frames)
    assert shift["shifted_classes"] == ["kidney"]
    kidney = shift["classes"]["kidney"]
    assert kidney["area_ratio_target_over_source"] == pytest.approx(0.36, abs=0.08)
    assert kidney["area_mannwhitney_p"] < 0.01 and kidney["n_subjects_target"] == 11
    assert "kidney 2.8x smaller in RUS" in shift["phrases"][0]
    table = pd.read_csv(fx.out_dir / "label_shift.csv")
    assert {"presence_share", "area_fov_share_median", "depth_median", "lateral_median"} <= set(table)
    assert (fx.out_dir / "label_shift.png").stat().st_size > 10_000
    # The verdict: the images are alike, the organs are not -> WARN, the class named, what to try next.
    result = check_domain_shift(inputs, survey, fx.outputs, label_shift=shift)
    assert result.status == "WARN" and result.details["image_status"] == "PASS"
    assert "Label shift: kidney 2.8x smaller in RUS" in result.reason
    report = json.loads((fx.out_dir / "domain_shift.json").read_text())
    assert report["label_shift"]["shifted_classes"] == ["kidney"]


def test_same_anatomy_and_chance_presence_differences_are_not_named(tmp_path):
    # Pancreas and spleen appear in a random half of the subjects on both sides: chance, not shift.
    _, _, _, shift = _run(tmp_path, make_frames(CLEAN, same_style=True))
    assert shift["shifted_classes"] == [], shift["phrases"]
    pancreas = shift["classes"]["pancreas"]
    assert pancreas["presence_mannwhitney_p"] > DIAG_CFG.get("label_shift", {}).get("alpha", 0.05)


def test_classes_a_domain_never_labels_are_left_to_class_balance(tmp_path):
    frames = make_frames(CLEAN, same_style=True)
    for f in frames:
        if f.modality == "RUS" and f.mask is not None:
            f.mask[(f.mask == (0, 255, 255)).all(axis=-1)] = 0  # no adrenal in real masks
    _, _, _, shift = _run(tmp_path, frames)
    assert "adrenal" not in shift["shifted_classes"]
    assert shift["classes"]["adrenal"]["note"].startswith("never labeled in RUS")
