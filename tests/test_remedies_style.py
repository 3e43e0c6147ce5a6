"""Remedy 3: histogram matching and Fourier domain adaptation towards target frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import wasserstein_distance

from datasets import fan_frame, fan_mask
from usseg.errors import ConfigError, DataError
from usseg.remedies import style


def _bank(n=3, gain=0.75, contrast=0.05):
    frames = [fan_frame(64, seed=10 + i, gain=gain, contrast=contrast)[0][0] for i in range(n)]
    return style.TargetBank.from_images(np.stack(frames))


def _low_freq_amplitude(image, b=3):
    f = np.fft.fftshift(np.abs(np.fft.fft2(image)))
    c = image.shape[0] // 2
    return f[c - b:c + b + 1, c - b:c + b + 1]


def test_match_histogram_moves_the_fan_distribution_to_the_target():
    source, label = fan_frame(64, seed=1, gain=0.35, contrast=0.2)
    bank = _bank(1)
    fov = fan_mask(64)
    target_pixels = bank.images[0][bank.fovs[0]]
    out = style.match_histogram(source, target_pixels, fov)
    assert out.shape == source.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    before = wasserstein_distance(source[0][fov], target_pixels)
    after = wasserstein_distance(out[0][fov], target_pixels)
    assert after < 0.1 * before
    # Pixel order inside the fan is kept (the anatomy): ranks do not invert.
    src, dst = source[0][fov], out[0][fov]
    order = np.argsort(src, kind="stable")
    assert np.all(np.diff(dst[order]) >= -1e-7)
    assert np.array_equal(out[0][~fov], source[0][~fov])


def test_match_histogram_onto_itself_changes_little():
    image, _ = fan_frame(64, seed=3)
    fov = fan_mask(64)
    out = style.match_histogram(image, image[0][fov], fov)
    assert np.abs(out - image).max() < 0.02


def test_fda_swaps_low_frequencies_and_keeps_the_rest():
    source, _ = fan_frame(64, seed=1, gain=0.3, contrast=0.1)
    target, _ = fan_frame(64, seed=2, gain=0.6, contrast=0.1)
    src, tgt = source[0], target[0]
    out = style.fda_transfer(src, tgt, beta=0.05)  # b = 3: a 7 x 7 window
    assert out.shape == src.shape and out.dtype == np.float32
    # The mean (DC) is the target's exactly, and the low-frequency amplitude moved to the target's.
    assert out.mean() == pytest.approx(tgt.mean(), abs=1e-5)
    np.testing.assert_allclose(_low_freq_amplitude(out), _low_freq_amplitude(tgt), rtol=1e-4, atol=1e-3)
    # High frequencies are the source's.
    hi = np.ones((64, 64), bool)
    hi[32 - 3:32 + 4, 32 - 3:32 + 4] = False
    f_out = np.fft.fftshift(np.fft.fft2(out))
    f_src = np.fft.fftshift(np.fft.fft2(src))
    np.testing.assert_allclose(f_out[hi], f_src[hi], atol=1e-3)
    # beta 0 swaps the mean only.
    only_mean = style.fda_transfer(src, tgt, beta=0.0)
    np.testing.assert_allclose(only_mean - only_mean.mean(), src - src.mean(), atol=1e-5)


def test_fda_checks_its_inputs():
    with pytest.raises(ConfigError, match="beta"):
        style.fda_transfer(np.zeros((8, 8)), np.zeros((8, 8)), beta=0.7)
    with pytest.raises(ValueError, match="one size"):
        style.fda_transfer(np.zeros((8, 8)), np.zeros((8, 9)), beta=0.1)


@pytest.mark.parametrize("kind", ["hist_random", "hist_pooled", "fda"])
def test_style_transforms_contract(kind):
    bank = _bank(3)
    source, label = fan_frame(64, seed=1, gain=0.35, contrast=0.15)
    fov = fan_mask(64)

    def make(seed, prob=1.0):
        if kind == "fda":
            tf = style.RandFourierDomainAdaptd(keys="image", bank=bank, beta=(0.02, 0.08), prob=prob)
        else:
            ref = "pooled" if kind == "hist_pooled" else "random_frame"
            tf = style.RandHistogramMatchd(keys="image", bank=bank, reference=ref, prob=prob)
        tf.set_random_state(seed)
        return tf

    data = {"image": torch.as_tensor(source), "label": torch.as_tensor(label), "modality": "AUS"}
    out = make(0)(data)
    img = out["image"].numpy()
    assert isinstance(out["image"], torch.Tensor) and img.shape == source.shape
    assert img.min() >= 0 and img.max() <= 1
    assert torch.equal(out["label"], torch.as_tensor(label))
    assert np.array_equal(img[0][~fov], source[0][~fov])
    # Towards the target: the fan's mean and its distribution move to the bank's.
    target_pixels = bank.images[bank.fovs]
    assert abs(img[0][fov].mean() - target_pixels.mean()) < 0.5 * abs(source[0][fov].mean() - target_pixels.mean())
    assert wasserstein_distance(img[0][fov], target_pixels) < wasserstein_distance(source[0][fov], target_pixels)
    # Seeded: same result for the same seed.
    assert torch.equal(make(0)(data)["image"], out["image"])
    assert torch.equal(make(0, prob=0.0)(data)["image"], torch.as_tensor(source))


def test_style_transform_restyles_only_the_named_modalities():
    bank = _bank(2)
    source, label = fan_frame(64, seed=1, gain=0.35)
    tf = style.RandHistogramMatchd(keys="image", bank=bank, modalities=["AUS"])
    real = tf({"image": source, "label": label, "modality": "RUS"})
    sim = tf({"image": source, "label": label, "modality": "AUS"})
    assert np.array_equal(real["image"], source)
    assert not np.array_equal(sim["image"], source)


def test_style_transform_rejects_a_bank_of_another_size_and_bad_settings():
    bank = _bank(1)
    small, label = fan_frame(32)
    with pytest.raises(DataError, match="image_size"):
        style.RandHistogramMatchd(keys="image", bank=bank)({"image": small, "label": label})
    with pytest.raises(ConfigError, match="reference"):
        style.RandHistogramMatchd(keys="image", bank=bank, reference="mean")
    with pytest.raises(ConfigError, match="beta"):
        style.RandFourierDomainAdaptd(keys="image", bank=bank, beta=(0.1, 0.05))
    with pytest.raises(DataError, match="no target frames"):
        style.TargetBank.from_images(np.zeros((0, 8, 8), np.float32))


def test_target_bank_from_files_resizes_and_samples(tmp_path):
    paths = []
    for i in range(4):
        image, _ = fan_frame(80, seed=i)
        path = tmp_path / f"real{i}.png"
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(path)
        paths.append(path)
    bank = style.TargetBank.from_files(paths, (64, 64), max_images=3, seed=0)
    again = style.TargetBank.from_files(list(reversed(paths)), (64, 64), max_images=3, seed=0)
    assert bank.images.shape == (3, 64, 64) and bank.fovs.shape == (3, 64, 64)
    assert bank.images.min() >= 0 and bank.images.max() <= 1
    assert np.array_equal(bank.images, again.images)
    assert bank.fovs.mean() > 0.3
    assert bank.pooled_values(256).shape == (256,)
