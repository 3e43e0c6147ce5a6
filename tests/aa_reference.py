"""A frozen copy of usseg's anti-aliasing-aware decode as it was before it was made sparse
(issue 12b), kept as the oracle that the fast decode must match pixel for pixel.

Dense and simple to check by eye: nearest colours and distances by brute force
(every pixel against every palette colour), then the window ORs over the whole
box around the off-palette pixels. Do not optimise this file.
"""

from __future__ import annotations

import numpy as np

_TIE_DISTANCE = 2.0
_TOUCH_WINDOW = 5


def _nearest_brute(arr: np.ndarray, pal: np.ndarray):
    """Nearest palette index (ties to the lower index) and squared distance of every pixel."""
    d2 = ((arr[:, :, None, :].astype(np.int64) - pal.astype(np.int64)[None, None]) ** 2).sum(-1)
    nearest = d2.argmin(-1).astype(np.uint8)
    return nearest, np.take_along_axis(d2, nearest[..., None].astype(np.intp), -1)[..., 0].astype(np.uint32)


def _codes(flat: np.ndarray) -> np.ndarray:
    flat = flat.astype(np.int64)
    return flat[:, 0] | (flat[:, 1] << 8) | (flat[:, 2] << 16)


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


def reference_decode_aa(
    rgb: np.ndarray,
    palette: np.ndarray,
    window: int = 7,
    tolerance: float = 20.0,
    max_distance: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
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
    arr, pal = np.asarray(rgb), np.asarray(palette, dtype=np.uint8)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"blend window must be an odd number of pixels >= 1, got {window}.")
    if not 0 <= tolerance <= max_distance:
        raise ValueError(
            f"palette tolerance {tolerance} must lie between 0 and the off-palette distance {max_distance}."
        )
    nearest, d2 = _nearest_brute(arr, pal)
    labels = nearest.copy()
    suspicious = np.zeros(nearest.shape, dtype=bool)
    off = d2 != 0
    rows, cols = np.flatnonzero(off.any(axis=1)), np.flatnonzero(off.any(axis=0))
    if rows.size == 0:
        return labels, suspicious

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
        return labels, suspicious
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
    return labels, suspicious

