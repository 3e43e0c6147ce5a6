"""The fast anti-aliasing-aware decode labels and flags every pixel exactly as the frozen,
dense reference (tests/aa_reference.py) does, on varied masks: blended borders all round,
bilinear down-scales, padding strips, tinted backgrounds, painted foreign colours, JPEG-like
noise, masks one pixel thin, other windows, tolerances and palette sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aa_reference import reference_decode_aa
from datasets import PALETTE
from usseg.masks import decode_mask_aa, decode_mask_with_distance


def blobs(rng, height, width, palette, ss=4, n=(2, 6)):
    """Ellipses of random classes drawn ss-fold finer, box-filtered down: every border blended."""
    h, w = height * ss, width * ss
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fine = np.zeros((h, w), dtype=np.intp)
    for cls in rng.integers(1, len(palette), rng.integers(*n)):
        cy, cx = rng.uniform(0, 1) * h, rng.uniform(0, 1) * w
        ry, rx = rng.uniform(0.03, 0.4) * h + 1, rng.uniform(0.03, 0.4) * w + 1
        fine[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = cls
    rgb = palette[fine].astype(np.float32).reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    return np.rint(rgb).astype(np.uint8), fine


def varied_masks(rng, palette):
    """(name, rgb) pairs, each a kind of mask people have or a fault they plant."""
    out = []
    for k in range(6):
        size = (int(rng.integers(20, 70)), int(rng.integers(20, 70)))
        rgb, fine = blobs(rng, *size, palette)
        out.append((f"box-filtered {k}", rgb))
        crisp = palette[fine[:: 4, :: 4]]
        out.append((f"bilinear {k}", np.asarray(Image.fromarray(crisp).resize(
            (max(size[1] // 3, 1), max(size[0] // 3, 1)), Image.Resampling.BILINEAR))))
        strip = rgb.copy()
        strip[-3:] = 10  # a simulator's padding strip
        out.append((f"padding strip {k}", strip))
        tinted = rgb.copy()
        tinted[(tinted == 0).all(-1)] = (10, 0, 10)
        out.append((f"tinted {k}", tinted))
        painted = rgb.copy()
        ys, xs = rng.integers(0, size[0], 30), rng.integers(0, size[1], 30)
        painted[ys, xs] = rng.integers(0, 256, (30, 3))
        painted[: size[0] // 4, : size[1] // 4] = (120, 200, 30)  # a block of a foreign colour
        out.append((f"painted {k}", painted))
        noisy = np.clip(rgb.astype(int) + rng.integers(-25, 26, rgb.shape), 0, 255).astype(np.uint8)
        out.append((f"noisy {k}", noisy))
        out.append((f"a crop, not contiguous {k}", noisy[1:, 2:][:, ::-1]))
    thin, _ = blobs(rng, 1, 40, palette)
    out.append(("one row", thin))
    out.append(("one column", np.ascontiguousarray(blobs(rng, 40, 1, palette)[0])))
    out.append(("3x3", blobs(rng, 3, 3, palette, n=(3, 4))[0]))
    out.append(("exact palette only", palette[rng.integers(0, len(palette), (12, 9))]))
    out.append(("random colours", rng.integers(0, 256, (15, 17, 3)).astype(np.uint8)))
    return out


def assert_same(rgb, palette, **kw):
    labels, suspicious = reference_decode_aa(rgb, palette, **kw)
    res = decode_mask_aa(rgb, palette, **kw)
    np.testing.assert_array_equal(res.labels, labels)
    np.testing.assert_array_equal(res.suspicious, suspicious)
    nearest, d2 = decode_mask_with_distance(rgb, palette)
    np.testing.assert_array_equal(res.nearest_labels, nearest)
    np.testing.assert_array_equal(res.d2, d2)


@pytest.mark.parametrize(
    ("window", "tolerance", "max_distance"), [(7, 20.0, 60.0), (3, 20.0, 60.0), (1, 0.0, 30.0), (9, 40.0, 80.0)]
)
def test_fast_decode_equals_the_dense_reference(window, tolerance, max_distance):
    rng = np.random.default_rng(window)
    for name, rgb in varied_masks(rng, PALETTE):
        try:
            assert_same(rgb, PALETTE, window=window, tolerance=tolerance, max_distance=max_distance)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.parametrize("n_classes", [2, 20, 30])
def test_fast_decode_equals_the_dense_reference_on_other_palettes(n_classes):
    rng = np.random.default_rng(n_classes)
    others = np.unique(rng.integers(1, 256, (n_classes, 3)), axis=0)
    palette = np.vstack([[0, 0, 0], others])[:n_classes].astype(np.uint8)
    for name, rgb in varied_masks(rng, palette):
        try:
            assert_same(rgb, palette)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
