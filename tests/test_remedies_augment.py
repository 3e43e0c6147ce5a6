"""Remedies 1 and 2: FOV normalisation and the ultrasound / generic augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from datasets import fan_frame, fan_mask
from usseg.errors import ConfigError
from usseg.remedies import normalise, us_augment

# ----------------------------------------------------------------------------- normalisation


def test_fov_mask_finds_the_fan():
    image, _ = fan_frame(64)
    fov = normalise.fov_mask(image, threshold=12)
    truth = fan_mask(64)
    assert fov.shape == (64, 64) and fov.dtype == bool
    assert (fov == truth).mean() > 0.97


@pytest.mark.parametrize("scale,offset", [(0.6, 0.1), (0.3, 0.5)])
def test_percentile_normalisation_removes_gain_and_offset(scale, offset):
    ref, _ = fan_frame(64, seed=1)
    fov = fan_mask(64)
    # Another scanner setting: the same anatomy with another gain and offset inside the fan.
    other = np.where(fov, offset + scale * ref, 0.0).astype(np.float32)
    a = normalise.normalise_in_fov(ref, fov)
    b = normalise.normalise_in_fov(other, fov)
    assert a.shape == ref.shape and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.max() == 1
    assert abs(ref[0][fov].mean() - other[0][fov].mean()) > 0.05
    np.testing.assert_allclose(a, b, atol=1e-5)
    # The border stays black.
    assert np.all(a[0][~fov] == 0)


def test_zscore_normalisation_has_unit_statistics_in_the_fan():
    image, _ = fan_frame(64, seed=2)
    out = normalise.normalise_in_fov(image, method="zscore")
    fov = normalise.fov_mask(image)
    assert abs(out[0][fov].mean()) < 1e-4
    assert abs(out[0][fov].std() - 1) < 1e-3


def test_normalisation_of_a_blank_image_is_zero_and_bad_settings_are_named():
    assert np.all(normalise.normalise_in_fov(np.zeros((32, 32), np.float32)) == 0)
    with pytest.raises(ConfigError, match="zscored"):
        normalise.normalise_in_fov(np.zeros((8, 8)), method="zscored")
    with pytest.raises(ConfigError, match="low=50"):
        normalise.normalise_in_fov(np.zeros((8, 8)), low=50, high=10)


def test_normalise_transform_uses_the_cached_fov_and_keeps_the_label():
    image, label = fan_frame(64)
    tf = Compose([normalise.FieldOfViewd(keys="image"), normalise.NormaliseInFOVd(keys="image")])
    out = tf({"image": torch.as_tensor(image), "label": torch.as_tensor(label)})
    assert isinstance(out["image"], torch.Tensor) and out["image"].shape == (1, 64, 64)
    assert out["fov"].shape == (1, 64, 64) and out["fov"].dtype == bool
    assert torch.equal(out["label"], torch.as_tensor(label))
    batch = normalise.normalise_batch(np.stack([image[0], image[0] * 0.5]))
    assert batch.shape == (2, 64, 64)
    np.testing.assert_allclose(batch[0], out["image"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(batch[0], batch[1], atol=0.02)


# ----------------------------------------------------------------------------- ultrasound transforms

US_CASES = [
    (us_augment.RandDepthAttenuationd, {"rate": (1.0, 3.0)}),
    (us_augment.RandAcousticShadowd, {"strength": (0.5, 0.8), "sigma_x": (0.1, 0.2), "sigma_y": (0.1, 0.2)}),
    (us_augment.RandHazed, {"radius": (0.3, 0.6), "sigma": (0.05, 0.1)}),
    (us_augment.RandSpeckleReductiond, {"sigma_spatial": (1.0, 2.0), "sigma_intensity": (0.2, 0.5)}),
    (us_augment.RandSpeckleNoised, {"looks": (2.0, 4.0)}),
]


def _run(cls, kwargs, seed, image, label, prob=1.0):
    tf = cls(keys="image", prob=prob, **kwargs)
    tf.set_random_state(seed)
    return tf({"image": image.copy(), "label": label.copy()})


@pytest.mark.parametrize("cls,kwargs", US_CASES, ids=[c.__name__ for c, _ in US_CASES])
def test_ultrasound_transform_contract(cls, kwargs):
    image, label = fan_frame(64)
    fov = fan_mask(64)
    out = _run(cls, kwargs, 3, image, label)
    img = out["image"]
    assert img.shape == image.shape and img.dtype == np.float32
    assert img.min() >= 0 and img.max() <= 1
    # The image changed inside the fan, not outside it; the label did not change at all.
    assert np.abs(img - image)[0][fov].mean() > 1e-3
    assert np.array_equal(img[0][~fov], image[0][~fov])
    assert np.array_equal(out["label"], label)
    # Same seed, same result; another seed, another result.
    assert np.array_equal(_run(cls, kwargs, 3, image, label)["image"], img)
    assert not np.array_equal(_run(cls, kwargs, 4, image, label)["image"], img)
    # prob 0: untouched.
    assert np.array_equal(_run(cls, kwargs, 3, image, label, prob=0.0)["image"], image)


def test_depth_attenuation_darkens_with_depth():
    image = np.where(fan_mask(64), 0.8, 0.0).astype(np.float32)[None]
    out = _run(us_augment.RandDepthAttenuationd, {"rate": 2.0, "min_gain": 0.1}, 0, image, image)["image"][0]
    col = out[:, 32]
    inside = col[fan_mask(64)[:, 32]]
    assert np.all(np.diff(inside) <= 1e-6) and inside[-1] < 0.8 * np.exp(-1.5) + 0.1
    # Formula check at one pixel: gain (1 - g_min) exp(-rate d) + g_min.
    d = us_augment.probe_distance(64, 64)[40, 32]
    assert out[40, 32] == pytest.approx(0.8 * (0.9 * np.exp(-2.0 * d) + 0.1), rel=1e-5)


def test_shadow_darkens_and_haze_brightens():
    image, label = fan_frame(64)
    fov = fan_mask(64)
    shadow = _run(us_augment.RandAcousticShadowd, {"strength": 0.8, "sigma_x": 0.2, "sigma_y": 0.2}, 0, image, label)
    assert np.all(shadow["image"] <= image + 1e-7) and shadow["image"][0][fov].mean() < image[0][fov].mean()
    haze = _run(us_augment.RandHazed, {"radius": 0.5, "sigma": 0.1}, 0, image, label)
    assert np.all(haze["image"] >= image - 1e-7) and haze["image"][0][fov].mean() > image[0][fov].mean()


def test_speckle_reduction_smooths_and_speckle_noise_roughens():
    image, label = fan_frame(64)
    fov = fan_mask(64)
    organ = (label[0] == 0) & fov
    smooth = _run(us_augment.RandSpeckleReductiond, {"sigma_spatial": 2.0, "sigma_intensity": 1.0}, 0, image, label)
    noisy = _run(us_augment.RandSpeckleNoised, {"looks": 2.0}, 0, image, label)
    assert smooth["image"][0][organ].std() < 0.8 * image[0][organ].std()
    assert noisy["image"][0][organ].std() > 1.2 * image[0][organ].std()


def test_bilateral_filter_is_a_weighted_average():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.6, size=(1, 16, 16)).astype(np.float32)
    out = us_augment.bilateral_filter(image, 1.0, 0.1, 5)
    assert out.shape == image.shape and out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6
    # A tiny spatial sigma leaves the image as it is.
    np.testing.assert_allclose(us_augment.bilateral_filter(image, 1e-3, 0.1, 5), image, atol=1e-6)


def test_ultrasound_transforms_from_settings_and_bad_settings():
    tfs = us_augment.ultrasound_transforms({"haze": {"prob": 1.0}, "depth_attenuation": {"prob": 0.3, "rate": [0, 2]}})
    assert [type(t).__name__ for t in tfs] == ["RandDepthAttenuationd", "RandHazed"]
    with pytest.raises(ConfigError, match="shadow"):
        us_augment.ultrasound_transforms({"shadow": {}})
    with pytest.raises(ConfigError, match="haze"):
        us_augment.ultrasound_transforms({"haze": {"radius_x": 1}})
    with pytest.raises(ConfigError, match="acoustic_shadow.strength"):
        us_augment.RandAcousticShadowd(strength=(0.5, 1.5))
    with pytest.raises(ConfigError, match="haze.sigma"):
        us_augment.RandHazed(sigma=(0.0, 0.1))


def test_ultrasound_pipeline_is_reproducible_under_a_seed():
    image, label = fan_frame(64)
    settings = {name: {"prob": 0.7} for name in us_augment.ULTRASOUND_TRANSFORMS}

    def run(seed):
        tf = Compose([normalise.FieldOfViewd(keys="image"), *us_augment.ultrasound_transforms(settings)])
        tf.set_random_state(seed)
        return [tf({"image": torch.as_tensor(image), "label": torch.as_tensor(label)}) for _ in range(3)]

    a, b = run(5), run(5)
    for x, y in zip(a, b):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], torch.as_tensor(label))


# ----------------------------------------------------------------------------- generic strong augmentation


def test_generic_strong_moves_label_with_image_and_is_seeded():
    _, label = fan_frame(64)
    # An image that IS the label: every geometric warp must move both the same way.
    image = (label / 2.0).astype(np.float32)
    changed = 0
    tf = Compose(us_augment.generic_strong_transforms((64, 64), num_operations=2))
    for seed in range(8):
        tf.set_random_state(seed)
        out = tf({"image": torch.as_tensor(image), "label": torch.as_tensor(label)})
        tf.set_random_state(seed)
        again = tf({"image": torch.as_tensor(image), "label": torch.as_tensor(label)})
        img, lab = out["image"].numpy(), out["label"].numpy()
        assert torch.equal(out["image"], again["image"]) and torch.equal(out["label"], again["label"])
        assert img.shape == (1, 64, 64) and lab.shape == (1, 64, 64)
        assert img.min() >= 0 and img.max() <= 1
        assert set(np.unique(lab)) <= {0.0, 1.0, 2.0}
        changed += not np.array_equal(lab, label)
        # Where the label says organ 1, the warped image is brighter than where it says background:
        # image and label moved together (intensity operations shift the levels but keep their order).
        if (lab == 1).sum() > 20 and (lab == 0).sum() > 20:
            assert img[lab == 1].mean() > img[lab == 0].mean()
    assert changed >= 3  # geometric operations were drawn and moved the label


def test_generic_strong_bad_settings():
    with pytest.raises(ConfigError, match="num_operations"):
        us_augment.generic_strong_transforms((64, 64), num_operations=0)
    with pytest.raises(ConfigError, match="magnitude"):
        us_augment.generic_strong_transforms((64, 64), magnitude=5)


def test_transforms_follow_the_training_epoch_s_seed():
    """The training loop (usseg.training.batches) seeds the remedies' per-image transforms from
    (seed, epoch); the new transforms must follow it: the same epoch twice is the same, another differs."""
    from usseg.training.batches import TrainingSet, epoch_batches

    image, label = fan_frame(32)
    images = torch.as_tensor(np.stack([image] * 4), dtype=torch.float32)
    labels = torch.as_tensor(np.stack([label] * 4), dtype=torch.float32)
    fovs = torch.as_tensor(np.stack([fan_mask(32)[None]] * 4))
    data = TrainingSet(images, labels, fovs, ["AUS"] * 4)
    settings = {name: {"prob": 0.8} for name in us_augment.ULTRASOUND_TRANSFORMS}
    extras = [*us_augment.ultrasound_transforms(settings), *us_augment.generic_strong_transforms((32, 32))]

    def epoch(seed, n):
        return torch.cat([x for x, _ in epoch_batches(data, {}, 2, seed, n, extras)])

    assert torch.equal(epoch(0, 1), epoch(0, 1))
    assert not torch.equal(epoch(0, 1), epoch(0, 2))
    assert not torch.equal(epoch(0, 1), epoch(1, 1))
