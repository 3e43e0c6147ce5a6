"""The default run's wall time on 1 and 2 cores (or the --cores you name).

For each core count: copy the workflow (Snakefile, rules, scripts, src,
config.yaml, profiles, envs, docs) into a fresh folder, run
`snakemake --cores N report` from scratch (demo dataset included) and time it.
Prints one table row per core count, with the time of every training job from
Snakemake's benchmark files and the threads each training got.

    .venv/bin/python benchmarks/workflow_cores.py                 # 1 and 2 cores
    .venv/bin/python benchmarks/workflow_cores.py --cores 1 2 4 8
    .venv/bin/python benchmarks/workflow_cores.py --configfile configs/tiny.yaml   # a quick check
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ["Snakefile", "rules", "scripts", "src", "config.yaml", "configs", "profiles", "envs", "docs"]


def copy_workflow(dst: Path) -> None:
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst / name)


def run(cores: int, work: Path, configfile: str | None) -> dict:
    workdir = work / f"cores{cores}"
    workdir.mkdir(parents=True)
    copy_workflow(workdir)
    env = dict(os.environ, PYTHONPATH=str(workdir / "src"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # --quiet=host: print each job's block, whose "threads:" line the table reports.
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet=host", "report"]
    if configfile:
        cmd += ["--configfile", configfile]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake --cores {cores} failed:\n{proc.stderr[-4000:]}")
    trainings = {}
    for tsv in sorted((workdir / "results" / "benchmarks" / "train").glob("*.tsv")):
        with tsv.open() as f:
            trainings[tsv.stem] = float(next(csv.DictReader(f, delimiter="\t"))["s"])
    threads = sorted(set(re.findall(r"^\s+threads: (\d+)$", proc.stdout + proc.stderr, re.M)))
    # Snakemake omits "threads:" for one-thread jobs.
    return {"cores": cores, "wall": wall, "trainings": trainings, "threads": threads or ["1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configfile", help="an extra config over config.yaml (default: none)")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="usseg-cores-"))
    rows = [run(c, work, args.configfile) for c in args.cores]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    print("| --cores | wall time | training threads | training jobs (s each) |")
    print("|---|---|---|---|")
    for r in rows:
        jobs = ", ".join(f"{k} {v:.1f}" for k, v in r["trainings"].items())
        print(f"| {r['cores']} | {r['wall']:.1f} s | {', '.join(r['threads'])} | {jobs} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
