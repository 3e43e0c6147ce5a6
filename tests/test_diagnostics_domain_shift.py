"""Domain shift: the field of view, histogram distances, the subject-grouped classifier two-sample test on
harmonised images, its format control and permutation test, and the intensity a model sees."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from test_diagnostics_fixtures import (
    CLEAN,
    DATASET_CFG,
    DEMO_LIKE,
    DIAG_CFG,
    SIZE,
    build,
    draw_frame,
    make_frames,
    subject_anatomy,
    write_dataset,
)
from usseg.dataset_spec import DatasetSpec
from usseg.diagnostics.domain_shift import (
    auc_interval,
    check_domain_shift,
    classifier_two_sample_test,
    comparison_names,
    distribution_distances,
    out_of_fold_scores,
    subject_folds,
)
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.survey import image_features, percentiles_from_hist, survey_images
from usseg.fov import field_of_view


def test_field_of_view_is_the_fan_with_its_dark_organs_but_not_border_or_padding():
    rng = np.random.default_rng(0)
    img, _ = draw_frame(subject_anatomy("AUS", "ct1", 0, True), "synthetic", rng, padding=True)
    img[30:34, 30:34] = 3  # an anechoic spot inside the fan, darker than the threshold
    fov = field_of_view(img, 12)
    assert fov[30:34, 30:34].all()
    assert not fov[-3:].any()  # grey-10 padding strip
    assert not fov[img == 0].any()  # the black frame around the fan
    assert fov.mean() > 0.4


def test_field_of_view_at_half_resolution_for_large_images():
    yy, xx = np.mgrid[:300, :320]
    img = np.where(np.hypot(yy + 50, xx - 160) < 300, 80, 0).astype(np.uint8)
    img[-6:] = 10
    fov = field_of_view(img, 12)
    assert fov.shape == img.shape
    assert np.mean(fov == (img > 12)) > 0.99


def test_auc_interval_matches_sklearn_and_delong_without_clusters():
    rng = np.random.default_rng(1)
    scores = np.round(rng.uniform(size=60), 1)  # many ties
    y = rng.integers(0, 2, size=60)
    auc, low, high = auc_interval(scores, y, np.arange(60))
    assert auc == pytest.approx(roc_auc_score(y, scores))
    # one image per subject: the variance is DeLong's, the quantile Student's t
    pos, neg = scores[y == 1], scores[y == 0]
    psi = (pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])
    var = psi.mean(1).var(ddof=1) / pos.size + psi.mean(0).var(ddof=1) / neg.size
    from scipy.stats import t

    half = t.ppf(0.975, min(pos.size, neg.size) - 1) * np.sqrt(var)
    assert (low, high) == pytest.approx((auc - half, auc + half))
    # vectorised over rows: the same answer row by row
    many = auc_interval(np.stack([scores, scores[::-1]]), np.stack([y, y]), np.arange(60))
    assert many[0] == pytest.approx([auc, low, high])
    assert many[1] == pytest.approx(auc_interval(scores[::-1], y, np.arange(60)))


def test_auc_interval_widens_with_correlated_frames_and_narrows_with_subjects():
    rng = np.random.default_rng(2)

    def data(n_subjects):
        groups = np.repeat(np.arange(2 * n_subjects), 10)
        y = (groups >= n_subjects).astype(int)
        shift = rng.normal(0, 1, 2 * n_subjects)[groups]  # subject effects make frames correlated
        return rng.normal(0, 1, len(y)) + shift + 0.8 * y, y, groups

    widths = []
    for n in (5, 100):
        s, y, g = data(n)
        auc, low, high = auc_interval(s, y, g)
        assert low <= auc <= high
        widths.append(high - low)
        # treating the frames as independent would be too narrow
        _, low_iid, high_iid = auc_interval(s, y, np.arange(len(y)))
        assert high_iid - low_iid < high - low
    assert widths[1] < widths[0] / 2  # ~sqrt(20) narrower in theory


def test_too_few_subjects_cannot_exclude_chance():
    # 3 vs 3 subjects perfectly separated: 2 / C(6, 3) = 0.1 > 0.05, no honest 95% interval excludes 0.5
    groups = np.repeat(np.arange(6), 4)
    y = (groups >= 3).astype(int)
    auc, low, high = auc_interval(groups.astype(float), y, groups)
    assert auc == 1.0 and low <= 0.5 <= high


def test_distances_are_zero_for_equal_and_exact_for_a_shift():
    h = np.zeros(256)
    h[50:100] = 1
    same = distribution_distances(h, h, 64)
    assert (
        same["ks_statistic"] == 0
        and same["wasserstein1_grey_levels"] == 0
        and same["js_divergence_bits"] == 0
    )
    moved = distribution_distances(h, np.roll(h, 20), 64)
    assert moved["wasserstein1_grey_levels"] == pytest.approx(20)
    assert moved["ks_statistic"] == pytest.approx(0.4)
    assert percentiles_from_hist(h, (50,)) == [74.0]


def _features(layout, same_style):
    rows, y, groups = [], [], []
    for modality, _, subject, n, _ in layout:
        style = "real" if same_style else ("synthetic" if modality == "AUS" else "real")
        anatomy = subject_anatomy(modality, subject, 0, True)
        for k in range(n):
            img, _ = draw_frame(
                anatomy, style, np.random.default_rng([7, k, len(rows)]), padding=False
            )
            feats, _ = image_features(img, field_of_view(img, 12))
            rows.append(list(feats.values()))
            y.append(int(modality == "RUS"))
            groups.append(f"{modality}:{subject}")
    return np.array(rows), np.array(y), np.array(groups)


def test_classifier_separates_a_gap_and_not_a_shared_distribution():
    layout = [r for r in DEMO_LIKE if r[1] == "train"] + [
        ("RUS", "train", s, 4, 0) for s in ("j", "k", "l", "m")
    ]
    X, y, g = _features(layout, same_style=False)
    gap = classifier_two_sample_test(X, y, g, 4, 0, 20)
    assert gap["auc"] > 0.95 and gap["ci95"][0] > 0.5
    assert gap["permutation_p"] == pytest.approx(1 / 21) and gap["permutations"] == 20
    # No relabelling came near: at the permutation floor the interval is the cluster-robust one, not widened
    # by the null's spread (which would read as uncertainty no permutation showed).
    folds = subject_folds(y, g, 4, 0)
    plain = auc_interval(out_of_fold_scores(X, y, folds)[:, 0], y, g)
    assert gap["at_permutation_floor"] and gap["ci95"] == pytest.approx(list(plain[1:]))
    X, y, g = _features(layout, same_style=True)
    none = classifier_two_sample_test(X, y, g, 4, 0, 20)
    assert 0.25 < none["auc"] < 0.75 and none["ci95"][0] < 0.5 < none["ci95"][1]
    assert none["permutation_p"] > 0.05 and not none["at_permutation_floor"]


def test_classifier_needs_two_subjects_per_domain():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.r_[np.zeros(10), np.ones(10)].astype(int)
    g = np.r_[["s1"] * 10, ["r1"] * 5, ["r2"] * 5]
    out = classifier_two_sample_test(X, y, g, 4, 0, 10)
    assert not out["possible"] and "at least 2 subjects" in out["why"]


def test_image_features_see_speckle():
    anatomy = subject_anatomy("AUS", "ct1", 0, True)
    smooth, _ = draw_frame(anatomy, "synthetic", np.random.default_rng(0), padding=False)
    speckled, _ = draw_frame(anatomy, "real", np.random.default_rng(0), padding=False)
    a, _ = image_features(smooth, field_of_view(smooth, 12))
    b, _ = image_features(speckled, field_of_view(speckled, 12))
    assert b["local_std"] > 4 * a["local_std"] and b["gradient_mean"] > 4 * a["gradient_mean"]
    assert b["speckle_contrast"] > 1.5 * a["speckle_contrast"]  # also relative to the brighter mean
    assert SIZE == smooth.shape[0]


@pytest.fixture(scope="module")
def demo_inputs(tmp_path_factory):
    fx = build(tmp_path_factory.mktemp("shift"), DEMO_LIKE)
    fx.out_dir.mkdir(parents=True)
    args = (fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv)
    return fx, load_inputs(DATASET_CFG, DIAG_CFG, *args)


def test_the_target_is_compared_with_the_other_modalities(demo_inputs):
    fx, inputs = demo_inputs
    result = check_domain_shift(inputs, survey_images(inputs, 400, 0, 12), fx.outputs)
    assert result.title == "Domain shift (synthetic vs real)"
    # A clear, detectable shift: WARN before training (no harm measured yet), flagged for the final verdict.
    assert (
        result.status == "WARN" and "asked to tell RUS (real) from AUS (synthetic)" in result.reason
    )
    assert "a detectable shift, clear" in result.reason and "FAIL only then" in result.reason
    report = json.loads((fx.out_dir / "domain_shift.json").read_text())
    assert report["detectable_shift"] is True and report["image_status"] == "FAIL"
    if report["classifier"]["permutation_p"] <= 1 / (1 + report["classifier"]["permutations"]):
        assert "few subjects make the estimate uncertain" not in result.reason
    assert report["classifier"]["n_images"] == {"AUS": 66, "RUS": 53}
    assert report["per_modality"]["AUS"]["mean"] < report["per_modality"]["RUS"]["mean"]
    hist = pd.read_csv(fx.out_dir / "intensity_histograms.csv")
    assert len(hist) == 2 * DIAG_CFG["histogram_bins"]
    assert hist.groupby("modality")["fraction"].sum().round(6).tolist() == [1.0, 1.0]
    # the grey-10 padding strip and the black frame are not in the simulator's histogram
    aus = hist[hist["modality"] == "AUS"].set_index("bin_left")["count"]
    assert aus.loc[0] + aus.loc[8] == 0


def test_two_scanners_of_one_domain_are_named_by_modality(demo_inputs):
    _, inputs = demo_inputs
    cfg = {
        **DATASET_CFG,
        "modalities": {m: {**v, "domain": "real"} for m, v in DATASET_CFG["modalities"].items()},
    }
    names = comparison_names(type(inputs)(**{**inputs.__dict__, "dataset": DatasetSpec(cfg)}), ["AUS"])
    assert names["source_short"] == "AUS" and names["target_short"] == "RUS"


def test_a_single_modality_has_nothing_to_compare(demo_inputs):
    fx, inputs = demo_inputs
    only_rus = type(inputs)(
        **{**inputs.__dict__, "images": inputs.images[inputs.images["modality"] == "RUS"]}
    )
    result = check_domain_shift(only_rus, survey_images(only_rus, 400, 0, 12), fx.outputs)
    assert result.status == "PASS" and result.value is None
    assert "no other domain to compare RUS with" in result.reason


def _domain_check(tmp_path, frames, **kw):
    fx = write_dataset(tmp_path, frames)
    fx.out_dir.mkdir(parents=True)
    inputs = load_inputs(
        DATASET_CFG, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    survey = survey_images(inputs, 400, 0, 12, model_image_size=kw.get("model_image_size"))
    result = check_domain_shift(inputs, survey, fx.outputs, **kw)
    return result, json.loads((fx.out_dir / "domain_shift.json").read_text())


def test_same_rendering_stored_as_jpeg_vs_png_is_a_file_difference_not_a_domain_gap(tmp_path):
    """Both modalities drawn alike; the real ones stored as JPEG at twice the size (masks scaled with them)."""
    frames = make_frames(CLEAN, same_style=True)
    for f in frames:
        if f.modality == "RUS":
            f.jpg = True
            f.image = np.kron(f.image, np.ones((2, 2), np.uint8))
            if f.mask is not None:
                f.mask = np.kron(f.mask, np.ones((2, 2, 1), np.uint8))
    result, report = _domain_check(tmp_path, frames)
    assert result.status != "FAIL"
    assert result.value < DIAG_CFG["domain_auc"]["warn_above"], result.reason
    fmt = report["format_control"]
    assert fmt["possible"] and fmt["auc"] > 0.95  # the file properties alone give the domain away
    assert {"is_jpeg", "width", "height", "channels", "jpeg_luma_step"} <= set(fmt["features"])
    assert "the files give the domain away, the harmonised images do not" in result.reason
    assert report["classifier"]["harmonisation"].startswith("decoded to grey, resized to 32x32")


def test_a_real_intensity_and_speckle_gap_still_fails_when_files_are_alike(tmp_path):
    """Simulator vs scanner style, both stored as PNG of one size: the gap is in the images."""
    frames = make_frames(CLEAN)
    for f in frames:
        f.jpg = False
    result, report = _domain_check(tmp_path, frames, model_image_size=(32, 32))
    assert result.status == "WARN" and result.value > DIAG_CFG["domain_auc"]["fail_above"]
    assert report["detectable_shift"] is True
    assert report["classifier"]["permutation_p"] < DIAG_CFG.get("domain_alpha", 0.05)
    assert report["classifier"]["ci95"][0] > 0.5
    assert report["format_control"]["auc"] < 0.75  # same format, same size: nothing to tell apart
    # what a model sees: grey / 255 at the experiments' size, the real images brighter
    model = report["model_input_intensity"]
    assert model["image_size"] == [32, 32] and "grey / 255" in model["normalisation"]
    assert model["per_modality"]["RUS"]["mean"] > model["per_modality"]["AUS"]["mean"] + 0.1
    assert 0 < model["source_vs_target"]["wasserstein1"] < 1


def test_a_large_auc_on_too_few_subjects_is_not_a_fail(demo_inputs):
    fx, inputs = demo_inputs
    survey = survey_images(inputs, 400, 0, 12)
    few = type(inputs)(**{**inputs.__dict__, "diag_cfg": {**inputs.diag_cfg, "domain_alpha": 0.001}})
    result = check_domain_shift(few, survey, fx.outputs)
    assert result.value > 0.9 and result.status == "WARN"
    assert "not significant" in result.reason
