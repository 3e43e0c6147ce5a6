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

After that one lookup per pixel, aa_aware touches only the pixels that are not
exactly a palette colour (a few thousand) and the small squares around them,
gathered through flat offsets into a padded copy of the labels, never a pass
per class over the image; the blend geometry is computed once per distinct
colour and the choice once per distinct (colour, classes around) case.
`tests/test_masks_aa_same.py` holds it to a frozen dense version
(`tests/aa_reference.py`) pixel for pixel.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from usseg.contracts import DECODE_REPORT_COLUMNS, read_manifest
from usseg.dataset_root import dataset_file
from usseg.dataset_spec import DatasetSpec
from usseg.errors import DataError
from usseg.images import WIDE_MODES, downsample_nearest, oriented, reading_rule, wide_to_uint8
from usseg.manifest import find_dataset_root

# decode_mask is imported from here by callers; the aa_aware decode builds on the rest.
from usseg.palette_decode import (  # noqa: F401
    _CHUNK_AA,
    _check_palette,
    _check_rgb,
    _codes,
    _decode_with_d2,
    _nearest,
    decode_mask,
    decode_mask_with_distance,
)

REPORT_COLUMNS = DECODE_REPORT_COLUMNS

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


def _padded(a: np.ndarray, pad: int, fill=None) -> np.ndarray:
    """`a` (H, W) inside a border of `pad` pixels: `fill`, or (fill None, pad 1) its edge
    pixels repeated. Neighbours are then plain offsets of a flat index, with no test for
    the edge: a constant border adds nothing to an OR, a repeated edge pixel agrees with
    the pixel it repeats."""
    height, width = a.shape
    out = np.empty((height + 2 * pad, width + 2 * pad), dtype=a.dtype)
    out[pad : pad + height, pad : pad + width] = a
    if fill is not None:
        out[:pad], out[pad + height :] = fill, fill
        out[:, :pad], out[:, pad + width :] = fill, fill
    else:
        out[0, 1:-1], out[-1, 1:-1] = a[0], a[-1]
        out[:, 0], out[:, -1] = out[:, 1], out[:, -2]
    return out


def _in_padded(flat: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Flat indices of pixels `flat` of an image of `width` in the same image padded by `pad`."""
    return flat + (pad * (width + 2 * pad) + pad) + (2 * pad) * (flat // width)


@functools.lru_cache(maxsize=64)
def _square_offsets(width: int, pad: int, side: int) -> np.ndarray:
    """(side * side, 1) flat offsets of a side x side square, row by row, in an image of
    `width` padded by `pad`."""
    step = np.arange(-(side // 2), side // 2 + 1)
    out = (step[:, None] * (width + 2 * pad) + step[None, :]).reshape(-1, 1)
    out.flags.writeable = False
    return out


def _square(flat: np.ndarray, width: int, pad: int, side: int) -> np.ndarray:
    """(side * side, n) flat indices, in an image of `width` padded by `pad` (>= side // 2),
    of the side x side square around each pixel `flat` of the unpadded image, row by row:
    one gather per square instead of a pass over the whole image."""
    return _in_padded(flat, width, pad)[None, :] + _square_offsets(width, pad, side)


def _near_neighbours(nearest, d2, flat, limit2: float, lut) -> np.ndarray:
    """Per pixel `flat`, a bit set of the nearest classes of its 8 neighbours (inside the
    image) that lie within sqrt(limit2) of the palette."""
    height, width = nearest.shape
    ys, xs = np.divmod(flat, width)
    dy = np.array([-1, -1, -1, 0, 0, 1, 1, 1])[:, None]
    dx = np.array([-1, 0, 1, -1, 1, -1, 0, 1])[:, None]
    yy, xx = ys[None] + dy, xs[None] + dx
    inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
    at = np.where(inside, yy * width + xx, 0)
    near = inside & (d2.reshape(-1)[at] <= limit2)
    return np.bitwise_or.reduce(lut[nearest.reshape(-1)[at]] * near, axis=0)


@functools.lru_cache(maxsize=64)
def _pair_index(n: int) -> np.ndarray:
    """(pairs, 2) indices (i, j), i <= j < n, in row order: np.triu_indices, kept (it costs
    more than the rest of a small decode step)."""
    ii, jj = np.triu_indices(n)
    out = np.stack([ii, jj], axis=1)
    out.flags.writeable = False
    return out


def _cases(codes: np.ndarray, around: np.ndarray, touching: np.ndarray, n_classes: int):
    """The distinct (colour, classes around, classes touching) cases among the pixels to do:
    the index of one pixel of each case (any), and each pixel's case. The decode of a pixel
    depends on its case alone, and a blended mask has 5-10x fewer cases than such pixels."""
    if 24 + 2 * n_classes <= 64:  # one packed integer per pixel
        n = np.uint64(n_classes)
        key = (codes.astype(np.uint64) << (n + n)) | (around.astype(np.uint64) << n) | touching
        # np.unique, without its overhead (twice the cost at a few thousand pixels). The stable
        # sort is twice as fast as the default here: a few hundred cases, many repeats.
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        starts = np.empty(len(key), dtype=bool)
        starts[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        case_of = np.empty(len(key), dtype=np.intp)
        case_of[order] = np.cumsum(starts) - 1
        return order[starts], case_of
    rows = np.stack([codes.astype(np.uint64), around.astype(np.uint64), touching.astype(np.uint64)], axis=1)
    _, first, case_of = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return first, case_of.reshape(-1)


def _blend_geometry(colours: np.ndarray, pal: np.ndarray, pairs: np.ndarray):
    """Distance of each colour to each segment pal[a]-pal[b], and where along it (t in [0, 1])
    it lies, as (pairs, colours) arrays; and the length of each segment.

    Channels along the first axis: numpy sums over a short last axis 20x slower, and an
    axis-0 sum adds the channels in the same order ((r + g) + b, float32).
    """
    a = pal[pairs[:, 0]].astype(np.float32)
    ab = pal[pairs[:, 1]].astype(np.float32) - a
    length2 = (ab**2).sum(-1)
    # Every operand in C order: numpy lays a result out like its operands, and from
    # transposed ones it would sum over the innermost axis, 20x slower.
    ab_t = np.ascontiguousarray(ab.T)[:, :, None]  # (3, pairs, 1)
    channels = np.ascontiguousarray(colours.T, dtype=np.float32)
    rel = channels[:, None, :] - np.ascontiguousarray(a.T)[:, :, None]  # (3, pairs, colours)
    t = (rel * ab_t).sum(0) / np.where(length2 > 0, length2, 1)[:, None]
    t = np.clip(t, 0, 1)
    dist = np.sqrt(((rel - t[None] * ab_t) ** 2).sum(0))
    return dist, t, np.sqrt(length2)


def _check_aa_settings(window: int, tolerance: float, max_distance: float) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"blend window must be an odd number of pixels >= 1, got {window}.")
    if not 0 <= tolerance <= max_distance:
        raise ValueError(
            f"palette tolerance {tolerance} must lie between 0 and the off-palette distance {max_distance}."
        )


def _pixels_to_decode(nearest: np.ndarray, d2: np.ndarray, tolerance: float) -> np.ndarray:
    """Flat indices of the pixels that need the blend geometry: not exactly a palette colour, and not a
    near-palette pixel inside a solid 3x3 block of its class (a tinted background, a padding strip, noise),
    which keeps that class."""
    # The decode works on the pixels that are not exactly a palette colour (a few
    # thousand of ~200,000 as a rule) and on the small squares around them.
    off = np.flatnonzero(d2 != 0)  # 7x faster than on the uint32 distances themselves
    if off.size == 0:
        return off
    width = nearest.shape[1]
    loose = d2.reshape(-1)[off] > tolerance**2
    anchor = nearest.copy()  # the nearest class, or 255 where farther than the tolerance
    anchor.reshape(-1)[off[loose]] = 255
    if off.size * 8 < nearest.size:
        near = off[~loose]  # only these can be solid
        block = _padded(anchor, 1).reshape(-1)[_square(near, width, 1, 3)]
        solid = np.zeros(off.size, dtype=bool)
        solid[~loose] = (block == block[4]).all(axis=0)
    else:  # most of the mask is off the palette (a tinted background): one dense pass is cheaper
        solid = _solid(anchor).reshape(-1)[off]
    return off[~solid]


def _classes_on_palette(nearest: np.ndarray, todo: np.ndarray, window: int, bit_t):
    """Per pixel to do, bit sets of the classes on the palette around it: (touching: within 5x5 or the
    window if smaller, around: within the window), and the bits of all of them together."""
    width = nearest.shape[1]
    one = bit_t(1)
    # The classes on the palette in each pixel's window: the classes of the window's pixels
    # that are exactly a palette colour or inside a solid block, i.e. all but the pixels to
    # do (255 there and beyond the edge). The square is 3x3 at least: the classes that the
    # fallback of decode_mask_aa finds next to a pixel must be among the pairs.
    side = max(window, 3)
    pad = side // 2
    keep = _padded(nearest, pad, 255).reshape(-1)
    centre = _in_padded(todo, width, pad)
    keep[centre] = 255
    # A shift by 255 is beyond the bit width, which numpy defines as 0: no bit, 10x faster than
    # a lookup in `lut`.
    bits = np.left_shift(one, keep[centre[None, :] + _square_offsets(width, pad, side)], dtype=bit_t)
    bits = bits.reshape(side, side, -1)

    def within(size):
        """OR over the size x size square around each pixel to do."""
        c = (side - size) // 2
        return np.bitwise_or.reduce(bits[c : c + size, c : c + size].reshape(size * size, -1), axis=0)

    # Classes on the palette close to the pixel (touching: 5x5): among equally good blends,
    # the one between touching classes is the local one (real liver three pixels away must
    # not claim the black-spleen border that only passes through its colour).
    touching = within(min(_TOUCH_WINDOW, window))
    around = within(window)
    return touching, around, int(np.bitwise_or.reduce(bits, axis=None))


@dataclass
class _Blends:
    """The blends that may explain the cases to decode: segments between two classes (a pair may be
    one class twice) that are present somewhere, and each case's colour measured against them."""

    pairs: np.ndarray  # (pairs, 2) class indices, i <= j
    pair_bits: np.ndarray  # (pairs,) bit set of each pair's classes
    dist: np.ndarray  # (pairs, cases) distance of each case's colour to each segment
    t: np.ndarray  # (pairs, colours) where along each segment (0..1) each distinct colour lies
    colour_of: np.ndarray  # (cases,) each case's distinct colour
    key: np.ndarray  # (pairs, cases) order among blends about as close: the smallest wins

    def far(self, allowed_bits: np.ndarray, max_distance: float) -> np.ndarray:
        """Per case, whether its colour is farther than max_distance from every blend of its allowed classes."""
        col = (slice(None), None)  # a per-pair vector against (pairs, cases)
        allowed = (allowed_bits[None] & self.pair_bits[col]) == self.pair_bits[col]
        return np.where(allowed, self.dist, np.inf).min(axis=0) > max_distance

    def choose(self, cases, candidates):
        """(distance, pair) of the best blend of the `candidates` classes for each of `cases`."""
        col = (slice(None), None)
        n_pairs = len(self.pairs)
        present = (candidates[None] & self.pair_bits[col]) == self.pair_bits[col]
        masked = np.where(present, self.dist[:, cases], np.inf)
        best = masked.min(axis=0)
        near_best = masked <= best + _TIE_DISTANCE
        smallest = np.where(near_best, self.key[:, cases], np.inf).min(axis=0)
        choice = np.where(np.isfinite(smallest), smallest, 0).astype(np.int64) % n_pairs
        return best, choice


def _blends(pal: np.ndarray, present_bits: int, case_codes: np.ndarray, touching: np.ndarray, bit_t) -> _Blends:
    """The blends between the classes of `present_bits`, measured against the colour (`case_codes`) of
    each case; `touching` (per case) orders blends about as close."""
    one = bit_t(1)
    classes = np.array([k for k in range(len(pal)) if present_bits >> k & 1], dtype=np.intp)
    pairs = classes[_pair_index(len(classes))]
    pair_bits = (one << pairs[:, 0].astype(bit_t)) | (one << pairs[:, 1].astype(bit_t))
    uniq, colour_of = np.unique(case_codes, return_inverse=True)
    colours = np.stack([uniq & 0xFF, (uniq >> 8) & 0xFF, uniq >> 16], axis=1)
    # Pairs along the first axis: numpy reduces over a short last axis 20x slower.
    dist_u, t_u, length = _blend_geometry(colours, pal, pairs)
    dist = np.take(dist_u, colour_of, axis=1)  # (pairs, cases), C order (dist_u[:, i] is not)
    col = (slice(None), None)  # a per-pair vector against (pairs, cases)
    # Among blends about as close, most ends on the palette close to the pixel, then the shortest
    # segment, then the first pair: one key (exact in float32: below 2**24) whose minimum says all three.
    ends_a, ends_b = (one << pairs[:, 0].astype(bit_t)), (one << pairs[:, 1].astype(bit_t))
    touch = ((touching[None] & ends_a[col]) != 0).astype(np.float32) + (
        (touching[None] & ends_b[col]) != 0
    )
    n_pairs = len(pairs)
    key = (np.rint(length)[col] + 1000.0 * (2 - touch)) * n_pairs + np.arange(n_pairs)[col]
    return _Blends(pairs, pair_bits, dist, t_u, colour_of, key)


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
    _check_aa_settings(window, tolerance, max_distance)
    nearest, d2 = _decode_with_d2(arr, pal)
    labels = nearest.copy()
    suspicious = np.zeros(nearest.shape, dtype=bool)
    todo = _pixels_to_decode(nearest, d2, tolerance)
    if todo.size == 0:
        return Decoded(labels, nearest, d2, suspicious)
    width = nearest.shape[1]
    bit_t = _bit_dtype(len(pal))
    lut = np.zeros(256, dtype=bit_t)  # class -> its bit; 255 -> none
    lut[: len(pal)] = np.left_shift(bit_t(1), np.arange(len(pal), dtype=bit_t))
    touching, around, on_palette_bits = _classes_on_palette(nearest, todo, window, bit_t)
    own_bit = lut[nearest.reshape(-1)[todo]]
    # Every class a pixel may take: on the palette in some pixel's window, or some pixel's
    # nearest colour (the fallback's near-palette neighbours below are one or the other).
    present_bits = on_palette_bits | int(np.bitwise_or.reduce(own_bit, axis=None))

    codes = _codes(arr.reshape(-1, 3)[todo] if arr.flags.c_contiguous else arr[np.divmod(todo, width)])
    first, case_of = _cases(codes, around, touching, len(pal))
    around, touching, own_bit = around[first], touching[first], own_bit[first]  # per case
    blends = _blends(pal, present_bits, codes[first], touching, bit_t)

    # Suspicious: not near a blend of the classes around it, its own nearest class included.
    suspicious.reshape(-1)[todo] = blends.far(around | own_bit, max_distance)[case_of]

    # Labels: the best blend of classes really present around the pixel.
    best, choice = blends.choose(slice(None), around)
    best, choice = best[case_of], choice[case_of]  # per pixel
    # No blend of solid classes fits (a thin structure, a three-class corner): look at the
    # classes of the near-palette pixels right next to it too, before the nearest colour.
    unfit = np.flatnonzero(best > max_distance)
    if unfit.size:
        next_to = _near_neighbours(nearest, d2, todo[unfit], (max_distance / 2) ** 2, lut)
        best[unfit], choice[unfit] = blends.choose(case_of[unfit], around[case_of[unfit]] | next_to)
    pix = np.flatnonzero(best <= max_distance)
    chosen = choice[pix]
    t = blends.t[chosen, blends.colour_of[case_of[pix]]]
    ends = blends.pairs[chosen]
    labels.reshape(-1)[todo[pix]] = np.where(t <= 0.5, ends[:, 0], ends[:, 1])
    return Decoded(labels, nearest, d2, suspicious)


SINGLE_CHANNEL_MODES = ("L", "LA") + WIDE_MODES  # masks that may store class indices


def read_mask(path) -> np.ndarray:
    """A mask file as stored, EXIF orientation applied: (H, W) integers for a single-channel
    (greyscale, 16-bit) mask, (H, W, 3) uint8 RGB for any other mode (RGB, RGBA, P, 1); down-sampled
    by the nearest pixel, as its image is, when larger than the dataset's size limit (usseg.images)."""
    with Image.open(path) as im:
        im = oriented(im)
        if im.mode in SINGLE_CHANNEL_MODES:
            arr = np.asarray(im.getchannel(0) if im.mode == "LA" else im)
            arr = arr if arr.dtype == np.uint8 else arr.astype(np.int64)
        else:
            arr = np.asarray(im.convert("RGB"))
    rule = reading_rule()
    height, width = arr.shape[:2]
    if rule.factor(width, height) > 1:
        arr = downsample_nearest(arr, rule.size(width, height))
    return arr


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


def _palette_reading(rgb, dataset: DatasetSpec) -> MaskReading:
    pal, names = dataset.palette, dataset.class_names
    limit = dataset.off_palette_distance
    decode = dataset.decode
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
        window=dataset.blend_window,
        tolerance=dataset.palette_tolerance,
        max_distance=limit,
    )
    stats = _mask_stats(res.labels, res.suspicious, names)
    stats["max_distance"] = res.max_distance
    stats["off_palette_fraction"] = float(np.count_nonzero(res.d2)) / max(res.d2.size, 1)
    stats["relabelled_fraction"] = float(np.count_nonzero(res.labels != res.nearest_labels)) / max(
        res.labels.size, 1
    )
    return MaskReading(res.labels, "palette", True, "", stats)


def read_labels(arr: np.ndarray, dataset: DatasetSpec | Mapping, where: str) -> MaskReading:
    """Labels of a mask array from `read_mask`, by dataset.mask_encoding (auto | palette | index).

    auto: a single-channel mask whose values are all class indices (0 .. n_classes - 1) is read
    as indices; everything else by colour. A mask that fits no allowed reading comes back
    with usable False and a problem that names `where` (the file).
    """
    dataset = DatasetSpec.of(dataset)
    pal, names = dataset.palette, dataset.class_names
    encoding = dataset.mask_encoding
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
    reading = _palette_reading(rgb, dataset)
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


def _check_decode_settings(dataset: DatasetSpec) -> None:
    limit_distance, tolerance = dataset.off_palette_distance, dataset.palette_tolerance
    if dataset.decode == "aa_aware" and tolerance > limit_distance:
        raise DataError(
            f"dataset.palette_tolerance ({tolerance:g}) is larger than dataset.off_palette_distance "
            f"({limit_distance:g}); a colour that shows a class is present must count as on the palette. "
            "Lower palette_tolerance or raise off_palette_distance in config.yaml."
        )


def _mask_of_row(root: Path, row, manifest_csv) -> np.ndarray:
    """The mask of a manifest row (`read_mask`); DataError when it is no longer readable or no longer its
    image's size (the file changed after the manifest was built)."""
    path = dataset_file(root, row.mask_path)
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
    return arr


def _report_row(row, reading: MaskReading, dataset: DatasetSpec) -> dict:
    """The decode report's row of a manifest row's mask: its numbers, and whether (and why) it is flagged."""
    limit_distance = dataset.off_palette_distance
    limit_fraction = dataset.max_off_palette_fraction
    decode = dataset.decode
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
    return {
        "image_id": row.image_id,
        "mask_path": row.mask_path,
        **stats,
        "flagged": flagged,
        "flag_reason": reason,
        "encoding": reading.encoding,
        "decode": decode if reading.encoding == "palette" else "",
        "usable": reading.usable,
    }


def decode_masks(
    manifest_csv, dataset_root, dataset: DatasetSpec | Mapping, out_dir, strict: bool = False
) -> pd.DataFrame:
    """Write out_dir/{image_id}.npy for every manifest row with a mask, and out_dir/decode_report.csv.

    `dataset_root` is the folder the manifest paths are relative to (the one
    holding the modality folders); a folder above it is accepted too. A mask
    with too many suspicious pixels, or one that fits no encoding (then
    `usable` is false), is still written but flagged; under `strict` a
    flagged mask raises DataError after the report is written.
    """
    manifest = read_manifest(manifest_csv)
    dataset = DatasetSpec.of(dataset)
    root = find_dataset_root(dataset_root, dataset.root_entries)
    _check_decode_settings(dataset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for row in manifest[manifest["has_mask"]].sort_values("image_id").itertuples(index=False):
        reading = read_labels(_mask_of_row(root, row, manifest_csv), dataset, row.mask_path)
        np.save(out_dir / f"{row.image_id}.npy", reading.labels)
        rows.append(_report_row(row, reading, dataset))

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
