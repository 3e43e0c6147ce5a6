"""A tiny ultrasound-like dataset in the workflow's contract formats, for the diagnostics tests.

Images have a sector field of view, depth attenuation and organ blobs; each
subject's anatomy is fixed and its frames jitter. The simulator style is dark
and clean with a grey-10 padding strip; the real style is bright and speckled
(saved as JPG). `same_style=True` draws both modalities from one distribution
(no domain gap). Tests edit the returned frames (masks, subjects, splits) to
plant a problem, then `write_dataset` writes the files the diagnostics read
(datasets.write_frames: the dataset root, manifest.csv, manifest_issues.csv,
labels/*.npy, labels/decode_report.csv and splits.csv). Nothing here uses the
other workflow modules, so the diagnostics tests do not depend on them.

This file also checks the builder itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from conftest import REPO
from datasets import NAMES, PALETTE, Frame, Written, dataset_cfg, write_frames
from usseg.diagnostics import DiagnosticsOutputs

# The palette and layout of config.yaml (the one copy: tests/datasets.py reads it).
DATASET_CFG = dataset_cfg()
IDX = {n: i for i, n in enumerate(NAMES)}

DIAG_CFG = {
    "min_labeled_target_subjects": {"warn_below": 10, "fail_below": 5},
    "min_target_label_share": {"warn_below": 0.3, "fail_below": 0.1},
    "rare_class_pixel_share": 0.01,
    "min_images_per_class": 20,
    "domain_auc": {"warn_above": 0.75, "fail_above": 0.9},
    "domain_cv_folds": 4,
    "domain_permutations": 200,
    "histogram_bins": 64,
    "fov_threshold": 12,
    "gallery_per_modality": 4,
    "near_duplicate_hamming": 4,
    "seed": 0,
    "published_baselines": [
        {
            "source": "article",
            "test_set": "test_aus",
            "class": "liver",
            "metric": "dice",
            "value": 0.68,
            "measured_on": "the fixture",
        },
    ],
}

SIZE = 64
PADDING_ROWS = 3

# (modality, orig_split, subject, frames, labeled frames)
# Like the reference: simulator labels dominate, 4 labeled real subjects (test only), many unlabeled real frames.
DEMO_LIKE = (
    [("AUS", "train", f"ct{i}", 8, 8) for i in range(1, 7)]
    + [("AUS", "test", f"ct{i}", 6, 6) for i in range(10, 13)]
    + [("RUS", "train", s, 6, 0) for s in ("c", "d", "e", "f", "i")]
    + [("RUS", "test", s, n + 2, n) for s, n in (("h", 6), ("a", 4), ("g", 3), ("b", 2))]
)
# Balanced and clean: many labeled subjects in both modalities.
CLEAN = (
    [("AUS", "train", f"ct{i}", 5, 5) for i in range(1, 9)]
    + [("AUS", "test", f"ct{i}", 5, 5) for i in range(10, 13)]
    + [("RUS", "train", s, 5, 5) for s in ("c", "d", "e", "f", "i", "j", "k", "l")]
    + [("RUS", "test", s, 5, 5) for s in ("a", "b", "g")]
)


@dataclass
class Fixture(Written):
    """A written dataset (datasets.Written) and the folder the diagnostics write to."""

    out_dir: Path

    @property
    def outputs(self) -> DiagnosticsOutputs:
        return rule_outputs(self.out_dir, list(DATASET_CFG["modalities"]))

    def args(self, dataset_cfg=None, diag_cfg=None):
        return (
            dataset_cfg or DATASET_CFG,
            diag_cfg or DIAG_CFG,
            self.root,
            self.manifest_csv,
            self.issues_csv,
            self.labels_dir,
            self.splits_csv,
            self.outputs,
        )


def rule_outputs(folder: Path, modalities: list[str]) -> DiagnosticsOutputs:
    """The diagnostics rule's named outputs, read from rules/diagnostics.smk, placed in `folder`.

    The rule is the one source of these names; reading it here keeps the tests
    from keeping a second list (and fails if the rule and DiagnosticsOutputs differ).
    """
    text = (REPO / "rules/diagnostics.smk").read_text()
    block = text[text.index("    output:"):text.index("    log:")]
    named = re.findall(r'^        (\w+)=(?:report\(\s*)?(?:expand\()?f"\{DIAG\}/([^"]+)"', block, re.MULTILINE)
    values = {name: str(folder / path) for name, path in named}
    galleries = values.pop("galleries").replace("{{modality}}", "{}")
    return DiagnosticsOutputs(**values, galleries={m: galleries.format(m) for m in modalities})


# ----------------------------------------------------------------------------- drawing


def _fan(size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(float)
    apex_y = -0.25 * size
    r = np.hypot(yy - apex_y, xx - size / 2)
    theta = np.arctan2(xx - size / 2, yy - apex_y)
    return (r > 0.35 * size) & (r < 1.2 * size) & (np.abs(theta) < 0.6)


def _ellipse(size, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / rx
    v = (-(xx - cx) * s + (yy - cy) * c) / ry
    return u * u + v * v <= 1.0


def subject_anatomy(modality: str, subject: str, seed: int, rare_organs: bool) -> dict:
    rng = np.random.default_rng([seed, sum(map(ord, modality + subject))])
    s = SIZE
    a = {
        "liver": (
            0.42 * s + rng.uniform(-3, 3),
            0.42 * s + rng.uniform(-4, 4),
            0.2 * s,
            0.3 * s,
            rng.uniform(-0.4, 0.4),
        ),
        "kidney": (
            0.72 * s + rng.uniform(-2, 2),
            0.62 * s + rng.uniform(-4, 4),
            0.09 * s,
            0.13 * s,
            rng.uniform(-0.5, 0.5),
        ),
        "vessels": (
            0.5 * s + rng.uniform(-3, 3),
            0.35 * s + rng.uniform(-3, 3),
            0.025 * s,
            0.14 * s,
            rng.uniform(-0.3, 0.3),
        ),
        "gallbladder": (
            0.3 * s + rng.uniform(-2, 2),
            0.62 * s + rng.uniform(-3, 3),
            0.05 * s,
            0.07 * s,
            0.0,
        ),
    }
    if rng.uniform() < 0.5:
        a["spleen"] = (0.3 * s, 0.3 * s + rng.uniform(-3, 3), 0.1 * s, 0.12 * s, 0.2)
    if rare_organs:
        a["adrenal"] = (0.62 * s + rng.uniform(-2, 2), 0.72 * s, 0.02 * s, 0.025 * s, 0.0)
        if rng.uniform() < 0.5:
            a["pancreas"] = (0.6 * s, 0.42 * s + rng.uniform(-3, 3), 0.03 * s, 0.08 * s, 0.1)
        a["bone"] = (0.86 * s, 0.25 * s + rng.uniform(-3, 3), 0.02 * s, 0.06 * s, 0.0)
    return a


TISSUE = {
    "background": 0.45,
    "liver": 0.6,
    "kidney": 0.5,
    "vessels": 0.08,
    "gallbladder": 0.05,
    "spleen": 0.7,
    "adrenal": 0.55,
    "pancreas": 0.65,
    "bone": 1.0,
}


def draw_frame(
    anatomy: dict, style: str, rng: np.random.Generator, padding: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(grey uint8 image, label array) of one frame; organs jitter a little from frame to frame."""
    s = SIZE
    fan = _fan(s)
    labels = np.zeros((s, s), dtype=np.uint8)
    dy, dx = rng.uniform(-1.5, 1.5, size=2)
    for name in (
        "liver",
        "spleen",
        "kidney",
        "gallbladder",
        "pancreas",
        "adrenal",
        "vessels",
        "bone",
    ):
        if name in anatomy:
            cy, cx, ry, rx, ang = anatomy[name]
            labels[_ellipse(s, cy + dy, cx + dx, ry, rx, ang)] = IDX[name]
    labels[~fan] = 0
    tissue = np.vectorize(lambda k: TISSUE[NAMES[k]])(np.arange(len(NAMES)))[labels].astype(float)
    depth = np.linspace(0, 1, s)[:, None]
    if style == "synthetic":
        img = 255 * 0.28 * tissue * (1 - 0.45 * depth) + rng.normal(0, 1.5, (s, s))
    else:
        speckle = rng.rayleigh(1.0, (s, s)) / np.sqrt(np.pi / 2)
        img = 255 * 0.75 * tissue * (1 - 0.25 * depth) * speckle
        img = ndi.gaussian_filter(img, 0.6) + 30
    img = np.where(fan, np.clip(img, 14, 255), 0)
    if padding:
        img[-PADDING_ROWS:] = 10
        labels[-PADDING_ROWS:] = 0
    return np.rint(img).astype(np.uint8), labels


def colour_mask(labels: np.ndarray, padding: bool) -> np.ndarray:
    rgb = PALETTE[labels].copy()
    if padding:
        rgb[-PADDING_ROWS:] = 10  # (10,10,10) is background in the simulator's masks
    return rgb


# Real-image organs are smaller than simulator ones (the demo's deeper depth setting): radii x 0.75.
REAL_ORGAN_SCALE = 0.75


def scale_organs(anatomy: dict, factor: float, organs=None) -> dict:
    """The anatomy with the radii of `organs` (default: all) multiplied by `factor`."""
    return {
        k: (cy, cx, ry * factor, rx * factor, ang)
        if organs is None or k in organs
        else (cy, cx, ry, rx, ang)
        for k, (cy, cx, ry, rx, ang) in anatomy.items()
    }


def make_frames(layout=DEMO_LIKE, seed: int = 0, same_style: bool = False) -> list[Frame]:
    """Frames of every subject in `layout`.

    Rare organs (bone, pancreas, adrenal) appear only in simulator subjects, as in the reference, and
    real organs are smaller (REAL_ORGAN_SCALE), unless `same_style`: then both modalities come from one
    distribution, anatomy included.
    """
    frames = []
    for modality, orig_split, subject, n, n_lab in layout:
        synthetic = modality == "AUS"
        style = "real" if same_style else ("synthetic" if synthetic else "real")
        padding = synthetic and not same_style
        anatomy = subject_anatomy(modality, subject, seed, rare_organs=synthetic or same_style)
        if not synthetic and not same_style:
            anatomy = scale_organs(anatomy, REAL_ORGAN_SCALE)
        for k in range(1, n + 1):
            rng = np.random.default_rng([seed, sum(map(ord, modality + subject)), k])
            img, labels = draw_frame(anatomy, style, rng, padding)
            mask = colour_mask(labels, padding) if k <= n_lab else None
            frames.append(
                Frame(
                    modality,
                    orig_split,
                    subject,
                    k,
                    img,
                    mask,
                    jpg=(not synthetic and not same_style),
                )
            )
    assign_splits(frames)
    return frames


def assign_splits(frames: list[Frame], val_subjects=None) -> None:
    """Contract splits: labeled simulator train subjects -> train (the last one -> val), labeled test -> test_{mod}."""
    train_subj = sorted(
        {
            f.subject
            for f in frames
            if f.orig_split == "train" and f.mask is not None and f.modality == "AUS"
        }
    )
    val = set(val_subjects if val_subjects is not None else train_subj[-1:])
    for f in frames:
        if f.mask is None:
            f.split = "unlabeled"
        elif f.orig_split == "test":
            f.split = f"test_{f.modality.lower()}"
        else:
            f.split = "val" if f.subject in val else "train"


# ----------------------------------------------------------------------------- writing


def write_dataset(tmp: Path, frames: list[Frame], issues=(), splits_override: dict | None = None) -> Fixture:
    written = write_frames(tmp, frames, issues, splits_override)
    return Fixture(**vars(written), out_dir=written.results / "diagnostics")


def build(tmp, layout=DEMO_LIKE, seed=0, same_style=False, **kw) -> Fixture:
    return write_dataset(tmp, make_frames(layout, seed, same_style), **kw)


# ----------------------------------------------------------------------------- the builder's own checks


def test_builder_writes_contract_files(tmp_path):
    fx = build(tmp_path)
    manifest = pd.read_csv(fx.manifest_csv, keep_default_na=False)
    splits = pd.read_csv(fx.splits_csv)
    report = pd.read_csv(fx.labels_dir / "decode_report.csv")
    labeled = manifest[manifest["has_mask"]]
    assert set(manifest["modality"]) == {"AUS", "RUS"}
    assert (manifest["mask_path"] == "").sum() == (~manifest["has_mask"]).sum()
    assert set(report["image_id"]) == set(labeled["image_id"])
    assert not report["flagged"].any()
    assert set(splits["split"]) == {"train", "val", "test_aus", "test_rus", "unlabeled"}
    rus = labeled[labeled["modality"] == "RUS"]
    assert sorted(rus.groupby("subject_id").size().tolist()) == [2, 3, 4, 6]
    for row in labeled.itertuples():
        lab = np.load(fx.labels_dir / f"{row.image_id}.npy")
        assert lab.shape == (row.height, row.width) and lab.dtype == np.uint8
        assert (fx.root / row.image_path).exists() and (fx.root / row.mask_path).exists()


def test_builder_draws_a_fan_and_a_padding_strip():
    frames = make_frames(DEMO_LIKE[:1])
    img = frames[0].image
    assert (img[-PADDING_ROWS:] == 10).all()
    assert img[5, 0] == 0 and img[SIZE // 2, SIZE // 2] > 12
    assert (frames[0].mask[-1] == 10).all()


@pytest.mark.parametrize("same_style", [False, True])
def test_styles_differ_only_when_asked(same_style):
    frames = make_frames(DEMO_LIKE, same_style=same_style)
    means = {
        m: np.mean([f.image[f.image > 12].mean() for f in frames if f.modality == m])
        for m in ("AUS", "RUS")
    }
    gap = abs(means["AUS"] - means["RUS"])
    assert (gap < 10) if same_style else (gap > 40)
