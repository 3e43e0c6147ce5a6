"""Nearest-palette-colour decoding of a mask, with each pixel's squared distance to its colour.

Lookup tables over the colours a mask actually uses keep this fast; usseg.masks
builds the anti-aliasing-aware decode and the decode stage on it.
"""

from __future__ import annotations

import threading

import numpy as np

_UNKNOWN = 255  # table entry not decided yet; palettes therefore hold at most 255 colours
_tables: dict[bytes, np.ndarray] = {}
_tables_lock = threading.Lock()
_BLOCK = 1 << 15  # new colours decided per step
_CHUNK = 1 << 16  # pixels decoded per step
# The aa_aware decode's step: a 464x449 mask in one (a fifth of its lookup time was the
# per-step overhead of four); temporaries of about 4 MiB.
_CHUNK_AA = 1 << 18


def _check_palette(palette) -> np.ndarray:
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 255:
        raise ValueError(
            f"palette must have shape (n_classes, 3) with 1..255 colours, got {pal.shape}."
        )
    if pal.min() < 0 or pal.max() > 255:
        raise ValueError("palette colours must lie in 0..255.")
    return pal.astype(np.uint8)


def _check_rgb(rgb) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB array, got shape {arr.shape} and dtype {arr.dtype}."
        )
    return arr


def _lazy_table(key: bytes, unknown: int, dtype) -> np.ndarray:
    """The table under `key`, created once (filled with `unknown`) even when threads race."""
    table = _tables.get(key)
    if table is None:
        with _tables_lock:
            table = _tables.get(key)
            if table is None:
                table = np.full(1 << 24, unknown, dtype=dtype)
                _tables[key] = table
    return table


def _table(pal: np.ndarray) -> np.ndarray:
    return _lazy_table(pal.tobytes(), _UNKNOWN, np.uint8)


_BOTH_UNKNOWN = 0xFFFFFFFF  # entry not decided yet (a real entry is below 2**26)


def _both_table(pal: np.ndarray) -> np.ndarray:
    """Per palette, a 64 MiB table filled lazily like the label table: for each 24-bit colour
    code, its nearest palette index (low 8 bits) and squared distance to it (the bits above:
    at most 3 * 255**2), so a pixel of the aa_aware decode costs one lookup."""
    return _lazy_table(b"both" + pal.tobytes(), _BOTH_UNKNOWN, np.uint32)


def _codes(flat: np.ndarray) -> np.ndarray:
    """24-bit colour code r + 256 g + 65536 b of each row of an (n, 3) uint8 array, as int64.

    The bytes are read as overlapping little-endian 32-bit words, 3 bytes
    apart (r, g, b and the next pixel's r), and the fourth byte is masked off:
    one pass, where packing channel by channel takes five. int64 is the index
    type numpy gathers fastest.
    """
    n = len(flat)
    buf = np.empty(3 * n + 1, dtype=np.uint8)  # one spare byte for the last pixel's word
    buf[: 3 * n].reshape(n, 3)[...] = flat
    buf[-1] = 0
    words = np.ndarray((n,), dtype="<u4", buffer=buf, strides=(3,))
    return np.bitwise_and(words, 0xFFFFFF, dtype=np.int64)


def _nearest(codes: np.ndarray, pal: np.ndarray, with_distance: bool = False):
    """Nearest palette index for distinct colour codes (and, with_distance, the squared
    distance to it as uint32), in blocks, all palette colours at once.

    Blocks keep the (colours x palette x 3) temporaries near _BLOCK entries whatever the
    number of new colours; argmin keeps the first minimum, so ties go to the lower index.
    """
    out = np.empty(len(codes), dtype=np.uint8)
    distance = np.empty(len(codes), dtype=np.uint32)
    pal = np.ascontiguousarray(pal.T, dtype=np.int32)[:, :, None]  # (3, palette, 1), C order
    step = max(1, _BLOCK // pal.shape[1])
    for start in range(0, len(codes), step):
        block = codes[start : start + step]
        rgb = np.stack([block & 0xFF, (block >> 8) & 0xFF, block >> 16]).astype(np.int32)
        # Channels, then palette colours, along the first axes: numpy reduces those fastest.
        d2 = ((rgb[:, None, :] - pal) ** 2).sum(axis=0)  # (palette, colours)
        nearest = d2.argmin(axis=0)
        out[start : start + step] = nearest
        if with_distance:
            distance[start : start + step] = d2[nearest, np.arange(len(block))]
    return (out, distance) if with_distance else out


def _decode_chunks(arr: np.ndarray, pal: np.ndarray, labels: np.ndarray):
    """Fill `labels` (flat, uint8) chunk by chunk; yield (start, codes, labels) of each chunk.

    Chunks keep the temporaries a few hundred kilobytes whatever the mask size.
    """
    table = _table(pal)
    flat = arr.reshape(-1, 3)
    for start in range(0, len(flat), _CHUNK):
        codes = _codes(flat[start : start + _CHUNK])
        out = labels[start : start + len(codes)]
        np.take(
            table, codes, out=out, mode="clip"
        )  # codes < 2**24 always; "raise" would buffer `out`
        missing = out == _UNKNOWN
        if missing.any():
            miss_codes = codes[missing]
            new = np.unique(miss_codes)
            # Threads may fill the same entries at once; they write the same values, so no lock is needed.
            table[new] = _nearest(new, pal)
            out[missing] = table[miss_codes]
        yield start, codes, out


def decode_mask(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colour mask -> (H, W) uint8 index of the nearest palette colour.

    Nearest by squared RGB distance; a colour equidistant from two palette
    entries gets the lower index. Identical to brute force on every pixel.
    """
    arr = _check_rgb(rgb)
    labels = np.empty(arr.shape[:2], dtype=np.uint8)
    for _ in _decode_chunks(arr, _check_palette(palette), labels.reshape(-1)):
        pass
    return labels


def _decode_with_d2(arr: np.ndarray, pal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest labels (H, W) uint8 and squared distances (H, W) uint32, by one table lookup
    per pixel, in chunks of _CHUNK_AA pixels."""
    labels = np.empty(arr.shape[:2], dtype=np.uint8)
    d2 = np.empty(arr.shape[:2], dtype=np.uint32)
    flat, flat_labels, flat_d2 = arr.reshape(-1, 3), labels.reshape(-1), d2.reshape(-1)
    table = _both_table(pal)
    for start in range(0, len(flat), _CHUNK_AA):
        codes = _codes(flat[start : start + _CHUNK_AA])
        both = np.take(table, codes, mode="clip")
        missing = both == _BOTH_UNKNOWN
        if missing.any():
            miss_codes = codes[missing]
            # Runs of one colour (a padding strip, a tinted background) shrink the sort.
            runs = np.empty(len(miss_codes), dtype=bool)
            runs[:1] = True
            np.not_equal(miss_codes[1:], miss_codes[:-1], out=runs[1:])
            new = np.unique(miss_codes[runs])
            near, distance = _nearest(new, pal, with_distance=True)
            # As for the label table: concurrent writers write the same values.
            table[new] = near | (distance << 8)
            both[missing] = table[miss_codes]
        flat_labels[start : start + len(codes)] = both  # the low byte: the label
        np.right_shift(both, 8, out=flat_d2[start : start + len(codes)])
    return labels, d2


def decode_mask_with_distance(
    rgb: np.ndarray, palette: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as decode_mask, and each pixel's squared distance to its nearest palette colour (int32)."""
    labels, d2 = _decode_with_d2(_check_rgb(rgb), _check_palette(palette))
    return labels, d2.astype(np.int32)


# ----------------------------------------------------------------------------- anti-aliasing-aware decode
