"""Time the dataset fingerprint and a no-op dry run on a dataset given as data_root.

    .venv/bin/python benchmarks/dataset_fingerprint.py [--size full] [--work DIR] [--reuse] [--repeats 3]

Generates the demo dataset in --work (or reuses it with --reuse) and uses it as
the user's data_root. Prints one table: the fingerprint's first pass (every
file hashed), a pass with nothing changed (sizes and times only, hashes from
the cache), a pass after one file changed, and the wall time of a no-op
`snakemake --dry-run manifest` (after one real `manifest` run), which is what
every start-up pays. The goal: the no-op dry run under 5 s on the full dataset.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from usseg.dataset_fingerprint import update_fingerprint
from usseg.demo import generate_demo_dataset

REPO = Path(__file__).resolve().parents[1]


def _snakemake(work: Path, data_root: Path, *args: str) -> float:
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(work), "--cores", "2", *args, "--config", f"data_root={data_root}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="full", choices=["tiny", "small", "full"])
    ap.add_argument("--work", default="/tmp/usseg-fingerprint-bench")
    ap.add_argument("--reuse", action="store_true", help="reuse the dataset already in --work")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of each no-change step (best kept)")
    args = ap.parse_args()

    work = Path(args.work)
    data_root = work / "data"
    if not (args.reuse and data_root.is_dir()):
        summary = generate_demo_dataset(data_root, size=args.size, seed=0)
        print(f"generated {summary['n_images']} images and {summary['n_masks']} masks in {data_root}")
    files = [p for p in data_root.rglob("*") if p.is_file()]
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    fingerprint = work / "bench" / "dataset_fingerprint.json"
    for stale in (fingerprint, fingerprint.with_name("dataset_fingerprint.cache.json")):
        stale.unlink(missing_ok=True)

    rows = []
    t0 = time.perf_counter()
    update_fingerprint(data_root, fingerprint)
    rows.append(("fingerprint, first pass (every file hashed)", time.perf_counter() - t0))
    best = min(_timed(lambda: update_fingerprint(data_root, fingerprint)) for _ in range(args.repeats))
    rows.append(("fingerprint, nothing changed", best))
    one = sorted(files)[0]
    one.write_bytes(one.read_bytes())  # new time, same bytes: hashed again, fingerprint unchanged
    rows.append(("fingerprint, one file rewritten", _timed(lambda: update_fingerprint(data_root, fingerprint))))

    run_dir = work / "run"
    _snakemake(run_dir, data_root, "manifest")
    dry = min(_snakemake(run_dir, data_root, "--dry-run", "manifest") for _ in range(args.repeats))
    rows.append(("`snakemake --dry-run manifest`, nothing to do (whole start-up)", dry))

    print(f"\n{len(files)} files, {megabytes:.1f} MB ({args.size} demo as data_root)\n")
    print("| step | wall s |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
