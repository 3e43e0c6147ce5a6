"""A deterministic demo dataset shaped like "US simulation & segmentation".

The reference dataset (Kaggle ``ignaciorlando/ussimandsegm``) cannot be
downloaded where the workflow runs, so this module draws one with the same
layout, naming, quirks and problems (DESIGN.md, "Demo dataset"):

- ``AUS``: simulator frames (PNG, ``ct<N>-<k>.png``), every one with a crisp
  colour mask that may hold all eight organs; a grey-10 padding strip at the
  bottom, (10,10,10) in the mask; one subject's masks palette-indexed (mode P),
  others with an alpha channel.
- ``RUS``: real-scanner frames (JPG, ``<letters><k>.jpg``); masks only for
  60 test frames of 4 subjects (h 26, a 16, g 10, b 8) plus one orphan mask;
  only liver, kidney, gallbladder, spleen and vessels are labeled; borders are
  anti-aliased; one mask has a (10,0,10) background tint.
- The domain gap: simulator frames are dark and clean, real frames carry
  multiplicative speckle, log compression (a broad mid-range histogram), blur
  and JPEG artefacts, patchier surrounding tissue and a deeper depth setting
  (smaller anatomy). Small organs (adrenal, pancreas, gallbladder) are rare.

Every frame is a B-mode image: a sector field of view from a probe at the top
centre, depth attenuation, shadows below bone, enhancement below fluid. A
subject's anatomy (organ shapes, positions and elevations) comes from a
per-subject random generator; its frames differ by probe shift, tilt,
compression, a smooth deformation and the elevation of the imaging plane,
which is what makes thin organs come and go.

Each file depends only on (seed, modality, subject, frame): the per-image
random generators derive from a SeedSequence of those, and PNG/JPEG are written
with fixed settings and no metadata, so the bytes are the same whatever the
order of generation or the number of worker processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

# Internal organ codes; colours are looked up by these names in the config palette,
# so a palette in another order still works.
ORGANS = (
    "background",
    "liver",
    "bone",
    "gallbladder",
    "kidney",
    "pancreas",
    "vessels",
    "spleen",
    "adrenal",
)
BG, LIVER, BONE, GALLBLADDER, KIDNEY, PANCREAS, VESSELS, SPLEEN, ADRENAL = range(len(ORGANS))
REAL_LABELED = (LIVER, GALLBLADDER, KIDNEY, VESSELS, SPLEEN)

DEFAULT_CLASSES = [
    {"name": "background", "rgb": [0, 0, 0]},
    {"name": "liver", "rgb": [100, 0, 100]},
    {"name": "bone", "rgb": [255, 255, 255]},
    {"name": "gallbladder", "rgb": [0, 255, 0]},
    {"name": "kidney", "rgb": [255, 255, 0]},
    {"name": "pancreas", "rgb": [0, 0, 255]},
    {"name": "vessels", "rgb": [255, 0, 0]},
    {"name": "spleen", "rgb": [255, 0, 255]},
    {"name": "adrenal", "rgb": [0, 255, 255]},
]

PADDING_GREY = 10  # simulator padding strip: grey 10 in the image, (10,10,10) in the mask
TINT_RGB = (10, 0, 10)  # the one real mask whose background is not quite black
JPEG_QUALITY = 85
PNG_COMPRESS_LEVEL = 3  # zlib level: fast, and the same bytes on every run
# Share of the way a real-mask border pixel moves from its majority colour towards the
# area-averaged colour. A full blend would put many border pixels farther than the
# decoder's off-palette distance (60) from every colour; the reference masks' borders
# stay within it, so the blend is partial.
ANTI_ALIAS_STRENGTH = 0.3
MASK_SUPERSAMPLING = 3
OUTLINE_SAMPLES = 512  # angular resolution of organ outlines

# Real test subjects with annotations and their labeled frame counts (the reference's).
RUS_TEST_LABELED = {"h": 26, "a": 16, "g": 10, "b": 8}
RUS_TRAIN_SUBJECTS = ("c", "d", "e", "f", "i", "j", "k")
ORPHAN_SUBJECT = "h"
TINTED_SUBJECT = "g"


@dataclass(frozen=True)
class SizeSpec:
    width: int
    height: int
    aus_train: tuple[int, ...]  # frames per subject ct1.., in order
    aus_test: tuple[int, ...]  # frames per test subject ct10..
    rus_train: tuple[int, ...]  # frames per subject c, d, e, ...
    rus_test_labeled: dict  # subject -> labeled frames
    rus_test_unlabeled: dict  # subject -> unlabeled frames


SIZES = {
    # Reference counts: AUS 633 + 293, RUS 404 + 213 (60 labeled + 153 not), 450 x 460.
    "full": SizeSpec(
        width=450,
        height=460,
        aus_train=(74, 69, 78, 62, 71, 75, 66, 64, 74),
        aus_test=(76, 71, 72, 74),
        rus_train=(61, 55, 60, 57, 58, 54, 59),
        rus_test_labeled=RUS_TEST_LABELED,
        rus_test_unlabeled={"h": 38, "a": 36, "g": 42, "b": 37},
    ),
    "small": SizeSpec(
        width=160,
        height=160,
        aus_train=(16, 14, 18, 15, 17, 14, 16, 18, 15),
        aus_test=(10, 10, 9, 11),
        rus_train=(6, 5, 7, 6, 6, 5, 7),
        rus_test_labeled=RUS_TEST_LABELED,
        rus_test_unlabeled={"h": 4, "a": 3, "g": 3, "b": 2},
    ),
    "tiny": SizeSpec(
        width=64,
        height=64,
        aus_train=(3, 3, 3, 3, 3),
        aus_test=(2, 2),
        rus_train=(2, 2),
        rus_test_labeled={"h": 3, "a": 2, "g": 2, "b": 1},
        rus_test_unlabeled={"h": 1, "a": 0, "g": 0, "b": 0},
    ),
}

AUS_TEST_FIRST_ID = 10  # simulator test subjects are ct10, ct11, ...
# Mask file format per simulator subject (index in the train / test list): the
# reference mixes RGB, RGBA and palette-indexed files.
AUS_MASK_MODES = {("train", 2): "P", ("train", 4): "RGBA", ("test", 1): "RGBA"}
RUS_MASK_MODES = {"b": "RGBA"}
# Views: most subjects are right-upper-quadrant scans (liver, gallbladder, kidney);
# some are left-side scans (spleen, kidney and the tip of the liver).
AUS_LEFT_VIEW = {("train", 3), ("train", 7), ("test", 2)}
RUS_LEFT_VIEW = {"e", "j", "g"}


# ----------------------------------------------------------------------------- seeds


def _code(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _rng(seed: int, *parts) -> np.random.Generator:
    """A generator that depends only on `seed` and `parts` (strings or non-negative ints)."""
    key = [int(seed)] + [p if isinstance(p, int) else _code(str(p)) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(key))


# ----------------------------------------------------------------------------- anatomy


def _organ(
    rng, kind, centre, radii, angle_deg, *, e0=0.0, et=5.0, wobble=0.04, harmonics=4, **extra
):
    """An organ: an ellipse with a wobbly outline, the 2-D section of an ellipsoid.

    `centre`, `radii`: (u, v) in body coordinates; `e0`, `et`: elevation of its
    centre and its half thickness across the imaging plane; a frame at elevation e
    sees it scaled by sqrt(1 - ((e - e0) / et)^2).
    """
    ks = np.arange(2, 2 + harmonics)
    amps = wobble * rng.uniform(0.4, 1.0, harmonics) / np.sqrt(ks - 1)
    phases = rng.uniform(0, 2 * np.pi, harmonics)
    phi = (np.arange(OUTLINE_SAMPLES) + 0.5) * (2 * np.pi / OUTLINE_SAMPLES) - np.pi
    radius = 1.0 + (amps[:, None] * np.cos(ks[:, None] * phi + phases[:, None])).sum(0)
    return {
        "kind": kind,
        "cu": float(centre[0]),
        "cv": float(centre[1]),
        "ru": float(radii[0]),
        "rv": float(radii[1]),
        "angle": math.radians(angle_deg),
        "e0": float(e0),
        "et": float(et),
        # Squared outline radius by angle; one extra entry closes the circle.
        "outline2": np.append(radius**2, radius[0] ** 2).astype(np.float32),
        "reach": float(radius.max()),
        **extra,
    }


# Paint order: later organs lie over earlier ones.
PAINT_ORDER = {
    LIVER: 0,
    SPLEEN: 0,
    PANCREAS: 1,
    KIDNEY: 2,
    ADRENAL: 3,
    GALLBLADDER: 4,
    VESSELS: 5,
    BONE: 6,
}


# fmt: off
def subject_anatomy(seed: int, modality: str, subject: str, left_view: bool) -> dict:
    """Organ layout of one subject, in body coordinates (units of image height;
    u lateral, 0 under the probe at rest; v depth below the skin)."""
    rng = _rng(seed, modality, subject, "anatomy")
    U, N = rng.uniform, rng.normal
    synthetic = modality == "AUS"
    wall = U(0.07, 0.11)  # abdominal wall thickness
    organs = []
    if not left_view:
        lv_v = wall + U(0.25, 0.29)
        organs.append(_organ(rng, LIVER, (N(-0.04, 0.04), lv_v), (U(0.44, 0.52), U(0.25, 0.29)),
                             U(-12, 12), wobble=0.07, top=wall + 0.01))
        k_u, k_v = N(0.1, 0.06), lv_v + U(0.3, 0.34)
        if rng.random() < 0.9:
            organs.append(_organ(rng, KIDNEY, (k_u, k_v), (U(0.15, 0.19), U(0.075, 0.095)), U(-20, 25),
                                 e0=N(0, 0.15), et=1.0, wobble=0.03, sinus=U(0.45, 0.55)))
        if rng.random() < 0.6 or (not synthetic and subject == ORPHAN_SUBJECT):
            organs.append(_organ(rng, GALLBLADDER, (N(0.17, 0.04), lv_v + U(0.08, 0.13)),
                                 (U(0.065, 0.085), U(0.03, 0.04)), U(15, 40),
                                 e0=U(-0.35, 0.35), et=0.4, wobble=0.05, harmonics=2))
        # Vessels: inferior vena cava, portal vein, one or two hepatic veins.
        organs.append(_organ(rng, VESSELS, (N(-0.14, 0.04), lv_v + U(0.16, 0.2)),
                             (U(0.13, 0.17), U(0.025, 0.035)), U(-8, 8),
                             e0=N(0, 0.1), et=0.8, wobble=0.03, harmonics=2))
        organs.append(_organ(rng, VESSELS, (N(0.0, 0.05), lv_v + U(0.0, 0.04)),
                             (U(0.05, 0.07), U(0.02, 0.028)), U(-30, 30),
                             e0=N(0, 0.2), et=0.6, wobble=0.03, harmonics=2))
        for _ in range(int(rng.integers(1, 3))):
            organs.append(_organ(rng, VESSELS, (N(-0.1, 0.1), lv_v - U(0.02, 0.1)),
                                 (U(0.09, 0.13), U(0.01, 0.014)), U(25, 60) * rng.choice([-1, 1]),
                                 e0=U(-0.4, 0.4), et=0.45, wobble=0.02, harmonics=2))
        if synthetic and rng.random() < 0.5:
            organs.append(_organ(rng, PANCREAS, (N(-0.26, 0.04), lv_v + U(0.3, 0.34)),
                                 (U(0.09, 0.12), U(0.025, 0.032)), U(-15, 15),
                                 e0=U(-0.4, 0.4), et=0.45, wobble=0.05))
    else:
        sp_v = wall + U(0.22, 0.26)
        organs.append(_organ(rng, LIVER, (N(-0.36, 0.03), wall + U(0.1, 0.13)), (U(0.17, 0.21), U(0.09, 0.11)),
                             U(-20, 0), e0=U(-0.3, 0.3), et=1.1, wobble=0.06, top=wall + 0.01))
        organs.append(_organ(rng, SPLEEN, (N(0.04, 0.04), sp_v), (U(0.33, 0.38), U(0.18, 0.21)), U(-20, 5),
                             wobble=0.06, top=wall + 0.01))
        k_u, k_v = N(0.02, 0.05), sp_v + U(0.32, 0.36)
        organs.append(_organ(rng, KIDNEY, (k_u, k_v), (U(0.15, 0.18), U(0.075, 0.09)), U(-25, 15),
                             e0=N(0, 0.15), et=1.0, wobble=0.03, sinus=U(0.45, 0.55)))
        organs.append(_organ(rng, VESSELS, (N(0.12, 0.04), sp_v + U(0.12, 0.16)), (U(0.05, 0.07), U(0.015, 0.022)),
                             U(-30, 30), e0=N(0, 0.2), et=0.6, wobble=0.03, harmonics=2))
        if synthetic and rng.random() < 0.5:
            organs.append(_organ(rng, PANCREAS, (N(0.2, 0.04), sp_v + U(0.2, 0.24)), (U(0.08, 0.1), U(0.022, 0.03)),
                                 U(-20, 10), e0=U(-0.4, 0.4), et=0.4, wobble=0.05))
    if synthetic and rng.random() < 0.55:
        # The adrenal is a thin sliver above the kidney's upper pole: in plane for few frames.
        side = -1 if not left_view else 1
        organs.append(_organ(rng, ADRENAL, (k_u + side * U(0.12, 0.16), k_v - U(0.07, 0.09)),
                             (U(0.028, 0.036), U(0.01, 0.014)), U(-40, 40),
                             e0=U(-0.5, 0.5), et=0.18, wobble=0.05, harmonics=2))
    # Ribs: oval cross-sections just under the wall, with their acoustic shadow.
    for _ in range(int(rng.integers(1, 3))):
        organs.append(_organ(rng, BONE, (rng.choice([-1, 1]) * U(0.16, 0.3), wall + U(0.0, 0.03)),
                             (U(0.035, 0.05), U(0.016, 0.022)), U(-15, 15),
                             e0=U(-0.6, 0.6), et=0.5, wobble=0.03, harmonics=2))
    organs.sort(key=lambda o: PAINT_ORDER[o["kind"]])
    # Motion of the probe over the subject's frames: a slow sweep of the elevation,
    # a lateral slide and a tilt, plus small jitter per frame.
    motion = {"e_amp": U(0.55, 0.8), "e_cycles": U(0.6, 1.4), "e_phase": U(0, 2 * np.pi),
              "u_amp": U(0.03, 0.06), "u_phase": U(0, 2 * np.pi),
              "tilt_amp": math.radians(U(2, 5)), "tilt_phase": U(0, 2 * np.pi)}
    # Tissue texture fixed to the body, so it moves with the anatomy.
    texture = _random_waves(rng, 24, wavelengths=(0.12, 0.45))
    fine = _random_waves(rng, 40, wavelengths=(0.02, 0.1))
    return {"wall": float(wall), "organs": organs, "motion": motion, "texture": texture, "fine": fine,
            "fat_layer": float(U(0.4, 0.6)), "muscle_freq": float(U(150, 220)),
            # Body units per unit of image height: the scanner's depth setting. Real exams
            # image deeper than the simulator does, so the anatomy looks smaller.
            "zoom": 1.0 if synthetic else float(U(1.1, 1.35))}
# fmt: on


def _random_waves(rng, n: int, wavelengths) -> dict:
    """A smooth random field fixed to the body: `n` plane waves of random direction,
    wavelength and phase (unit variance)."""
    angle = rng.uniform(0, np.pi, n)
    k = 2 * np.pi / rng.uniform(*wavelengths, n)
    return {
        "ku": (k * np.cos(angle)).astype(np.float32),
        "kv": (k * np.sin(angle)).astype(np.float32),
        "phase": rng.uniform(0, 2 * np.pi, n).astype(np.float32),
        "amp": np.float32(math.sqrt(2.0 / n)),
    }


def frame_pose(
    anatomy: dict, seed: int, modality: str, subject: str, frame: int, n_frames: int
) -> dict:
    """Probe pose of frame `frame` (1-based) of a subject recorded as `n_frames` frames."""
    rng = _rng(seed, modality, subject, frame, "pose")
    m = anatomy["motion"]
    t = (frame - 0.5) / max(n_frames, 1)
    return {
        "e": m["e_amp"] * math.sin(2 * math.pi * m["e_cycles"] * t + m["e_phase"])
        + rng.normal(0, 0.04),
        "du": m["u_amp"] * math.sin(2 * math.pi * t + m["u_phase"]) + rng.normal(0, 0.008),
        "dv": rng.normal(0, 0.008),
        "zoom": anatomy["zoom"],
        "tilt": m["tilt_amp"] * math.sin(2 * math.pi * t + m["tilt_phase"])
        + rng.normal(0, math.radians(0.8)),
        "warp": [
            (
                rng.uniform(0.004, 0.01),
                rng.uniform(4, 9),
                rng.uniform(0, 2 * np.pi),
                rng.uniform(0, 2 * np.pi),
            )
            for _ in range(2)
        ],
    }


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Fan:
    apex: float  # distance of the virtual apex above the top edge (units of height)
    half_angle: float  # radians
    depth: float  # field depth below the skin line (units of height)


def _fan(modality: str, height: int) -> Fan:
    if modality == "AUS":
        strip = _strip_rows(height) / height
        return Fan(apex=0.14, half_angle=math.radians(31), depth=1.0 - strip - 0.02)
    return Fan(apex=0.17, half_angle=math.radians(33), depth=0.95)


def _strip_rows(height: int) -> int:
    return max(2, round(0.035 * height))


@lru_cache(maxsize=16)
def _grid(width: int, height: int, ss: int, fan: Fan):
    """Pixel-centre coordinates (units of height; x as a row, y as a column) and the
    polar coordinates about the fan's apex."""
    xs = ((np.arange(width * ss, dtype=np.float64) + 0.5) / ss - width / 2) / height
    ys = (np.arange(height * ss, dtype=np.float64) + 0.5) / ss / height
    r = np.hypot(xs[None, :], ys[:, None] + fan.apex).astype(np.float32)
    th = np.arctan2(xs[None, :], ys[:, None] + fan.apex).astype(np.float32)
    inside = (r <= fan.apex + fan.depth) & (np.abs(th) <= fan.half_angle)
    return xs, ys, r, th, inside


def _body_axes(xs, ys, pose):
    """Body coordinates of the pixel grid as U = Ux[x] + Uy[y] and V = Vx[x] + Vy[y].

    The probe pose (tilt, shift) is affine and the tissue deformation is a sum of
    waves along one axis each, so both coordinates split into a row and a column
    term: every organ test below then costs one broadcast add per coordinate.
    """
    c, s = math.cos(pose["tilt"]), math.sin(pose["tilt"])
    xs, ys = xs * pose["zoom"], ys * pose["zoom"]
    ux, uy = c * xs, -s * ys + pose["du"]
    vx, vy = s * xs, c * ys + pose["dv"]
    for amp, freq, ph_u, ph_v in pose["warp"]:
        uy = uy + amp * np.sin(freq * ys + ph_u)
        vx = vx + amp * np.sin(freq * xs + ph_v)
    return ux, uy, vx, vy


def _organ_scale(org, e):
    z = (e - org["e0"]) / org["et"]
    return math.sqrt(1 - z * z) if abs(z) < 1 else 0.0


def _bbox(org, scale, pose, width, height, ss):
    """Pixel slices that hold the organ in this pose (inverse of the pose, plus a margin)."""
    c, s = math.cos(pose["tilt"]), math.sin(pose["tilt"])
    du, dv = org["cu"] - pose["du"], org["cv"] - pose["dv"]
    zoom = pose["zoom"]
    x, y = (c * du + s * dv) / zoom, (-s * du + c * dv) / zoom
    reach = (max(org["ru"], org["rv"]) * scale * org["reach"] + 0.03) / zoom
    x0 = max(math.floor(((x - reach) * height + width / 2) * ss), 0)
    x1 = min(math.ceil(((x + reach) * height + width / 2) * ss), width * ss)
    y0 = max(math.floor((y - reach) * height * ss), 0)
    y1 = min(math.ceil((y + reach) * height * ss), height * ss)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _organ_hit(org, scale, axes, box, inner=None):
    """Boolean map of the organ inside `box` (and of its inner core below `inner` * outline)."""
    ux, uy, vx, vy = axes
    ysl, xsl = box
    ca, sa = math.cos(org["angle"]), math.sin(org["angle"])
    a, b = org["ru"] * scale, org["rv"] * scale
    col_u, col_v = uy[ysl] - org["cu"], vy[ysl] - org["cv"]
    f32 = np.float32
    pu = ((ca * ux[xsl] + sa * vx[xsl]) / a).astype(f32)[None, :] + (
        (ca * col_u + sa * col_v) / a
    ).astype(f32)[:, None]
    pv = ((-sa * ux[xsl] + ca * vx[xsl]) / b).astype(f32)[None, :] + (
        (-sa * col_u + ca * col_v) / b
    ).astype(f32)[:, None]
    rho2 = pu * pu + pv * pv
    # Outline radius by angle, from the organ's table (one extra entry closes the circle).
    idx = ((np.arctan2(pv, pu) + f32(np.pi)) * f32(OUTLINE_SAMPLES / (2 * np.pi))).astype(np.int32)
    outline2 = org["outline2"][idx]
    hit = rho2 < outline2
    if "top" in org:
        hit &= (vx[xsl] - org["top"]).astype(f32)[None, :] + vy[ysl].astype(f32)[:, None] > 0
    core = rho2 < outline2 * (inner * inner) if inner is not None else None
    return hit, core


def label_map(anatomy, pose, width, height, ss, fan, *, with_details=False, clip_to_fan=True):
    """Organ codes per (sub)pixel, background outside the fan (unless not `clip_to_fan`).
    With details, also the kidney-sinus mask and the body axes (see _body_axes)."""
    xs, ys, _, _, inside = _grid(width, height, ss, fan)
    axes = _body_axes(xs, ys, pose)
    labels = np.zeros(inside.shape, dtype=np.uint8)
    sinus = np.zeros(inside.shape, dtype=bool) if with_details else None
    for org in anatomy["organs"]:
        scale = _organ_scale(org, pose["e"])
        if scale < 0.3:
            continue
        box = _bbox(org, scale, pose, width, height, ss)
        if box is None:
            continue
        hit, core = _organ_hit(
            org, scale, axes, box, inner=org.get("sinus") if with_details else None
        )
        labels[box][hit] = org["kind"]
        if core is not None:
            sinus[box] |= core & hit
    if clip_to_fan:
        labels[~inside] = BG
    if with_details:
        return labels, sinus & (labels == KIDNEY), axes
    return labels


def _body_field(waves: dict, axes, step: int = 1) -> np.ndarray:
    """A body-fixed random field (see _random_waves) on the pixel grid.

    Each wave's phase is a row term plus a column term (see _body_axes). The field
    is smooth, so it is evaluated on every `step`-th pixel and enlarged bilinearly.
    """
    ux, uy, vx, vy = axes
    height, width = len(uy), len(ux)
    ku, kv = waves["ku"][:, None], waves["kv"][:, None]
    row = (ku * ux[None, ::step] + kv * vx[None, ::step]).astype(np.float32)  # (n, w)
    col = (ku * uy[None, ::step] + kv * vy[None, ::step] + waves["phase"][:, None]).astype(
        np.float32
    )  # (n, h)
    field = np.zeros((col.shape[1], row.shape[1]), dtype=np.float32)
    for r, c in zip(row, col):
        field += np.cos(c[:, None] + r[None, :])
    field *= waves["amp"]
    if step == 1:
        return field
    big = Image.fromarray(field, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32)


# ----------------------------------------------------------------------------- echoes

# Mean echogenicity per organ code: real-scanner reflectivity (before speckle and log
# compression) and the simulator's grey level (0..1). The simulator is darker and
# squeezes the organs into a narrow dark range above darker surroundings; in real
# frames the surrounding tissue is nearly as bright as the parenchyma.
ECHO_REAL = np.array([0.34, 0.45, 0.08, 0.03, 0.2, 0.62, 0.035, 0.55, 0.40], dtype=np.float32)
ECHO_SIM = np.array([0.11, 0.23, 0.10, 0.015, 0.15, 0.29, 0.02, 0.27, 0.19], dtype=np.float32)
SINUS_REAL, SINUS_SIM = 1.3, 0.42
EDGE_REAL, EDGE_SIM = 1.2, 0.34
BONE_SURFACE_REAL, BONE_SURFACE_SIM = 2.5, 0.95
# Texture amplitude per organ code: heterogeneous background tissue, homogeneous parenchyma.
TEXTURE_AMP_SIM = np.array([0.35, 0.08, 0.0, 0.0, 0.1, 0.25, 0.0, 0.06, 0.1], dtype=np.float32)
# Real tissue around the organs (fat, bowel, muscle) is brighter and patchier than the
# simulator's: part of the gap a model trained on simulator frames has to cross.
TEXTURE_AMP_REAL = np.array([0.6, 0.08, 0.0, 0.0, 0.1, 0.25, 0.0, 0.06, 0.1], dtype=np.float32)


def _wall_profile(anatomy, V, real: bool):
    """Echoes of the abdominal wall (skin line, fat, striated muscle, fascia) by depth."""
    w = anatomy["wall"]
    fat_end = w * anatomy["fat_layer"]
    skin = np.exp(-((V / 0.012) ** 2))
    fascia = np.exp(-(((V - w) / 0.008) ** 2)) + 0.6 * np.exp(-(((V - fat_end) / 0.006) ** 2))
    muscle = (V > fat_end) * (0.5 + 0.5 * np.sin(anatomy["muscle_freq"] * V) ** 2)
    if real:
        return 0.18 + 0.75 * skin + 0.6 * fascia + 0.22 * muscle
    return 0.06 + 0.4 * skin + 0.3 * fascia + 0.08 * muscle


def _per_beam(values, beam, n_beams, reduce):
    out = np.full(n_beams, np.inf if reduce is np.minimum else -np.inf, dtype=np.float32)
    reduce.at(out, beam, values)
    return out


@lru_cache(maxsize=8)
def _beams(width: int, height: int, fan: Fan):
    """Beam index of every pixel and the normalised depth along it (0 at the skin)."""
    _, _, r, th, _ = _grid(width, height, 1, fan)
    n_beams = max(32, int(width * 0.9))
    beam = np.clip(
        ((th + fan.half_angle) / (2 * fan.half_angle) * n_beams).astype(np.int32), 0, n_beams - 1
    )
    depth = (np.clip(r - fan.apex, 0, None) / fan.depth).astype(np.float32)
    return beam, n_beams, depth


def _smooth(a: np.ndarray, passes_y: int, passes_x: int) -> np.ndarray:
    """Repeated [1, 2, 1] / 4 smoothing along each axis (a Gaussian of sigma
    sqrt(passes / 2) pixels), edges left as they are: a few slice additions."""
    for axis, passes in ((0, passes_y), (1, passes_x)):
        for _ in range(passes):
            b = a.copy()
            lo = [slice(None)] * 2
            mid = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], mid[axis], hi[axis] = slice(None, -2), slice(1, -1), slice(2, None)
            b[tuple(mid)] = 0.25 * (a[tuple(lo)] + a[tuple(hi)]) + 0.5 * a[tuple(mid)]
            a = b
    return a


def _noise(rng, shape) -> np.ndarray:
    """Zero-mean uniform noise of unit variance (fast; smoothing makes it Gaussian)."""
    raw = np.frombuffer(rng.bytes(shape[0] * shape[1]), dtype=np.uint8).reshape(shape)
    return (raw.astype(np.float32) - np.float32(127.5)) * np.float32(1 / 73.9)


def render_image(
    anatomy, pose, width, height, fan, real: bool, rng
) -> tuple[np.ndarray, np.ndarray]:
    """A B-mode frame (uint8, height x width) and its organ-code map (clipped to the fan)."""
    # Echoes come from the anatomy as it is; only the mask stops at the fan's edge.
    labels, sinus, axes = label_map(
        anatomy, pose, width, height, 1, fan, with_details=True, clip_to_fan=False
    )
    _, _, vx, vy = axes
    _, _, r, _, inside = _grid(width, height, 1, fan)
    beam, n_beams, depth = _beams(width, height, fan)
    echo = (ECHO_REAL if real else ECHO_SIM)[labels]
    tex = _body_field(anatomy["texture"], axes, step=max(1, height // 100))
    echo *= np.exp((TEXTURE_AMP_REAL if real else TEXTURE_AMP_SIM)[labels] * tex)
    if not real:
        echo *= 1.0 + 0.09 * _body_field(anatomy["fine"], axes, step=max(1, height // 200))
    echo[sinus] = (SINUS_REAL if real else SINUS_SIM) * (1 + 0.2 * tex[sinus])
    rows = int(np.searchsorted(vy, anatomy["wall"] + 0.06))  # the wall lies above this row
    top = (slice(0, rows), slice(None))
    V = vx[None, :].astype(np.float32) + vy[:rows, None].astype(np.float32)
    wall = (labels[top] == BG) & (V < anatomy["wall"] + 0.02)
    echo[top][wall] = _wall_profile(anatomy, V[wall], real) * (1 + 0.2 * tex[top][wall])
    # Interfaces between tissues reflect: bright organ outlines.
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge &= labels != BONE
    edge_val = EDGE_REAL if real else EDGE_SIM
    echo[edge] = np.maximum(echo[edge], edge_val * (0.7 + 0.3 * tex[edge] ** 2))

    # Along each beam: a bright bone surface then its shadow; enhancement below fluid.
    gain = np.ones(labels.shape, dtype=np.float32)
    bone = labels == BONE
    if bone.any():
        first = _per_beam(r[bone], beam[bone], n_beams, np.minimum)[beam]
        surface = bone & (r < first + 0.012)
        echo[surface] = BONE_SURFACE_REAL if real else BONE_SURFACE_SIM
        gain[r >= first + 0.012] = 0.1 if real else 0.12
        gain = _smooth(gain, 0, 1)  # the shadow's edge is not a knife's
    fluid = labels == GALLBLADDER
    if fluid.any():
        last = _per_beam(r[fluid], beam[fluid], n_beams, np.maximum)[beam]
        below = np.isfinite(last) & (r > last)
        gain[below] *= 1.0 + 0.6 * np.exp(-(r[below] - last[below]) / 0.12)

    if real:
        # Partly compensated attenuation; multiplicative speckle (Rayleigh amplitude of a
        # spatially correlated complex Gaussian field, grains wider than deep),
        # electronic noise, log compression, the scanner's smoothing.
        amp = echo * gain * (1.0 - 0.45 * depth)
        lateral, axial = (3, 1) if height > 300 else (1, 1)
        re = _smooth(_noise(rng, amp.shape), axial, lateral)
        im = _smooth(_noise(rng, amp.shape), axial, lateral)
        speckle = np.sqrt(re * re + im * im)
        speckle *= 1.0 / speckle.mean()
        floor = 0.012 * np.abs(_noise(rng, amp.shape))
        db = 20 * np.log10(amp * speckle + floor + 1e-4)
        dyn, white = 43.0, 16.0  # displayed dynamic range (dB) and the level shown as white
        img = 0.05 + 0.95 * np.clip((db - white + dyn) / dyn, 0, 1)
        img = _smooth(img, 1, 1)
        img += 0.08 * np.exp(-depth / 0.04)  # near-field haze
    else:
        # Ray-cast simulation: strong attenuation, no log compression, faint noise.
        img = 0.055 + echo * gain * np.exp(-1.1 * depth)
        img *= 1.0 + 0.05 * _noise(rng, img.shape)
        img = _smooth(img, 1, 1)
    out = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8) * inside
    if not real:
        out[-_strip_rows(height) :, :] = PADDING_GREY
    return out, labels * inside


# ----------------------------------------------------------------------------- masks


def _palette_colours(classes) -> np.ndarray:
    """Colour of each internal organ code, looked up by class name."""
    by_name = {c["name"]: tuple(int(v) for v in c["rgb"]) for c in (classes or DEFAULT_CLASSES)}
    missing = [n for n in ORGANS if n not in by_name]
    if missing:
        raise ValueError(
            f"the demo dataset draws {', '.join(ORGANS)}; dataset.classes lacks {', '.join(missing)}. "
            "Add those classes (with their colours) or point data_root at a real dataset."
        )
    return np.array([by_name[n] for n in ORGANS], dtype=np.uint8)


def simulator_mask(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Crisp RGB mask of a simulator frame, with the padding strip in (10,10,10)."""
    rgb = colours[labels]
    rgb[-_strip_rows(labels.shape[0]) :, :] = PADDING_GREY
    return rgb


def real_mask(fine_labels: np.ndarray, ss: int, colours: np.ndarray) -> np.ndarray:
    """RGB mask of a real frame from a supersampled label map, with anti-aliased borders.

    Only the five organs the reference annotates keep their colour. A border pixel
    moves part of the way from its majority colour to the area-averaged one.
    """
    annotated = np.zeros(len(ORGANS), dtype=np.uint8)
    annotated[list(REAL_LABELED)] = REAL_LABELED
    fine = annotated[fine_labels]
    subs = [
        fine[i::ss, j::ss] for i in range(ss) for j in range(ss)
    ]  # the ss*ss samples of each pixel
    rgb = colours[subs[0]].astype(np.float32)
    mixed = np.minimum.reduce(subs) != np.maximum.reduce(subs)
    if mixed.any():
        samples = np.stack([sub[mixed] for sub in subs], axis=1)  # (n border pixels, ss*ss)
        counts = (samples[:, :, None] == np.arange(len(ORGANS), dtype=np.uint8)).sum(1)
        majority = counts.argmax(-1)
        mean_rgb = sum(
            counts[:, k, None] * colours[k].astype(np.float32) for k in range(len(ORGANS))
        ) / (ss * ss)
        major_rgb = colours[majority].astype(np.float32)
        rgb[mixed] = major_rgb + ANTI_ALIAS_STRENGTH * (mean_rgb - major_rgb)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _save_mask(rgb: np.ndarray, path: Path, mode: str, colours: np.ndarray) -> None:
    if mode == "RGBA":
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        img = Image.fromarray(np.concatenate([rgb, alpha], axis=-1), mode="RGBA")
    elif mode == "P":
        # Palette-indexed, one channel: the class colours plus the padding grey.
        table = np.concatenate([colours, np.full((1, 3), PADDING_GREY, dtype=np.uint8)])
        index = np.full(rgb.shape[:2], 255, dtype=np.uint8)
        for i, colour in enumerate(table):
            index[(rgb == colour).all(-1)] = i
        if (index == 255).any():
            raise ValueError(
                "a palette-mode mask may only hold palette colours (simulator masks are crisp)"
            )
        img = Image.fromarray(index, mode="P")
        img.putpalette(table.ravel().tolist())
    else:
        img = Image.fromarray(rgb, mode="RGB")
    img.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def _save_image(grey: np.ndarray, path: Path, real: bool) -> None:
    if real:
        # Scanner exports: RGB JPEG, fixed quality and subsampling, no EXIF.
        Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), mode="RGB").save(
            path,
            format="JPEG",
            quality=JPEG_QUALITY,
            subsampling=2,
            optimize=False,
            progressive=False,
        )
    else:
        Image.fromarray(grey, mode="L").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


# ----------------------------------------------------------------------------- plan and run


@dataclass(frozen=True)
class FrameTask:
    modality: str
    split: str  # train | test
    subject: str
    frame: int
    n_frames: int
    left_view: bool
    image: bool  # write the image
    mask: str | None  # None, or the mask file mode: RGB | RGBA | P
    tinted: bool = False


def plan(size: str) -> list[FrameTask]:
    """Every file of the dataset as a task, in a fixed order."""
    spec = SIZES[size]
    tasks = []
    for split, counts in (("train", spec.aus_train), ("test", spec.aus_test)):
        first = 1 if split == "train" else AUS_TEST_FIRST_ID
        for i, n in enumerate(counts):
            subject = f"ct{first + i}"
            mode = AUS_MASK_MODES.get((split, i), "RGB")
            for k in range(1, n + 1):
                tasks.append(
                    FrameTask("AUS", split, subject, k, n, (split, i) in AUS_LEFT_VIEW, True, mode)
                )
    for subject, n in zip(RUS_TRAIN_SUBJECTS, spec.rus_train):
        for k in range(1, n + 1):
            tasks.append(
                FrameTask("RUS", "train", subject, k, n, subject in RUS_LEFT_VIEW, True, None)
            )
    for subject, n_lab in spec.rus_test_labeled.items():
        n = n_lab + spec.rus_test_unlabeled[subject]
        labeled = _labeled_frames(n, n_lab)
        mode = RUS_MASK_MODES.get(subject, "RGB")
        for k in range(1, n + 1):
            has = k in labeled
            tasks.append(
                FrameTask(
                    "RUS",
                    "test",
                    subject,
                    k,
                    n,
                    subject in RUS_LEFT_VIEW,
                    True,
                    mode if has else None,
                    tinted=has and subject == TINTED_SUBJECT and k == min(labeled),
                )
            )
        if subject == ORPHAN_SUBJECT:
            # An annotation whose image is missing from the download.
            tasks.append(
                FrameTask("RUS", "test", subject, n + 1, n, subject in RUS_LEFT_VIEW, False, "RGB")
            )
    return tasks


def _labeled_frames(n: int, n_labeled: int) -> set[int]:
    """Annotated frames of a real test subject: spread evenly over its recording."""
    if n_labeled >= n:
        return set(range(1, n + 1))
    if n_labeled == 1:
        return {1 + (n - 1) // 2}
    return {round(1 + i * (n - 1) / (n_labeled - 1)) for i in range(n_labeled)}


def frame_labels(task: FrameTask, size: str, seed: int) -> np.ndarray:
    """Organ codes (indices into ORGANS) of a task's frame, without drawing the image."""
    spec = SIZES[size]
    anatomy = _anatomy(seed, task.modality, task.subject, task.left_view)
    pose = frame_pose(anatomy, seed, task.modality, task.subject, task.frame, task.n_frames)
    return label_map(anatomy, pose, spec.width, spec.height, 1, _fan(task.modality, spec.height))


def _render_task(args) -> dict:
    task, root, size, seed, colours = args
    spec = SIZES[size]
    real = task.modality == "RUS"
    fan = _fan(task.modality, spec.height)
    anatomy = _anatomy(seed, task.modality, task.subject, task.left_view)
    pose = frame_pose(anatomy, seed, task.modality, task.subject, task.frame, task.n_frames)
    stem = (
        f"{task.subject}-{task.frame}" if task.modality == "AUS" else f"{task.subject}{task.frame}"
    )
    base = Path(root) / task.modality
    result = {
        "modality": task.modality,
        "split": task.split,
        "subject": task.subject,
        "stem": stem,
        "image": task.image,
        "mask": task.mask,
    }
    labels = None
    if task.image:
        rng = _rng(seed, task.modality, task.subject, task.frame, "pixels")
        grey, labels = render_image(anatomy, pose, spec.width, spec.height, fan, real, rng)
        ext = ".jpg" if real else ".png"
        _save_image(grey, base / "images" / task.split / f"{stem}{ext}", real)
    if task.mask:
        if real:
            fine = label_map(anatomy, pose, spec.width, spec.height, MASK_SUPERSAMPLING, fan)
            rgb = real_mask(fine, MASK_SUPERSAMPLING, colours)
            if task.tinted:
                rgb[(rgb == 0).all(-1)] = TINT_RGB
            present = _present(fine, REAL_LABELED)
        else:
            rgb = simulator_mask(labels, colours)
            present = _present(labels, range(1, len(ORGANS)))
        _save_mask(rgb, base / "annotations" / task.split / f"{stem}.png", task.mask, colours)
        result["classes"] = present
    return result


def _present(labels: np.ndarray, codes) -> list[str]:
    found = np.bincount(labels.ravel(), minlength=len(ORGANS)) > 0
    return sorted(ORGANS[k] for k in codes if found[k])


@lru_cache(maxsize=64)
def _anatomy(seed: int, modality: str, subject: str, left_view: bool) -> dict:
    return subject_anatomy(seed, modality, subject, left_view)


def generate_demo_dataset(
    out_dir, size: str = "small", seed: int = 0, classes=None, workers: int | None = None
) -> dict:
    """Write the demo dataset to `out_dir`/abdominal_US (replacing what is there) and return a summary.

    `classes` is config.yaml's dataset.classes (None: the reference palette); colours
    are looked up by class name. `workers`: processes to draw with (default: up to 2,
    one for the tiny size); the files are the same for any number.
    """
    if size not in SIZES:
        raise ValueError(f"demo size {size!r} is not one of {', '.join(SIZES)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"demo seed must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    colours = _palette_colours(classes)
    root = Path(out_dir) / "abdominal_US"
    if root.exists():
        shutil.rmtree(root)
    for modality, split, kind in (
        ("AUS", "train", "images"),
        ("AUS", "test", "images"),
        ("AUS", "train", "annotations"),
        ("AUS", "test", "annotations"),
        ("RUS", "train", "images"),
        ("RUS", "test", "images"),
        ("RUS", "test", "annotations"),
    ):
        (root / modality / kind / split).mkdir(parents=True, exist_ok=True)

    tasks = plan(size)
    jobs = [(t, str(root), size, seed, colours) for t in tasks]
    if workers is None:
        workers = 1 if size == "tiny" else min(2, os.cpu_count() or 1)
    # Forked workers: spawn would re-run the caller's main module (a Snakemake script).
    # Each file depends on its task alone, so the number of workers does not change a byte.
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_render_task, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
    else:
        results = [_render_task(j) for j in jobs]
    return _summary(results, size, seed, root)


def _summary(results, size, seed, root) -> dict:
    spec = SIZES[size]
    counts: dict = {}
    subjects: dict = {}
    class_frames: dict = {"AUS": {}, "RUS": {}}
    for r in results:
        mod = counts.setdefault(r["modality"], {})
        if r["image"]:
            key = f"images/{r['split']}"
            mod[key] = mod.get(key, 0) + 1
            subjects.setdefault(r["modality"], {}).setdefault(r["split"], [])
            if r["subject"] not in subjects[r["modality"]][r["split"]]:
                subjects[r["modality"]][r["split"]].append(r["subject"])
        if r["mask"]:
            key = f"annotations/{r['split']}"
            mod[key] = mod.get(key, 0) + 1
            if r["image"]:
                for c in r["classes"]:
                    class_frames[r["modality"]][c] = class_frames[r["modality"]].get(c, 0) + 1
    orphans = [
        f"RUS/annotations/{r['split']}/{r['stem']}.png"
        for r in results
        if r["mask"] and not r["image"]
    ]
    return {
        "root": str(root),
        "size": size,
        "seed": seed,
        "image_size": {"width": spec.width, "height": spec.height},
        "counts": counts,
        "subjects": subjects,
        "labeled_real_frames": {s: n for s, n in spec.rus_test_labeled.items()},
        "orphan_annotations": orphans,
        "labeled_frames_with_class": class_frames,
        "n_images": sum(1 for r in results if r["image"]),
        "n_masks": sum(1 for r in results if r["mask"]),
    }
