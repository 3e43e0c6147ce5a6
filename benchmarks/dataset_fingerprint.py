"""Time the dataset fingerprint and a no-op dry run on a dataset given as data_root.

    .venv/bin/python benchmarks/dataset_fingerprint.py [--size full] [--work DIR] [--reuse] [--repeats 3]

Generates the demo dataset in --work (or reuses it with --reuse) and uses it as
the user's data_root. Prints one table: the fingerprint's first pass (every
file hashed), a pass with nothing changed (sizes and times only, hashes from
the cache), a pass after one file changed, and the wall time of a no-op
`snakemake --dry-run manifest` (after one real `manifest` run), which is what
every start-up pays, beside `snakemake --version` for scale. CPU seconds are
the steadier number on a shared machine. The goal: the no-op dry run under 5 s
on the full dataset.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from usseg.dataset_fingerprint import update_fingerprint
from usseg.demo import generate_demo_dataset

REPO = Path(__file__).resolve().parents[1]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _snakemake(work: Path, data_root: Path | None, *args: str) -> tuple[float, float]:
    """(wall s, CPU s) of one Snakemake command."""
    cmd = [sys.executable, "-m", "snakemake", *args]
    if data_root is not None:
        cmd = [
            *cmd, "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "2",
            "--config", f"data_root={data_root}",
        ]
    cpu0, t0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall, cpu


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

    rows = [("fingerprint, first pass (every file hashed)", _timed(lambda: update_fingerprint(data_root, fingerprint)))]
    best = min(_timed(lambda: update_fingerprint(data_root, fingerprint)) for _ in range(args.repeats))
    rows.append(("fingerprint, nothing changed", best))
    one = sorted(files)[0]
    one.write_bytes(one.read_bytes())  # new time, same bytes: hashed again, fingerprint unchanged
    rows.append(("fingerprint, one file rewritten", _timed(lambda: update_fingerprint(data_root, fingerprint))))

    run_dir = work / "run"
    _snakemake(run_dir, data_root, "manifest")
    dry = min(_snakemake(run_dir, data_root, "--dry-run", "manifest") for _ in range(args.repeats))
    rows.append(("`snakemake --dry-run manifest`, nothing to do (the whole start-up)", dry))
    bare = min(_snakemake(run_dir, None, "--version") for _ in range(args.repeats))
    rows.append(("`snakemake --version` (Snakemake's own start-up, for scale)", bare))

    print(f"\n{len(files)} files, {megabytes:.1f} MB ({args.size} demo as data_root); best of {args.repeats}\n")
    print("| step | wall s | CPU s |")
    print("|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")


def _timed(fn) -> tuple[float, float]:
    """(wall s, CPU s of this process) of fn()."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - cpu0


if __name__ == "__main__":
    main()
