"""Speed and memory of mask decoding: reading PNGs, usseg.masks.decode_mask, and the broadcast baseline.

    .venv/bin/python benchmarks/decode.py                 # 24 generated 460x450 masks
    .venv/bin/python benchmarks/decode.py --masks DIR     # every *.png below DIR (e.g. a real download)

Generated masks look like the reference's: organ blobs in palette colours,
drawn at 4x resolution and box-filtered down (anti-aliased borders full of
blended, off-palette colours), a (10,10,10) padding strip at the bottom, and
one mask tinted (10,0,10) where it is background. Every decoded mask is
checked against the baseline before anything is timed.

Timings are per mask, the best of --repeats passes over all masks (the least
disturbed by other work on the machine). Memory is tracemalloc's peak of
extra allocation while decoding one mask; usseg's per-palette table (16 MiB,
allocated once per palette and kept) is reported on its own line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from usseg.masks import _tables, decode_mask, load_mask_rgb

PALETTE = np.array(
    [
        [0, 0, 0],
        [100, 0, 100],
        [255, 255, 255],
        [0, 255, 0],
        [255, 255, 0],
        [0, 0, 255],
        [255, 0, 0],
        [255, 0, 255],
        [0, 255, 255],
    ],
    dtype=np.uint8,
)


def broadcast_decode(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The straightforward approach: every pixel against every palette colour at once."""
    flat = rgb.reshape(-1, 3).astype(np.int32)  # uint8 would wrap around on subtraction
    d2 = ((flat[:, None, :] - palette.astype(np.int32)[None]) ** 2).sum(-1)
    return d2.argmin(1).astype(np.uint8).reshape(rgb.shape[:2])


def synthetic_mask(rng: np.random.Generator, width: int, height: int, tint: bool) -> np.ndarray:
    ss = 4
    h, w = height * ss, width * ss
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    labels = np.zeros((h, w), dtype=np.uint8)
    for cls in rng.permutation(np.arange(1, len(PALETTE)))[: rng.integers(3, 7)]:
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        theta = np.arctan2(yy - cy, xx - cx)
        wobble = 1 + 0.15 * np.sin(3 * theta + rng.uniform(0, 6.3))
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < wobble**2] = cls
    fine = PALETTE[labels].astype(np.float32)
    rgb = fine.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))  # box filter: blended borders
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[-max(2, height // 40) :] = 10  # simulator padding strip
    if tint:
        rgb[(rgb == 0).all(-1)] = [10, 0, 10]
    return rgb


def write_masks(folder: Path, n: int, width: int, height: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"mask{i:03d}.png"
        mode = ("RGB", "RGBA", "P")[i % 3] if i else "RGB"
        rgb = synthetic_mask(rng, width, height, tint=(i == 1))
        im = Image.fromarray(rgb)
        if mode == "RGBA":
            im = im.convert("RGBA")
        elif mode == "P":
            im = im.quantize(
                colors=256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE
            )
        im.save(path)
        paths.append(path)
    return paths


def best_per_item(fn, items, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t)
    return best / len(items)


def peak_bytes(fn, item) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(item)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--masks", type=Path, help="folder of PNG masks to use instead of generated ones"
    )
    ap.add_argument("--n", type=int, default=24, help="generated masks (default 24)")
    ap.add_argument("--size", default="460x450", help="generated mask size WxH (default 460x450)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.masks:
            paths = sorted(args.masks.rglob("*.png"))
            if not paths:
                print(f"no *.png below {args.masks}", file=sys.stderr)
                return 2
            source = f"{len(paths)} masks from {args.masks}"
        else:
            width, height = (int(v) for v in args.size.lower().split("x"))
            paths = write_masks(Path(tmp), args.n, width, height, args.seed)
            source = f"{len(paths)} generated {width}x{height} masks (anti-aliased borders, padding strip)"
        masks = [load_mask_rgb(p) for p in paths]

        _tables.clear()
        tracemalloc.start()
        t = time.perf_counter()
        decode_mask(masks[0], PALETTE)
        cold_ms = (time.perf_counter() - t) * 1000
        _, table_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        # As in a pipeline run: a table that has not seen these masks, each mask decoded once.
        _tables.clear()
        decode_mask(np.zeros((1, 1, 3), np.uint8), PALETTE)  # allocation reported separately above
        first_pass_s = best_per_item(lambda m: decode_mask(m, PALETTE), masks, 1)

        for rgb in masks:  # identical to the baseline on every pixel, or no numbers at all
            if not np.array_equal(decode_mask(rgb, PALETTE), broadcast_decode(rgb, PALETTE)):
                print("MISMATCH between decode_mask and the broadcast baseline", file=sys.stderr)
                return 1

        read_s = best_per_item(load_mask_rgb, paths, args.repeats)
        usseg_s = best_per_item(lambda m: decode_mask(m, PALETTE), masks, args.repeats)
        base_s = best_per_item(
            lambda m: broadcast_decode(m, PALETTE), masks, max(1, args.repeats - 1)
        )

        _tables.clear()
        decode_mask(masks[0], PALETTE)  # allocate the table outside the measurement
        big = max(masks, key=lambda m: m.shape[0] * m.shape[1])
        mem = {
            "read PNG": peak_bytes(load_mask_rgb, paths[masks.index(big)]),
            "usseg decode_mask": peak_bytes(lambda m: decode_mask(m, PALETTE), big),
            "broadcast": peak_bytes(lambda m: broadcast_decode(m, PALETTE), big),
        }
        colours = [len(np.unique(m.reshape(-1, 3), axis=0)) for m in masks]

    print(f"source: {source}")
    print(f"distinct colours per mask: median {int(np.median(colours))}, max {max(colours)}")
    print(f"{'approach':<22}{'ms/mask':>10}{'vs broadcast':>14}{'peak extra MiB':>16}")
    rows = [
        ("(a) read PNG", read_s, "read PNG"),
        ("(b) usseg decode_mask", usseg_s, "usseg decode_mask"),
        ("    first pass", first_pass_s, None),
        ("(c) broadcast", base_s, "broadcast"),
    ]
    for name, secs, key in rows:
        speed = "-" if key == "read PNG" else f"{base_s / secs:.1f}x"
        peak = f"{mem[key] / 2**20:.2f}" if key else "-"
        print(f"{name:<22}{secs * 1000:>10.2f}{speed:>14}{peak:>16}")
    print(
        "(b) is the table warmed by earlier masks; 'first pass' decodes each mask once with a fresh table, "
        "as decode_masks does."
    )
    print(
        f"usseg first mask with an empty table: {cold_ms:.1f} ms, table allocation "
        f"{table_peak / 2**20:.1f} MiB (once per palette, kept for later masks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
