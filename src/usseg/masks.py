"""Decode colour-coded masks into label arrays, and say how far each mask strays from the palette.

A mask pixel gets the index of the nearest palette colour (squared RGB
distance, ties to the lower index), which is what the anti-aliased borders of
real masks need. Brute force compares every pixel with every palette colour;
here each distinct colour is decided once: RGB is packed into a 24-bit code
and looked up in a per-palette table filled lazily, because a mask usually holds a
few hundred distinct colours while it has ~200,000 pixels. Pixels go in chunks,
so temporaries stay small whatever the mask size.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from usseg.config import class_names
from usseg.config import palette as config_palette
from usseg.contracts import DECODE_REPORT_COLUMNS
from usseg.errors import DataError
from usseg.manifest import find_dataset_root, parse_bool, read_manifest

REPORT_COLUMNS = DECODE_REPORT_COLUMNS

_UNKNOWN = 255  # table entry not decided yet; palettes therefore hold at most 255 colours
_tables: dict[bytes, np.ndarray] = {}
_tables_lock = threading.Lock()
_BLOCK = 1 << 15  # new colours decided per step
_CHUNK = 1 << 16  # pixels decoded per step


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


def _table(pal: np.ndarray) -> np.ndarray:
    key = pal.tobytes()
    table = _tables.get(key)
    if table is None:
        with _tables_lock:
            table = _tables.get(key)
            if table is None:
                table = np.full(1 << 24, _UNKNOWN, dtype=np.uint8)
                _tables[key] = table
    return table


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


def _nearest(codes: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Nearest palette index for distinct colour codes, in blocks, one palette colour at a time.

    Memory stays O(block) whatever the number of new colours; a strict `<`
    keeps the first minimum, so ties go to the lower index.
    """
    out = np.empty(len(codes), dtype=np.uint8)
    pal = pal.astype(np.int32)
    for start in range(0, len(codes), _BLOCK):
        block = codes[start : start + _BLOCK]
        r = (block & 0xFF).astype(np.int32)
        g = ((block >> 8) & 0xFF).astype(np.int32)
        b = (block >> 16).astype(np.int32)
        best = np.full(len(block), np.iinfo(np.int32).max, dtype=np.int32)
        idx = np.zeros(len(block), dtype=np.uint8)
        for k, (pr, pg, pb) in enumerate(pal):
            d2 = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2
            better = d2 < best
            best[better] = d2[better]
            idx[better] = k
        out[start : start + _BLOCK] = idx
    return out


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


def decode_mask_with_distance(
    rgb: np.ndarray, palette: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels as decode_mask, and each pixel's squared distance to its nearest palette colour (int32)."""
    arr = _check_rgb(rgb)
    pal = _check_palette(palette)
    labels = np.empty(arr.shape[:2], dtype=np.uint8)
    d2 = np.zeros(arr.shape[:2], dtype=np.int32)
    flat_d2 = d2.reshape(-1)
    pal32 = pal.astype(np.int64)
    pal_codes = pal32[:, 0] | (pal32[:, 1] << 8) | (pal32[:, 2] << 16)
    for start, codes, lab in _decode_chunks(arr, pal, labels.reshape(-1)):
        # Most pixels sit exactly on their palette colour (distance 0); only the rest need arithmetic.
        off = np.flatnonzero(codes != pal_codes[lab])
        if off.size:
            c = codes[off]
            nearest = pal32[lab[off]]
            dr = (c & 0xFF) - nearest[:, 0]
            dg = ((c >> 8) & 0xFF) - nearest[:, 1]
            db = (c >> 16) - nearest[:, 2]
            flat_d2[start + off] = dr * dr + dg * dg + db * db
    return labels, d2


def load_mask_rgb(path) -> np.ndarray:
    """A mask file as an (H, W, 3) uint8 RGB array, whatever its mode (RGBA, P, L, ...)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _mask_stats(labels: np.ndarray, d2: np.ndarray, names: list[str], max_distance: float) -> dict:
    n = labels.size
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(names)))
    return {
        "off_palette_fraction": float(np.count_nonzero(d2)) / n,
        "far_fraction": float(np.count_nonzero(d2 > max_distance**2)) / n,
        "max_distance": float(np.sqrt(d2.max())) if n else 0.0,
        "classes_present": ";".join(names[i] for i in present),
    }


def decode_masks(
    manifest_csv, dataset_root, dataset_cfg: dict, out_dir, strict: bool = False
) -> pd.DataFrame:
    """Write out_dir/{image_id}.npy for every manifest row with a mask, and out_dir/decode_report.csv.

    `dataset_root` is the folder the manifest paths are relative to (the one
    holding the modality folders); a folder above it is accepted too. A mask
    with too many far-off-palette pixels is still written but flagged; under
    `strict` a flagged mask raises DataError after the report is written.
    """
    manifest = read_manifest(manifest_csv)
    root = find_dataset_root(dataset_root, dataset_cfg["modalities"])
    pal = config_palette(dataset_cfg)
    names = class_names(dataset_cfg)
    limit_distance = float(dataset_cfg.get("off_palette_distance", 60))
    limit_fraction = float(dataset_cfg.get("max_off_palette_fraction", 0.01))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = []
    for row in manifest[manifest["has_mask"]].sort_values("image_id").itertuples(index=False):
        path = root / row.mask_path
        try:
            rgb = load_mask_rgb(path)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read mask {path} of {row.image_id} ({exc}); it was readable when {manifest_csv} was built. "
                "Restore the file or re-run the manifest step."
            ) from None
        if rgb.shape[:2] != (row.height, row.width):
            raise DataError(
                f"mask {path} is {rgb.shape[1]}x{rgb.shape[0]} but {manifest_csv} says its image is "
                f"{row.width}x{row.height}; the file changed after the manifest was built. Re-run the manifest step."
            )
        labels, d2 = decode_mask_with_distance(rgb, pal)
        np.save(out_dir / f"{row.image_id}.npy", labels)
        stats = _mask_stats(labels, d2, names, limit_distance)
        flagged = stats["far_fraction"] > limit_fraction
        reason = ""
        if flagged:
            reason = (
                f"{stats['far_fraction']:.2%} of the pixels of {row.mask_path} are farther than {limit_distance:g} "
                f"from every palette colour (limit {limit_fraction:.2%}, largest distance "
                f"{stats['max_distance']:.1f}); the mask may use another palette or be corrupt. Check it, or adjust "
                "dataset.classes / dataset.max_off_palette_fraction in config.yaml."
            )
        rows.append(
            {
                "image_id": row.image_id,
                "mask_path": row.mask_path,
                **stats,
                "flagged": flagged,
                "flag_reason": reason,
            }
        )

    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report["flagged"] = report["flagged"].astype(bool)
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
        dtype={"image_id": str, "mask_path": str, "classes_present": str, "flag_reason": str},
        keep_default_na=False,
    )
    missing = [c for c in REPORT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{report_csv} lacks the column(s) {', '.join(missing)}; delete it and re-run the decode_masks step."
        )
    df["flagged"] = df["flagged"].map(parse_bool)
    return df
