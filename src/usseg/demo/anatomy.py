"""The demo's anatomy: organ codes, per-subject organ shapes and per-frame poses.

Everything random comes from `_rng(seed, ...)`, so a subject's anatomy and a
frame's pose depend only on (seed, modality, subject, frame).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

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
# The real test subject whose one annotation lacks its image (usseg.demo.plan); its
# anatomy always has a gallbladder (subject_anatomy).
ORPHAN_SUBJECT = "h"

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

OUTLINE_SAMPLES = 512  # angular resolution of organ outlines


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


