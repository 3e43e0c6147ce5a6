import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open

from test_train import run_training, tiny, tiny_config  # noqa: F401  (tiny is a fixture)
from usseg.experiment import ForestSettings
from usseg.forest import (
    FEATURE_NAMES,
    ForestPredictor,
    fit_forest,
    forest_to_arrays,
    pixel_features,
    sample_training_pixels,
)
from usseg.models import load_predictor

torch.set_num_threads(1)


def _toy_images(n=4, h=24, w=20, seed=0):
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    for _ in range(n):
        lab = np.zeros((h, w), np.int64)
        lab[5:15, 3:12] = 1
        lab[17:21, 14:18] = 2
        img = 0.1 + 0.5 * (lab == 1) + 0.25 * (lab == 2) + rng.normal(0, 0.05, (h, w))
        imgs.append(img.astype(np.float32))
        labs.append(lab)
    return imgs, labs


def test_pixel_features_shape_and_depth_feature():
    img = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    f = pixel_features(img)
    assert f.shape == (120, len(FEATURE_NAMES)) and f.dtype == np.float32
    assert np.isfinite(f).all()
    depth = f[:, FEATURE_NAMES.index("depth")].reshape(12, 10)
    assert (np.diff(depth[:, 0]) > 0).all() and np.allclose(depth[:, 0], depth[:, -1])
    assert np.array_equal(f[:, 0].reshape(12, 10), img)


def test_sampling_is_seeded_and_capped():
    imgs, labs = _toy_images()
    x1, y1 = sample_training_pixels(imgs, labs, 50, seed=3)
    x2, y2 = sample_training_pixels(imgs, labs, 50, seed=3)
    x3, _ = sample_training_pixels(imgs, labs, 50, seed=4)
    assert x1.shape == (200, len(FEATURE_NAMES)) and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    x_all, _ = sample_training_pixels(imgs[:1], labs[:1], 10_000, seed=0)
    assert len(x_all) == 24 * 20


def test_array_predictor_matches_scikit_learn():
    imgs, labs = _toy_images()
    x, y = sample_training_pixels(imgs, labs, 120, seed=0)
    rf = fit_forest(x, y, ForestSettings(n_estimators=7, max_depth=6, pixels_per_image=0), seed=0, n_jobs=1)
    # 4 output classes, class 3 never seen: its probability must be 0 everywhere.
    arrays = forest_to_arrays(rf, 4)
    pred = ForestPredictor(arrays, {"class_names": ["bg", "a", "b", "c"], "image_size": [24, 20]})
    test_x = pixel_features(_toy_images(1, seed=9)[0][0])
    ours = pred.proba_from_features(test_x)
    np.testing.assert_allclose(ours[:, :3], rf.predict_proba(test_x), rtol=0, atol=1e-12)
    assert (ours[:, 3] == 0).all()
    assert np.array_equal(ours.argmax(1), rf.predict(test_x))


def test_forest_experiment_trains_saves_as_arrays_and_reloads(tiny, tmp_path):  # noqa: F811
    cfg = tiny_config()
    run_training(cfg, "liver_rf", tiny, tmp_path / "out", tmp_path / "ckpt")
    path = tmp_path / "out" / "model.safetensors"
    with safe_open(str(path), "np") as f:
        keys = set(f.keys())
        offsets = f.get_tensor("forest.tree_offsets")
    assert {"forest.children_left", "forest.children_right", "forest.feature", "forest.threshold",
            "forest.value", "forest.tree_offsets"} == keys
    assert len(offsets) == 5 + 1  # n_estimators in tiny_config
    hist = pd.read_csv(tmp_path / "out" / "history.csv")
    assert hist["epoch"].tolist() == [1] and hist["val_dice_liver"].iloc[0] > 0.5
    assert (tmp_path / "out" / "curves.png").is_file()
    pred = load_predictor(path)
    assert isinstance(pred, ForestPredictor) and pred.class_names == ["background", "liver"]
    images = np.random.default_rng(1).random((2, 32, 32)).astype(np.float32)
    again = load_predictor(path)
    assert np.array_equal(pred.predict_proba(images), again.predict_proba(images))
    assert pred.predict(images).shape == (2, 32, 32)
    # Same seed, same forest.
    run_training(cfg, "liver_rf", tiny, tmp_path / "out2", tmp_path / "ckpt2")
    with safe_open(str(path), "np") as a, safe_open(str(tmp_path / "out2" / "model.safetensors"), "np") as b:
        for k in keys:
            assert np.array_equal(a.get_tensor(k), b.get_tensor(k))


@pytest.mark.parametrize("version", [None, 999])
def test_stale_feature_version_is_refused(version):
    from usseg.errors import UssegError

    meta = {"experiment": "x", "forest": {"feature_version": version}, "class_names": ["a"], "image_size": [8, 8]}
    with pytest.raises(UssegError, match="feature version"):
        ForestPredictor.from_tensors({}, meta)
