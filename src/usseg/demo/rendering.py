"""Drawing a B-mode frame: the sector field of view, organ label maps and echoes.

The simulator look (dark, clean) and the scanner look (speckle, log
compression, blur) differ here; that difference is the domain gap the
diagnostics measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from usseg.demo.anatomy import BG, BONE, GALLBLADDER, KIDNEY, OUTLINE_SAMPLES

PADDING_GREY = 10  # simulator padding strip: grey 10 in the image, (10,10,10) in the mask

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


