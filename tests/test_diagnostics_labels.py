"""Label verification: colours far from the palette, channel swaps and empty masks are flagged; the gallery shows
the worst masks."""

import copy

import numpy as np
import pandas as pd
import pytest

from datasets import PALETTE
from test_diagnostics_fixtures import (
    DATASET_CFG,
    DIAG_CFG,
    IDX,
    make_frames,
    write_dataset,
)
from usseg.diagnostics.inputs import load_inputs
from usseg.diagnostics.label_check import (
    channel_permutations_of,
    check_labels,
    choose_gallery,
    compute_flags,
    label_status,
)
from usseg.diagnostics.label_stats import collect_label_stats

NAMES = [c["name"] for c in DATASET_CFG["classes"]]
# 60 labeled real masks, so that one odd mask is under 2% of its domain's masks.
LAYOUT = (
    [("AUS", "train", f"ct{i}", 5, 5) for i in range(1, 5)]
    + [("AUS", "test", "ct10", 5, 5)]
    + [("RUS", "test", s, 10, 10) for s in ("a", "b", "g", "h", "m", "n")]
)


@pytest.fixture(scope="module")
def frames():
    return make_frames(LAYOUT)


def flags_for(tmp_path, frames, diag_cfg=DIAG_CFG):
    fx = write_dataset(tmp_path, frames)
    inputs = load_inputs(
        DATASET_CFG, diag_cfg, fx.root, fx.manifest_csv, fx.issues_csv, fx.labels_dir, fx.splits_csv
    )
    return inputs, collect_label_stats(inputs), fx


def frame(frames, image_id):
    return next(f for f in frames if f.image_id == image_id)


def test_channel_permutations_name_the_class():
    # kidney with B and R swapped; the same colour is also a rotation of spleen
    assert channel_permutations_of((0, 255, 255), PALETTE, NAMES) == [
        "kidney (255,255,0) read as BGR",
        "spleen (255,0,255) read as GBR",
    ]
    assert channel_permutations_of((0, 100, 100), PALETTE, NAMES) == [
        "liver (100,0,100) read as GBR"
    ]
    assert channel_permutations_of((100, 0, 100), PALETTE, NAMES) == []  # symmetric: itself
    assert channel_permutations_of((128, 128, 128), PALETTE, NAMES) == []


def test_clean_masks_raise_no_flag(tmp_path, frames):
    inputs, stats, _ = flags_for(tmp_path, copy.deepcopy(frames))
    assert compute_flags(inputs, stats).empty


def test_colour_far_from_the_palette_is_flagged(tmp_path, frames):
    frames = copy.deepcopy(frames)
    frame(frames, "RUS_test_a3").mask[20:32, 20:32] = (128, 128, 128)
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags[["image_id", "flag"]].values.tolist() == [["RUS_test_a3", "off_palette"]]
    assert "(128,128,128)" in flags.iloc[0]["detail"]


def test_non_palette_channel_swap_is_named(tmp_path, frames):
    frames = copy.deepcopy(frames)
    f = frame(frames, "AUS_train_ct2-4")
    f.mask = f.mask[
        ..., [1, 2, 0]
    ].copy()  # liver (100,0,100) becomes (0,100,100), far from every colour
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    swap = flags[flags["flag"] == "channel_swap?"]
    assert swap["image_id"].tolist() == ["AUS_train_ct2-4"]
    assert "liver (100,0,100) read as GBR" in swap.iloc[0]["detail"]


def test_bgr_swap_onto_palette_colours_is_caught_by_the_domain(tmp_path, frames):
    frames = copy.deepcopy(frames)
    f = frame(frames, "RUS_test_g4")
    assert (f.mask == PALETTE[IDX["kidney"]]).all(axis=-1).any()
    f.mask = f.mask[
        ..., ::-1
    ].copy()  # kidney -> adrenal, vessels -> pancreas: valid colours, wrong organs
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert set(flags["image_id"]) == {"RUS_test_g4"}
    assert set(flags["flag"]) == {"channel_swap?"}
    assert any("kidney (255,255,0) read as BGR" in d for d in flags["detail"])


def test_empty_mask_is_flagged(tmp_path, frames):
    frames = copy.deepcopy(frames)
    f = frame(frames, "AUS_train_ct3-2")
    f.mask[:] = 0
    f.mask[-3:] = 10  # the padding strip stays
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags[["image_id", "flag"]].values.tolist() == [["AUS_train_ct3-2", "empty"]]


def test_status_and_gallery(tmp_path, frames):
    frames = copy.deepcopy(frames)
    frame(frames, "RUS_test_b7").mask[10:40, 10:40] = (128, 128, 128)
    inputs, stats, fx = flags_for(tmp_path, frames)
    fx.out_dir.mkdir(parents=True)
    result = check_labels(inputs, stats, fx.outputs)
    assert result.status == "WARN"  # 1 of 85 masks: a few
    assert result.value == "1/85 masks flagged"
    assert result.details["galleries"]["RUS"][0] == "RUS_test_b7"
    assert len(result.details["galleries"]["RUS"]) == DIAG_CFG["gallery_per_modality"]
    assert (fx.out_dir / "label_gallery_AUS.png").exists() and (
        fx.out_dir / "label_gallery_RUS.png"
    ).exists()
    saved = pd.read_csv(fx.out_dir / "label_flags.csv")
    assert saved["image_id"].tolist() == ["RUS_test_b7"]


def test_many_flagged_masks_fail(tmp_path, frames):
    frames = copy.deepcopy(frames)
    for f in [f for f in frames if f.modality == "RUS"][:6]:  # 6 of 85 masks > 5 %
        f.mask[5:25, 25:45] = (128, 128, 128)
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags["image_id"].nunique() == 6
    status, reason = label_status(flags, 85, 0.05)
    assert status == "FAIL" and reason.startswith("6 of 85 masks flagged (7.1%): off_palette 6")
    assert label_status(flags, 85, 0.1)[0] == "WARN"


def test_gallery_always_includes_the_most_off_palette_mask(tmp_path, frames):
    frames = copy.deepcopy(frames)
    f = frame(frames, "AUS_train_ct4-5")
    border = np.zeros(f.mask.shape[:2], dtype=bool)
    border[30:34, :] = True
    f.mask[border] = (f.mask[border] * 0.8).astype(
        np.uint8
    )  # anti-aliasing-like: off palette, not far
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags.empty
    ids = choose_gallery(inputs, "AUS", flags, 3, 0, set(stats.image_ids))
    assert ids[0] == "AUS_train_ct4-5" and len(ids) == 3
    assert len({i.split("-")[0] for i in ids}) == 3  # the rest spread over subjects
    assert ids == choose_gallery(inputs, "AUS", flags, 3, 0, set(stats.image_ids))  # deterministic


def test_a_permuted_colour_alone_is_not_called_a_channel_swap(tmp_path, frames):
    """Adrenal's colour is kidney's read as BGR, but a small adrenal blob far from where kidneys sit is a rare
    organ, not a swapped kidney: it is flagged implausible, not channel_swap?."""
    frames = copy.deepcopy(frames)
    f = frame(frames, "RUS_test_h3")
    f.mask[14:17, 14:17] = PALETTE[IDX["adrenal"]]  # top left of the fan; kidneys sit low right
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags[["image_id", "flag"]].values.tolist() == [["RUS_test_h3", "implausible_class"]]
    assert "adrenal is in 1 of 60 RUS masks" in flags["detail"].iloc[0]


def test_a_lone_permuted_off_palette_colour_is_not_called_a_channel_swap(tmp_path, frames):
    """(0,100,100) is liver read as GBR, but a small patch of it in a corner, where no liver sits, is a
    painted foreign colour: flagged off_palette, its detail naming the permutation and why it is not a swap.
    The same colour over a whole swapped mask's liver is still caught (test_non_palette_channel_swap_is_named)."""
    frames = copy.deepcopy(frames)
    f = frame(frames, "AUS_train_ct1-3")
    f.mask[2:10, 2:10] = (0, 100, 100)  # 64 of 4,096 pixels: beyond the 1 % limit
    inputs, stats, _ = flags_for(tmp_path, frames)
    flags = compute_flags(inputs, stats)
    assert flags[["image_id", "flag"]].values.tolist() == [["AUS_train_ct1-3", "off_palette"]]
    detail = flags["detail"].iloc[0]
    assert "liver (100,0,100) read as GBR" in detail and "not called a channel swap" in detail
