"""Label truth: the anti-aliasing-aware decode, mask encodings, 16-bit and EXIF-rotated files.

The decode must label what the annotator drew: blended borders take a class
present around them, never a third class whose colour lies between theirs
(the nearest-colour decode's "phantom" classes); only colours that are
neither palette colours nor blends are counted against a mask; and every
test image stays in its test set.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage as ndi

from datasets import PALETTE, dataset_cfg, make_dataset
from usseg.data import load_grayscale, load_labels
from usseg.errors import DataError
from usseg.images import load_gray
from usseg.manifest import write_manifest
from usseg.masks import (
    _padded,
    _solid,
    _square,
    decode_mask,
    decode_mask_aa,
    decode_masks,
    read_mask,
)
from usseg.splits import write_splits

IDX = {"background": 0, "liver": 1, "kidney": 4, "vessels": 6, "spleen": 7}
SS = 3  # the fine drawing is SS times the mask size


def fine_labels(seed: int, size=(60, 50)) -> np.ndarray:
    """A label map drawn at SS x the mask size: spleen and kidney on background, a vessel, some liver."""
    w, h = size[0] * SS, size[1] * SS
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    labels = np.zeros((h, w), dtype=np.uint8)
    for name in ("liver", "spleen", "kidney"):
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        ry, rx = rng.uniform(0.12, 0.25) * h, rng.uniform(0.12, 0.25) * w
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = IDX[name]
    y0 = int(rng.uniform(0.1, 0.9) * h)
    labels[y0 : y0 + 2 * SS, :] = IDX["vessels"]
    return labels


def bilinear(fine: np.ndarray) -> np.ndarray:
    """The clean colour mask of `fine`, down-scaled SS-fold with a bilinear filter (blended borders)."""
    h, w = fine.shape
    im = Image.fromarray(PALETTE[fine]).resize((w // SS, h // SS), Image.Resampling.BILINEAR)
    return np.asarray(im)


def true_classes(fine: np.ndarray) -> np.ndarray:
    """Per mask pixel, a bit set of the classes drawn in it or in its 8 neighbours."""
    h, w = fine.shape[0] // SS, fine.shape[1] // SS
    blocks = fine[: h * SS, : w * SS].reshape(h, SS, w, SS)
    bits = np.zeros((h, w), dtype=np.uint16)
    for k in range(len(PALETTE)):
        drawn = ndi.maximum_filter((blocks == k).any(axis=(1, 3)), size=3)
        bits |= drawn.astype(np.uint16) << k
    return bits


def phantom_pixels(labels: np.ndarray, truth: np.ndarray) -> int:
    """Pixels labelled with a class drawn nowhere in or next to them."""
    return int((((truth >> labels.astype(np.uint16)) & 1) == 0).sum())


@pytest.mark.parametrize(("shape", "window"), [((20, 30), 7), ((5, 9), 7), ((3, 3), 5), ((1, 9), 3)])
def test_window_or_equals_per_class_dilation(shape, window):
    rng = np.random.default_rng(0)
    classes = np.where(rng.random(shape) < 0.2, rng.integers(0, 9, shape), 255).astype(np.uint8)
    expected = np.zeros(shape, dtype=np.uint16)
    for k in range(9):
        plane = ndi.maximum_filter(classes == k, size=window, mode="constant")
        expected |= plane.astype(np.uint16) << k
    everywhere = np.arange(classes.size)
    pad = window // 2
    square = _square(everywhere, shape[1], pad, window)
    gathered = _padded(classes, pad, 255).reshape(-1)[square]
    bits = np.left_shift(np.uint16(1), gathered, dtype=np.uint16)  # 255: beyond the width, no bit
    np.testing.assert_array_equal(np.bitwise_or.reduce(bits, axis=0), expected.reshape(-1))


@pytest.mark.parametrize("shape", [(20, 30), (1, 9), (9, 1), (2, 2)])
def test_sparse_solid_blocks_equal_the_dense_pass(shape):
    rng = np.random.default_rng(1)
    anchor = rng.choice(np.array([0, 0, 0, 0, 3, 255], dtype=np.uint8), size=shape)
    anchor[: shape[0] // 2, : shape[1] // 2] = 3
    block = _padded(anchor, 1).reshape(-1)[_square(np.arange(anchor.size), shape[1], 1, 3)]
    sparse = (block == block[4]).all(axis=0) & (anchor.reshape(-1) != 255)
    np.testing.assert_array_equal(sparse, _solid(anchor).reshape(-1))


def test_blended_spleen_border_is_not_liver():
    fine = np.zeros((90, 90), np.uint8)
    yy, xx = np.mgrid[0:90, 0:90]
    fine[(yy - 45) ** 2 + (xx - 45) ** 2 < 30**2] = IDX["spleen"]
    rgb = bilinear(fine)
    nearest = decode_mask(rgb, PALETTE)
    aa = decode_mask_aa(rgb, PALETTE)
    assert (nearest == IDX["liver"]).sum() > 10  # the article's decode: a ring of phantom liver
    assert (aa.labels == IDX["liver"]).sum() == 0
    assert set(np.unique(aa.labels)) == {0, IDX["spleen"]}
    assert not aa.suspicious.any()
    # Real liver next to the spleen is kept, borders included.
    fine[:, :20] = IDX["liver"]
    aa = decode_mask_aa(bilinear(fine), PALETTE)
    assert (aa.labels[:, 1:6] == IDX["liver"]).all()


@pytest.fixture
def downscaled(tmp_path):
    """The tiny dataset with every mask replaced by a bilinear-downscaled clean drawing."""
    size = (60, 50)
    root = make_dataset(tmp_path / "data", size=size)
    truths = {}
    for k, path in enumerate(sorted(root.rglob("annotations/*/*.png"))):
        fine = fine_labels(k, size)
        Image.fromarray(bilinear(fine)).save(path)
        truths[f"{path.parts[-4]}_{path.parts[-2]}_{path.stem}"] = true_classes(fine)
    out = tmp_path / "results"
    write_manifest(tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    return root, out, truths


def test_downscaled_clean_masks_phantoms_drop_tenfold_none_flagged_test_sets_whole(downscaled):
    root, out, truths = downscaled
    aa = decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
    near = decode_masks(out / "manifest.csv", root, dataset_cfg(decode="nearest"), out / "nearest")
    phantom_aa = sum(phantom_pixels(np.load(out / "labels" / f"{i}.npy"), t) for i, t in truths.items())
    phantom_near = sum(phantom_pixels(np.load(out / "nearest" / f"{i}.npy"), t) for i, t in truths.items())
    assert phantom_near >= 100, phantom_near  # the faults are there to be removed
    assert phantom_near >= 10 * max(phantom_aa, 1), (phantom_near, phantom_aa)
    assert not aa["flagged"].any(), aa.loc[aa["flagged"], "flag_reason"].tolist()
    assert (aa["encoding"] == "palette").all() and (aa["decode"] == "aa_aware").all()
    assert (near["decode"] == "nearest").all() and (near["relabelled_fraction"] == 0).all()
    assert (aa["relabelled_fraction"] > 0).any()

    write_splits(
        out / "manifest.csv", out / "labels" / "decode_report.csv", 0.25, 42, out / "splits.csv",
        issues_csv=out / "issues.csv",
    )
    splits = pd.read_csv(out / "splits.csv", keep_default_na=False).set_index("image_id")
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False).set_index("image_id")
    test_with_mask = manifest[(manifest["orig_split"] == "test") & manifest["has_mask"]]
    for image_id, row in test_with_mask.iterrows():
        assert splits.loc[image_id, "split"] == f"test_{row['modality'].lower()}"
    assert (splits["excluded_from"] == "").all()


def test_away_from_borders_labels_equal_the_nearest_decode():
    rng = np.random.default_rng(7)
    for seed in range(4):
        fine = fine_labels(seed)
        rgb = bilinear(fine).astype(np.int16)
        rgb[rng.random(rgb.shape[:2]) < 0.5] += rng.integers(-6, 7, size=3).astype(np.int16)  # noise
        rgb[(rgb < 8).all(-1)] = [10, 0, 10]  # a tinted background
        rgb[-3:] = 10  # a padding strip
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        truth = true_classes(fine)
        interior = (truth & (truth - 1)) == 0  # one class in and around the pixel
        aa, nearest = decode_mask_aa(rgb, PALETTE).labels, decode_mask(rgb, PALETTE)
        assert interior.mean() > 0.5
        np.testing.assert_array_equal(aa[interior], nearest[interior])


# ----------------------------------------------------------------------------- planted faults


def _blurred(mask: np.ndarray) -> np.ndarray:
    """An anti-aliased version of a crisp colour mask (3x3 box filter)."""
    return np.rint(ndi.uniform_filter(mask.astype(np.float32), size=(3, 3, 1))).astype(np.uint8)


def test_planted_faults_are_caught_after_the_real_decode(tmp_path):
    from test_diagnostics_fixtures import DATASET_CFG, DIAG_CFG, make_frames, write_dataset
    from test_diagnostics_labels import LAYOUT
    from usseg.diagnostics.inputs import load_inputs
    from usseg.diagnostics.label_check import compute_flags
    from usseg.diagnostics.label_stats import collect_label_stats

    frames = make_frames(LAYOUT)
    for f in frames:
        if f.mask is not None:
            f.mask = _blurred(f.mask)
    by_id = {f.image_id: f for f in frames}
    by_id["RUS_test_a3"].mask[20:38, 20:38] = (255, 140, 0)  # painted orange
    swapped = by_id["RUS_test_g4"]
    assert (swapped.mask == PALETTE[IDX["kidney"]]).all(-1).any()
    swapped.mask = swapped.mask[..., ::-1].copy()  # BGR: kidney -> adrenal, vessels -> pancreas
    black = by_id["AUS_train_ct3-2"]
    black.mask[:] = 0
    black.mask[-3:] = 10  # the padding strip stays
    fx = write_dataset(tmp_path, frames)
    cfg = copy.deepcopy(DATASET_CFG)
    report = decode_masks(fx.manifest_csv, fx.root, cfg, fx.labels_dir).set_index("image_id")

    assert report["flagged"].tolist().count(True) == 1 and report.loc["RUS_test_a3", "flagged"]
    assert "RUS/annotations/test/a3.png" in report.loc["RUS_test_a3", "flag_reason"]
    inputs = load_inputs(
        cfg, DIAG_CFG, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    flags = compute_flags(inputs, collect_label_stats(inputs))
    got = {(i, f) for i, f in flags[["image_id", "flag"]].itertuples(index=False)}
    assert got == {
        ("RUS_test_a3", "off_palette"),
        ("RUS_test_g4", "channel_swap?"),
        ("AUS_train_ct3-2", "empty"),
    }
    detail = flags.loc[flags["image_id"] == "RUS_test_a3", "detail"].iloc[0]
    assert "(255,140,0)" in detail and "neither a palette colour nor a blend" in detail


# ----------------------------------------------------------------------------- encodings


def _index_dataset(tmp_path, writer):
    root = make_dataset(tmp_path / "data")
    labels = {}
    for k, path in enumerate(sorted(root.rglob("annotations/*/*.png"))):
        lab = np.zeros((16, 20), np.uint8)
        lab[4:12, 3 + k % 5 : 12 + k % 5] = 1 + k % 8
        writer(path, lab)
        labels[f"{path.parts[-4]}_{path.parts[-2]}_{path.stem}"] = lab
    out = tmp_path / "results"
    write_manifest(tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    return root, out, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_class_index_masks_are_recognised(tmp_path, dtype):
    root, out, labels = _index_dataset(
        tmp_path, lambda path, lab: Image.fromarray(lab.astype(dtype)).save(path)
    )
    report = decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
    assert (report["encoding"] == "index").all() and not report["flagged"].any()
    for image_id, lab in labels.items():
        np.testing.assert_array_equal(np.load(out / "labels" / f"{image_id}.npy"), lab)
    # Forced palette: the same files read as (near-black) colours.
    forced = decode_masks(out / "manifest.csv", root, dataset_cfg(mask_encoding="palette"), out / "p")
    if dtype == np.uint8:
        assert (forced["encoding"] == "palette").all()
        assert all((np.load(out / "p" / f"{i}.npy") == 0).all() for i in labels)


def test_masks_that_fit_no_encoding_are_flagged_unusable(tmp_path):
    root = make_dataset(tmp_path / "data")
    Image.fromarray(np.full((16, 20), 4000, np.uint16)).save(root / "AUS/annotations/test/ct4-1.png")
    out = tmp_path / "results"
    write_manifest(tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    report = decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels").set_index("image_id")
    bad = report.loc["AUS_test_ct4-1"]
    assert bad["flagged"] and not bad["usable"] and bad["encoding"] == "none"
    assert "AUS/annotations/test/ct4-1.png" in bad["flag_reason"] and "4000" in bad["flag_reason"]
    # index forced on colour masks: every colour mask is unusable, named.
    forced = decode_masks(out / "manifest.csv", root, dataset_cfg(mask_encoding="index"), out / "i")
    colour = forced[forced["image_id"] != "AUS_test_ct4-1"]
    assert (~colour["usable"]).all() and colour["flag_reason"].str.contains("mask_encoding is index").all()
    # An unusable test mask takes its image out of the test set, with the reason.
    write_splits(out / "manifest.csv", out / "labels" / "decode_report.csv", 0.25, 42, out / "splits.csv")
    splits = pd.read_csv(out / "splits.csv", keep_default_na=False).set_index("image_id")
    assert splits.loc["AUS_test_ct4-1", ["split", "excluded_from"]].tolist() == ["unlabeled", "test_aus"]
    assert splits.loc["AUS_test_ct4-1", "note"].startswith("mask unusable: ")


# ----------------------------------------------------------------------------- images


def _exif_rotated(arr: np.ndarray, path, fmt: str):
    """Save `arr` as a camera would: stored turned 90 degrees, EXIF orientation 6 to turn it back."""
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(arr))).save(path, format=fmt, exif=exif)


def test_exif_orientation_applies_to_images_and_masks(tmp_path):
    yy, xx = np.mgrid[0:32, 0:48]
    image = (4 * yy + 2 * xx).astype(np.uint8)  # smooth: JPEG keeps it within a few levels
    _exif_rotated(image, tmp_path / "i.jpg", "JPEG")
    with Image.open(tmp_path / "i.jpg") as im:
        assert im.size == (32, 48)  # stored turned
    got = load_gray(tmp_path / "i.jpg")
    assert got.shape == image.shape
    assert np.abs(got.astype(int) - image).mean() < 3
    mask = PALETTE[(xx > 20).astype(np.uint8) * IDX["spleen"]]
    _exif_rotated(mask, tmp_path / "m.png", "PNG")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)


def test_a_rotated_jpeg_still_pairs_with_its_mask_end_to_end(tmp_path):
    root = make_dataset(tmp_path / "data")
    path = root / "RUS/images/test/c1.jpg"
    _exif_rotated(np.asarray(Image.open(path)), path, "JPEG")  # now stored 16x20
    out = tmp_path / "results"
    write_manifest(tmp_path / "data", dataset_cfg(), False, out / "manifest.csv", out / "issues.csv")
    report = decode_masks(out / "manifest.csv", root, dataset_cfg(), out / "labels")
    assert "RUS_test_c1" in set(report["image_id"])
    assert load_grayscale(path).shape == np.load(out / "labels" / "RUS_test_c1.npy").shape == (16, 20)


# ----------------------------------------------------------------------------- label cache


def test_label_cache_with_wrong_dtype_or_shape_names_the_file(tmp_path):
    lut = np.arange(len(PALETTE), dtype=np.uint8)
    np.save(tmp_path / "a.npy", np.zeros((16, 20), np.int64))
    with pytest.raises(DataError, match=r"a\.npy.*uint8.*decode_masks"):
        load_labels(tmp_path / "a.npy", lut)
    np.save(tmp_path / "b.npy", np.zeros((16, 20), np.uint8))
    with pytest.raises(DataError, match=r"b\.npy.*16x20.*20x16"):
        load_labels(tmp_path / "b.npy", lut, shape=(20, 16))
    assert load_labels(tmp_path / "b.npy", lut, shape=(16, 20)).shape == (16, 20)


def test_negative_or_float_pixels_are_refused_naming_the_file(tmp_path):
    Image.fromarray(np.full((4, 5), -3, np.int32), mode="I").save(tmp_path / "neg.tif")
    with pytest.raises(DataError, match=r"neg\.tif.*negative"):
        load_gray(tmp_path / "neg.tif")
    Image.fromarray(np.full((4, 5), 0.5, np.float32), mode="F").save(tmp_path / "float.tif")
    with pytest.raises(DataError, match=r"float\.tif.*floating-point"):
        load_gray(tmp_path / "float.tif")


def test_palette_tolerance_beyond_the_off_palette_distance_names_both_keys(downscaled):
    root, out, _ = downscaled
    cfg = dataset_cfg(palette_tolerance=80, off_palette_distance=60)
    with pytest.raises(DataError, match="palette_tolerance.*off_palette_distance"):
        decode_masks(out / "manifest.csv", root, cfg, out / "labels")
