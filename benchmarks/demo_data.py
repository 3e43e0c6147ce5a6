"""Time the demo-dataset generator at each size.

    .venv/bin/python benchmarks/demo_data.py [--sizes tiny small full] [--workers N] [--seed S]

Prints one row per size: files written, wall-clock seconds and CPU seconds
(this process and its workers). On a shared machine the CPU seconds are the
steadier number: wall time on an idle machine is about CPU time / workers.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from usseg.demo import generate_demo_dataset


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _megabytes(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["tiny", "small", "full"], choices=["tiny", "small", "full"]
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: the generator's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print("| size | images | masks | image size | MB | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            summary = generate_demo_dataset(tmp, size=size, seed=args.seed, workers=args.workers)
            wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            dims = summary["image_size"]
            print(
                f"| {size} | {summary['n_images']} | {summary['n_masks']} | {dims['width']}x{dims['height']} "
                f"| {_megabytes(Path(summary['root'])):.1f} | {wall:.1f} | {cpu:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
