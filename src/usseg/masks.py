"""Decode colour-coded masks into label arrays, and say how far each mask strays from the palette.

Two decodes (`dataset.decode`):

- ``nearest``, the article's: a pixel gets the index of the nearest palette
  colour (squared RGB distance, ties to the lower index). On anti-aliased
  borders this invents classes: liver (100,0,100) lies on the line from
  black to spleen (255,0,255), so every blended spleen border becomes a thin
  ring of "liver".
- ``aa_aware`` (default): an exact palette pixel keeps its class; any other
  pixel is explained as a blend of two classes that are really present
  around it (palette pixels within `blend_window`) and takes the nearer end
  of that blend; a pixel no such blend explains falls back to the nearest
  colour. Away from class borders both decodes agree. See `decode_mask_aa`.

A pixel is *off-palette* (counted in `far_fraction`, the share that flags a
mask) when it is farther than `off_palette_distance` from every palette
colour and, under aa_aware, from every blend of the palette colours around
it: painted foreign colours and wrong palettes, not anti-aliasing.
`off_palette_fraction` counts every pixel that is not exactly a palette
colour (blended borders included).

Single-channel masks may instead store class indices (`dataset.mask_encoding`).

Both decodes start from the nearest colour. Brute force compares every pixel with every palette colour;
here each distinct colour is decided once: RGB is packed into a 24-bit code
and looked up in a per-palette table filled lazily, because a mask usually holds a
few hundred distinct colours while it has ~200,000 pixels. Pixels go in chunks,
so temporaries stay small whatever the mask size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from usseg.config import class_names
from usseg.config import palette as config_palette
from usseg.contracts import DECODE_REPORT_COLUMNS
from usseg.errors import DataError
from usseg.images import WIDE_MODES, oriented, wide_to_uint8
from usseg.manifest import find_dataset_root, parse_bool, read_manifest
from usseg.palette_decode import check_palette as _check_palette
from usseg.palette_decode import check_rgb as _check_rgb
from usseg.palette_decode import colour_codes as _codes
from usseg.palette_decode import decode_mask, decode_mask_with_distance  # noqa: F401 (callers import it from here)
from usseg.palette_decode import decode_with_d2 as _decode_with_d2

REPORT_COLUMNS = DECODE_REPORT_COLUMNS

# ----------------------------------------------------------------------------- anti-aliasing-aware decode

DECODES = ("aa_aware", "nearest")
ENCODINGS = ("auto", "palette", "index")
# Two blends explain a pixel equally well when their distances differ by less than this
# (RGB units: the rounding of a blend to integers); the more local one then wins.
_TIE_DISTANCE = 2.0
# Side of the square in which classes on the palette "touch" a pixel: a blended border
# is one or two pixels wide, so both its classes lie within two pixels.
_TOUCH_WINDOW = 5


@dataclass
class Decoded:
    """One decoded mask."""

    labels: np.ndarray  # (H, W) uint8 class index
    nearest_labels: np.ndarray  # (H, W) uint8: the article's nearest-colour decode, for comparison
    d2: np.ndarray  # (H, W) uint32 squared distance to the nearest palette colour
    suspicious: np.ndarray  # (H, W) bool: neither a palette colour nor a blend of the palette colours around it

    @property
    def max_distance(self) -> float:
        """Largest Euclidean distance of a pixel to its nearest palette colour."""
        return float(np.sqrt(self.d2.max())) if self.d2.size else 0.0


def _bit_dtype(n_classes: int):
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n_classes <= np.iinfo(dtype).bits:
            return dtype
    raise ValueError(
        f"the anti-aliasing-aware decode supports at most 64 classes, the palette has {n_classes}; "
        "set dataset.decode: nearest."
    )


def _solid(anchor: np.ndarray) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood (inside the image) has their anchor class (255 = none).

    A blend that happens to land on a palette colour (black to spleen passes
    exactly through liver) makes at most a thin line; requiring a 3x3 block
    keeps such lines from counting as a class that is present.
    """
    same = anchor != 255
    row = same.copy()  # the pixel and its left and right neighbours agree
    row[:, 1:] &= anchor[:, 1:] == anchor[:, :-1]
    row[:, :-1] &= anchor[:, :-1] == anchor[:, 1:]
    out = row.copy()
    out[1:] &= row[:-1] & (anchor[1:] == anchor[:-1])
    out[:-1] &= row[1:] & (anchor[:-1] == anchor[1:])
    return out


def _or_along(a: np.ndarray, window: int, axis: int) -> np.ndarray:
    """out[i] = OR of a[i - r .. i + r] along `axis` (r = window // 2), clipped at the edges.

    By doubling: the OR over w pixels is built from the OR over w/2, so a
    7-pixel window takes 3 shifted ORs, not 6. Slices keep the array's
    memory order (a transposed pass would be 3x slower).
    """

    def cut(sl):
        return (slice(None), sl) if axis else (sl,)

    r = window // 2
    n = a.shape[axis]
    fwd = a.copy()  # becomes fwd[i] = OR a[i .. i + window - 1]
    width = 1
    while width < window:
        step = min(width, window - width)
        fwd[cut(slice(None, -step))] |= fwd[cut(slice(step, None))]
        width += step
    out = np.empty_like(a)
    out[cut(slice(r, None))] = fwd[cut(slice(None, max(n - r, 0)))]
    # The first r windows are cut by the edge: out[i] = OR a[0 .. i + r].
    prefix = np.bitwise_or.accumulate(a[cut(slice(None, 2 * r))], axis=axis)
    take = np.minimum(np.arange(min(r, n)) + r, prefix.shape[axis] - 1)
    out[cut(slice(None, r))] = np.take(prefix, take, axis=axis)
    return out


def _widen_rows(rows_or: np.ndarray, by: int) -> np.ndarray:
    """A row-wise window OR widened by `by` pixels on each side (a 5-window to a 7-window)."""
    out = rows_or.copy()
    for s in range(1, by + 1):
        out[:, s:] |= rows_or[:, :-s]
        out[:, :-s] |= rows_or[:, s:]
    return out


def _columns_or(rows_or: np.ndarray, flat: np.ndarray, window: int) -> np.ndarray:
    """At the flat indices `flat` of a 2-D array, the OR over `window` rows (centred,
    clipped at the edges): the second half of a window OR, for a few pixels only."""
    height, width = rows_or.shape
    r = window // 2
    padded = np.zeros((height + 2 * r, width), dtype=rows_or.dtype)  # zero rows: the clipping
    padded[r : r + height] = rows_or
    flat_padded = padded.reshape(-1)
    out = np.zeros(len(flat), dtype=rows_or.dtype)
    for dy in range(window):  # row y + dy - r of the image is row y + dy of `padded`
        out |= flat_padded[flat + dy * width]
    return out


def _near_neighbours(nearest, d2, ys, xs, limit2: float, bit_t) -> np.ndarray:
    """Per pixel (ys, xs), a bit set of the nearest classes of its 8 neighbours that lie
    within sqrt(limit2) of the palette. Sparse: only for the few pixels asked about."""
    height, width = nearest.shape
    # Padded by one pixel of "not near" so that no neighbour index leaves the arrays.
    near = np.zeros((height + 2, width + 2), dtype=bool)
    near[1:-1, 1:-1] = d2 <= limit2
    classes = np.zeros((height + 2, width + 2), dtype=np.uint8)
    classes[1:-1, 1:-1] = nearest
    centre = (ys + 1) * (width + 2) + xs + 1
    near, classes = near.reshape(-1), classes.reshape(-1)
    out = np.zeros(len(ys), dtype=bit_t)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                at = centre + dy * (width + 2) + dx
                out |= np.left_shift(bit_t(1), classes[at], dtype=bit_t) * near[at]
    return out


def _blend_geometry(colours: np.ndarray, pal: np.ndarray, pairs: np.ndarray):
    """Distance of each colour to each segment pal[a]-pal[b], and where along it (t in [0, 1]) it lies."""
    a = pal[pairs[:, 0]].astype(np.float32)
    ab = pal[pairs[:, 1]].astype(np.float32) - a
    length2 = (ab**2).sum(-1)
    rel = colours[:, None, :].astype(np.float32) - a[None]
    t = (rel * ab[None]).sum(-1) / np.where(length2 > 0, length2, 1)[None]
    t = np.clip(t, 0, 1)
    dist = np.sqrt(((rel - t[..., None] * ab[None]) ** 2).sum(-1))
    return dist, t, np.sqrt(length2)


def decode_mask_aa(
    rgb: np.ndarray,
    palette: np.ndarray,
    window: int = 7,
    tolerance: float = 20.0,
    max_distance: float = 60.0,
) -> Decoded:
    """Anti-aliasing-aware decode of an (H, W, 3) uint8 colour mask (see the module docstring).

    A class is *present around* a pixel when a pixel exactly on its colour,
    or a solid 3x3 block of pixels within `tolerance` of it, lies in the
    `window` x `window` neighbourhood. A pixel that is not exactly a palette
    colour (and not inside such a solid block) is matched to the segments
    between pairs of present classes (a pair may be one class twice: a
    slightly off colour); the closest segment wins; among segments within
    2 RGB units of the closest, the one with more ends present within 5x5,
    then the shorter one (the more local blend); the pixel takes the nearer
    end (ties to the lower index). If no segment is within `max_distance`,
    the classes of the pixels within half that distance of the palette right
    next to it (3x3) are added and the match is tried again; failing that,
    the pixel keeps its nearest colour. It is suspicious (off-palette) when
    it is farther than `max_distance` from every segment between the present
    classes and its own nearest class.
    """
    arr = _check_rgb(rgb)
    pal = _check_palette(palette)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"blend window must be an odd number of pixels >= 1, got {window}.")
    if not 0 <= tolerance <= max_distance:
        raise ValueError(
            f"palette tolerance {tolerance} must lie between 0 and the off-palette distance {max_distance}."
        )
    nearest, d2 = _decode_with_d2(arr, pal)
    labels = nearest.copy()
    suspicious = np.zeros(nearest.shape, dtype=bool)
    off = d2 != 0
    rows, cols = np.flatnonzero(off.any(axis=1)), np.flatnonzero(off.any(axis=0))
    if rows.size == 0:
        return Decoded(labels, nearest, d2, suspicious)

    # Only the box around the off-palette pixels matters: crop before the full-image passes.
    margin = window // 2 + 1  # the window, and the 3x3 block that makes an anchor solid
    height, width = nearest.shape
    y0, y1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, height)
    x0, x1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, width)
    box = (slice(y0, y1), slice(x0, x1))
    near_c, loose = nearest[box], d2[box] > tolerance**2
    # Class, or 255 where farther than the tolerance: an OR with 0 or 255 (10x faster than where).
    anchor = near_c | (loose.view(np.uint8) * np.uint8(255))
    bit_t = _bit_dtype(len(pal))
    one = bit_t(1)
    solid = _solid(anchor)
    lut = np.zeros(256, dtype=bit_t)  # class -> its bit; 255 -> none
    lut[: len(pal)] = np.left_shift(one, np.arange(len(pal), dtype=bit_t))
    keep = solid | (d2[box] == 0)
    bits = np.take(lut, near_c | ((~keep).view(np.uint8) * np.uint8(255)))
    # A near-palette pixel inside a solid block of its class (a tinted background, a padding
    # strip, noise) keeps that class; only the rest need the blend geometry.
    todo = np.flatnonzero(off[box] & ~solid)
    if todo.size == 0:
        return Decoded(labels, nearest, d2, suspicious)
    # Classes on the palette close to the pixel (touching: 5x5): among equally good blends,
    # the one between touching classes is the local one (real liver three pixels away must
    # not claim the black-spleen border that only passes through its colour). Both windows
    # are ORed along rows over the whole box, then down columns at the few pixels to do.
    touch_window = min(_TOUCH_WINDOW, window)
    rows_touch = _or_along(bits, touch_window, 1)
    touching = _columns_or(rows_touch, todo, touch_window)
    around = _columns_or(_widen_rows(rows_touch, (window - touch_window) // 2), todo, window)
    own_bit = np.left_shift(one, near_c.reshape(-1)[todo], dtype=bit_t)
    ty, tx = np.divmod(todo, x1 - x0)
    ty, tx = ty + y0, tx + x0  # image coordinates

    # Every class a pixel may take: on the palette somewhere, or some pixel's nearest colour
    # (the fallback's near-palette neighbours below are one or the other).
    present_bits = int(np.bitwise_or.reduce(bits, axis=None)) | int(
        np.bitwise_or.reduce(own_bit, axis=None)
    )
    classes = np.array([k for k in range(len(pal)) if present_bits >> k & 1], dtype=np.intp)
    ii, jj = np.triu_indices(len(classes))
    pairs = np.stack([classes[ii], classes[jj]], axis=1)
    pair_bits = (one << pairs[:, 0].astype(bit_t)) | (one << pairs[:, 1].astype(bit_t))

    uniq, inverse = np.unique(_codes(arr[ty, tx]).astype(np.uint32), return_inverse=True)
    colours = np.stack([uniq & 0xFF, (uniq >> 8) & 0xFF, uniq >> 16], axis=1)
    dist_u, t_u, length = _blend_geometry(colours, pal, pairs)
    # Pairs along the first axis: numpy reduces over a short last axis 20x slower.
    dist = np.ascontiguousarray(dist_u.T)[:, inverse]  # (pairs, pixels to do)
    t_u = np.ascontiguousarray(t_u.T)
    col = (slice(None), None)  # a per-pair vector against (pairs, pixels)

    # Suspicious: not near a blend of the classes around it, its own nearest class included.
    allowed = ((around | own_bit)[None] & pair_bits[col]) == pair_bits[col]
    suspicious[ty, tx] = np.where(allowed, dist, np.inf).min(axis=0) > max_distance

    # Labels: the best blend of classes really present around the pixel. Among blends about
    # as close, most ends on the palette close to the pixel, then the shortest segment, then
    # the first pair: one key (exact in float32: below 2**24) whose minimum says all three.
    ends_a, ends_b = (one << pairs[:, 0].astype(bit_t)), (one << pairs[:, 1].astype(bit_t))
    touch = ((touching[None] & ends_a[col]) != 0).astype(np.float32) + (
        (touching[None] & ends_b[col]) != 0
    )
    n_pairs = len(pairs)
    key = (np.rint(length)[col] + 1000.0 * (2 - touch)) * n_pairs + np.arange(n_pairs)[col]

    def choose(rows, candidates):
        present = (candidates[None] & pair_bits[col]) == pair_bits[col]
        masked = np.where(present, dist[:, rows], np.inf)
        best = masked.min(axis=0)
        near_best = masked <= best + _TIE_DISTANCE
        smallest = np.where(near_best, key[:, rows], np.inf).min(axis=0)
        choice = np.where(np.isfinite(smallest), smallest, 0).astype(np.int64) % n_pairs
        return best, choice

    best, choice = choose(slice(None), around)
    # No blend of solid classes fits (a thin structure, a three-class corner): look at the
    # classes of the near-palette pixels right next to it too, before the nearest colour.
    unfit = np.flatnonzero(best > max_distance)
    if unfit.size:
        next_to = _near_neighbours(nearest, d2, ty[unfit], tx[unfit], (max_distance / 2) ** 2, bit_t)
        best[unfit], choice[unfit] = choose(unfit, around[unfit] | next_to)
    pix = np.flatnonzero(best <= max_distance)
    chosen = choice[pix]
    t = t_u[chosen, inverse[pix]]
    ends = pairs[chosen]
    labels[ty[pix], tx[pix]] = np.where(t <= 0.5, ends[:, 0], ends[:, 1])
    return Decoded(labels, nearest, d2, suspicious)


SINGLE_CHANNEL_MODES = ("L", "LA") + WIDE_MODES  # masks that may store class indices


def read_mask(path) -> np.ndarray:
    """A mask file as stored, EXIF orientation applied: (H, W) integers for a single-channel
    (greyscale, 16-bit) mask, (H, W, 3) uint8 RGB for any other mode (RGB, RGBA, P, 1)."""
    with Image.open(path) as im:
        im = oriented(im)
        if im.mode in SINGLE_CHANNEL_MODES:
            arr = np.asarray(im.getchannel(0) if im.mode == "LA" else im)
            return arr if arr.dtype == np.uint8 else arr.astype(np.int64)
        return np.asarray(im.convert("RGB"))


def load_mask_rgb(path) -> np.ndarray:
    """A mask file as an (H, W, 3) uint8 RGB array, whatever its mode (RGBA, P, L, ...), oriented.

    16-bit single-channel masks are rescaled like images (usseg.images).
    """
    arr = read_mask(path)
    if arr.ndim == 2:
        grey = arr if arr.dtype == np.uint8 else wide_to_uint8(arr, path)
        return np.repeat(grey[..., None], 3, axis=2)
    return arr


@dataclass
class MaskReading:
    """How one mask file was read: labels, the encoding used, and the decode's numbers."""

    labels: np.ndarray
    encoding: str  # "palette" or "index"
    usable: bool
    problem: str  # why the mask fits no encoding ("" when usable)
    stats: dict


def _palette_reading(rgb, pal, names, cfg) -> MaskReading:
    limit = float(cfg.get("off_palette_distance", 60))
    decode = cfg.get("decode", "aa_aware")
    if decode not in DECODES:
        raise DataError(f"dataset.decode = {decode!r}; use one of {', '.join(DECODES)}.")
    if decode == "nearest":
        labels, d2 = decode_mask_with_distance(rgb, pal)
        stats = _mask_stats(labels, d2 > limit**2, names)
        stats["max_distance"] = float(np.sqrt(d2.max())) if d2.size else 0.0
        stats["off_palette_fraction"] = float(np.count_nonzero(d2)) / max(d2.size, 1)
        stats["relabelled_fraction"] = 0.0
        return MaskReading(labels, "palette", True, "", stats)
    res = decode_mask_aa(
        rgb,
        pal,
        window=int(cfg.get("blend_window", 7)),
        tolerance=float(cfg.get("palette_tolerance", 20)),
        max_distance=limit,
    )
    stats = _mask_stats(res.labels, res.suspicious, names)
    stats["max_distance"] = res.max_distance
    stats["off_palette_fraction"] = float(np.count_nonzero(res.d2)) / max(res.d2.size, 1)
    stats["relabelled_fraction"] = float(np.count_nonzero(res.labels != res.nearest_labels)) / max(
        res.labels.size, 1
    )
    return MaskReading(res.labels, "palette", True, "", stats)


def read_labels(arr: np.ndarray, pal: np.ndarray, names: list[str], cfg: dict, where: str) -> MaskReading:
    """Labels of a mask array from `read_mask`, by dataset.mask_encoding (auto | palette | index).

    auto: a single-channel mask whose values are all class indices (0 .. n_classes - 1) is read
    as indices; everything else by colour. A mask that fits no allowed reading comes back
    with usable False and a problem that names `where` (the file).
    """
    encoding = cfg.get("mask_encoding", "auto")
    if encoding not in ENCODINGS:
        raise DataError(f"dataset.mask_encoding = {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    k = len(pal)
    single = arr.ndim == 2
    top = int(arr.max()) if single and arr.size else 0
    if single and top < k and encoding in ("auto", "index"):
        labels = arr.astype(np.uint8)
        stats = _mask_stats(labels, np.zeros(labels.shape, dtype=bool), names)
        stats.update(off_palette_fraction=0.0, max_distance=0.0, relabelled_fraction=0.0)
        return MaskReading(labels, "index", True, "", stats)
    if single and top > 255:
        problem = (
            f"{where} is a single-channel mask with values up to {top}: not class indices (0..{k - 1}) and "
            "not 8-bit colours. Re-export it as class indices or as a colour mask in the palette of dataset.classes."
        )
        labels = np.where(arr < k, arr, 0).astype(np.uint8)
        stats = _mask_stats(labels, np.ones(labels.shape, dtype=bool), names)
        stats.update(off_palette_fraction=1.0, max_distance=0.0, relabelled_fraction=0.0)
        return MaskReading(labels, "none", False, problem, stats)
    rgb = np.repeat(arr[..., None], 3, axis=2).astype(np.uint8) if single else arr
    reading = _palette_reading(rgb, pal, names, cfg)
    if encoding == "index":
        values = f"values up to {top}" if single else "three colour channels"
        reading.usable, reading.encoding = False, "none"
        reading.problem = (
            f"{where} has {values}, but dataset.mask_encoding is index (class numbers 0..{k - 1} in one "
            "channel). Set dataset.mask_encoding to auto or palette, or re-export the mask as class indices."
        )
    return reading


def _mask_stats(labels: np.ndarray, suspicious: np.ndarray, names: list[str]) -> dict:
    n = max(labels.size, 1)
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(names)))
    return {
        "far_fraction": float(np.count_nonzero(suspicious)) / n,
        "classes_present": ";".join(names[i] for i in present),
    }


def decode_masks(
    manifest_csv, dataset_root, dataset_cfg: dict, out_dir, strict: bool = False
) -> pd.DataFrame:
    """Write out_dir/{image_id}.npy for every manifest row with a mask, and out_dir/decode_report.csv.

    `dataset_root` is the folder the manifest paths are relative to (the one
    holding the modality folders); a folder above it is accepted too. A mask
    with too many suspicious pixels, or one that fits no encoding (then
    `usable` is false), is still written but flagged; under `strict` a
    flagged mask raises DataError after the report is written.
    """
    manifest = read_manifest(manifest_csv)
    root = find_dataset_root(dataset_root, dataset_cfg["modalities"])
    pal = config_palette(dataset_cfg)
    names = class_names(dataset_cfg)
    limit_distance = float(dataset_cfg.get("off_palette_distance", 60))
    limit_fraction = float(dataset_cfg.get("max_off_palette_fraction", 0.01))
    decode = dataset_cfg.get("decode", "aa_aware")
    tolerance = float(dataset_cfg.get("palette_tolerance", 20))
    if decode == "aa_aware" and tolerance > limit_distance:
        raise DataError(
            f"dataset.palette_tolerance ({tolerance:g}) is larger than dataset.off_palette_distance "
            f"({limit_distance:g}); a colour that shows a class is present must count as on the palette. "
            "Lower palette_tolerance or raise off_palette_distance in config.yaml."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for row in manifest[manifest["has_mask"]].sort_values("image_id").itertuples(index=False):
        path = root / row.mask_path
        try:
            arr = read_mask(path)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read mask {path} of {row.image_id} ({exc}); it was readable when {manifest_csv} was built. "
                "Restore the file or re-run the manifest step."
            ) from None
        if arr.shape[:2] != (row.height, row.width):
            raise DataError(
                f"mask {path} is {arr.shape[1]}x{arr.shape[0]} but {manifest_csv} says its image is "
                f"{row.width}x{row.height}; the file changed after the manifest was built. Re-run the manifest step."
            )
        reading = read_labels(arr, pal, names, dataset_cfg, row.mask_path)
        np.save(out_dir / f"{row.image_id}.npy", reading.labels)
        stats = reading.stats
        flagged = not reading.usable or stats["far_fraction"] > limit_fraction
        reason = reading.problem
        if flagged and not reason:
            blends = "" if decode == "nearest" else " and from every blend of the palette colours around them"
            reason = (
                f"{stats['far_fraction']:.2%} of the pixels of {row.mask_path} are off-palette: farther than "
                f"{limit_distance:g} from every palette colour{blends} (limit {limit_fraction:.2%}, largest distance "
                f"from the palette {stats['max_distance']:.1f}); the mask may use another palette, have painted "
                "foreign colours or be corrupt. Check it, or adjust dataset.classes / "
                "dataset.max_off_palette_fraction in config.yaml."
            )
        rows.append(
            {
                "image_id": row.image_id,
                "mask_path": row.mask_path,
                **stats,
                "flagged": flagged,
                "flag_reason": reason,
                "encoding": reading.encoding,
                "decode": decode if reading.encoding == "palette" else "",
                "usable": reading.usable,
            }
        )

    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report["flagged"] = report["flagged"].astype(bool)
    report["usable"] = report["usable"].astype(bool)
    report.to_csv(out_dir / "decode_report.csv", index=False)
    if strict and report["flagged"].any():
        bad = report[report["flagged"]]
        raise DataError(
            f"strict mode: {len(bad)} mask(s) are flagged in {out_dir / 'decode_report.csv'}: "
            + "; ".join(bad["flag_reason"].head(10))
            + (f"; ... and {len(bad) - 10} more" if len(bad) > 10 else "")
            + " Fix these masks or set strict: false to train without them."
        )
    return report


def read_decode_report(report_csv) -> pd.DataFrame:
    """Read decode_report.csv back with its intended types."""
    df = pd.read_csv(
        report_csv,
        dtype={
            "image_id": str,
            "mask_path": str,
            "classes_present": str,
            "flag_reason": str,
            "encoding": str,
            "decode": str,
        },
        keep_default_na=False,
    )
    missing = [c for c in REPORT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{report_csv} lacks the column(s) {', '.join(missing)}; delete it and re-run the decode_masks step."
        )
    df["flagged"] = df["flagged"].map(parse_bool)
    df["usable"] = df["usable"].map(parse_bool)
    return df
