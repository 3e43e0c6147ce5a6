"""The whole default run from scratch: wall time and CPU seconds per --cores, and per demo size.

Each run copies the workflow (Snakefile, rules, scripts, src, config.yaml,
configs, profiles, envs, docs) into a fresh folder and runs
`snakemake --cores N report` there from scratch (demo dataset included). It
prints one row per run: wall time, CPU seconds of Snakemake and every job
(user + system, `resource.getrusage` of the child processes, which CPU load
from other programs inflates far less than wall time), the largest memory of
one process, the images in the manifest and the CPU seconds per 1,000 images.

With several sizes it also prints the least-squares cost of 1,000 more images and each rule's CPU per size.
The demo sizes differ in resolution as well as in images (tiny 64 x 64, small 160 x 160, full 450 x 460):
usseg trains at the experiments' image_size, so its work follows the image count, while the nnU-Net
reference plans its network from the source size and grows with the pixels (docs/benchmarks.md).

Then, for the last run, where the CPU went: per rule, the jobs and their CPU
seconds (Snakemake's benchmark files, results/benchmarks/), and the share the
jobs' start-up took: each job pays the import of its script's modules (torch,
MONAI, ...), measured here once per script by running only its import lines.

    .venv/bin/python benchmarks/workflow_cores.py                       # --cores 1, 2 and 8, small demo
    .venv/bin/python benchmarks/workflow_cores.py --cores 2 --sizes tiny small full   # the scaling table
    .venv/bin/python benchmarks/workflow_cores.py --configfile configs/tiny.yaml --cores 2   # a quick check
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
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


def children_cpu() -> tuple[float, int]:
    """(user + system CPU seconds, largest RSS in MB) of the waited-for child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, int(r.ru_maxrss / 1024)


def run(cores: int, size: str, work: Path, configfile: str | None) -> dict:
    workdir = work / f"{size}_cores{cores}"
    workdir.mkdir(parents=True)
    copy_workflow(workdir)
    env = dict(os.environ, PYTHONPATH=str(workdir / "src"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "report", "--config", f"demo={{size: {size}}}"]
    if configfile:
        cmd += ["--configfile", configfile]
    cpu0, _ = children_cpu()
    loads = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        time.sleep(5)
        loads.append(os.getloadavg()[0])
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode != 0:
        sys.exit(f"snakemake --cores {cores} failed:\n{out[-4000:]}")
    cpu1, maxrss = children_cpu()
    with open(workdir / "results" / "manifest.csv") as fh:
        images = sum(1 for _ in csv.DictReader(fh))
    return {"cores": cores, "size": size, "wall": wall, "cpu": cpu1 - cpu0, "maxrss": maxrss, "images": images,
            "load": sum(loads) / len(loads), "workdir": workdir}


def rule_costs(workdir: Path) -> dict[str, list[float]]:
    """Rule -> the CPU seconds of each of its jobs, from Snakemake's benchmark files (rule from the path)."""
    costs: dict[str, list[float]] = defaultdict(list)
    bench = workdir / "results" / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        rel = tsv.relative_to(bench).parts
        rule = rel[0] if len(rel) > 1 else tsv.stem
        if rel[0] == "gap" and len(rel) > 2:  # gap/<rule>/<wildcards>.tsv
            rule = rel[1] if rel[1].startswith("gap_") else f"gap_{rel[1]}"
        with tsv.open() as fh:
            costs[rule].append(float(next(csv.DictReader(fh, delimiter="\t"))["cpu_time"]))
    return costs


def import_cpu(script: Path, extra: str = "") -> float:
    """CPU seconds a fresh interpreter spends on the script's import lines alone (its start-up), and on
    importing `extra` (a module the script's jobs load later, e.g. a network trainer's MONAI)."""
    tree = ast.parse(script.read_text())
    imports = "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom))
    if extra:
        imports += f"\nimport {extra}"
    probe = ("import resource, time\n" + imports + "\nr = resource.getrusage(resource.RUSAGE_SELF)\n"
             "print(r.ru_utime + r.ru_stime)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    return float(out.stdout.strip().splitlines()[-1])


RULE_SCRIPTS = {  # rules whose benchmark file name is not their script's
    "sanity": "sanity_training", "gap_loso_arm": "gap_arm",
}
# What the jobs of a rule load after their imports: a network's trainer and MONAI (counted for every job
# of the rule, the forest's too, which loads neither: an upper bound).
LATE_IMPORTS = {"train": "usseg.training.loop", "sanity": "usseg.training.loop", "evaluate": "monai.networks.nets",
                "gap_arm": "usseg.training.loop", "gap_loso_arm": "usseg.training.loop",
                "nnunet_train_predict": "nnunetv2.training.nnUNetTrainer.nnUNetTrainer"}


def print_breakdown(r: dict) -> None:
    costs = rule_costs(r["workdir"])
    total = sum(sum(v) for v in costs.values())
    startup_cpu = {}
    print(f"\nWhere the CPU went ({r['size']} demo, --cores {r['cores']}; jobs' CPU from results/benchmarks):\n")
    print("| rule | jobs | CPU s | share | start-up CPU s per job (imports) |")
    print("|---|---|---|---|---|")
    startup_total = 0.0
    for rule, values in sorted(costs.items(), key=lambda kv: -sum(kv[1])):
        script = REPO / "scripts" / f"{RULE_SCRIPTS.get(rule, rule)}.py"
        per_job = import_cpu(script, LATE_IMPORTS.get(rule, "")) if script.is_file() else float("nan")
        startup_cpu[rule] = per_job
        if per_job == per_job:
            startup_total += per_job * len(values)
        print(f"| {rule} | {len(values)} | {sum(values):.1f} | {sum(values) / total:.0%} | {per_job:.1f} |")
    print(f"\nJobs' CPU {total:.1f} s, of which start-up about {startup_total:.1f} s ({startup_total / total:.0%}). "
          f"The rest of the run's {r['cpu']:.1f} CPU s: Snakemake itself (its start-up, the DAG, each job's "
          "launch) and the jobs without a benchmark file (manifest, split, label_round_trip, report, "
          "resolved_config and the gap study's small steps).")


def print_scaling(rows: list[dict]) -> None:
    """The cost of 1,000 more images: the least-squares line of CPU seconds (and wall time) over the images,
    one point per size at the same --cores. A run's CPU divided by its images mixes the fixed costs
    (start-up, the checks, the reference) into the rate; the slope does not."""
    for cores in sorted({r["cores"] for r in rows}):
        points = [r for r in rows if r["cores"] == cores]
        if len({r["images"] for r in points}) < 2:
            continue
        print(f"\nScaling at --cores {cores} ({len(points)} sizes), least squares over the images:")
        for key, unit in (("cpu", "CPU s"), ("wall", "wall s")):
            slope, intercept = fit_line([r["images"] for r in points], [r[key] for r in points])
            print(f"  {unit}: {intercept:.0f} fixed + {1000 * slope:.0f} per 1,000 images")


def print_rules_per_size(rows: list[dict]) -> None:
    """Per rule, its jobs' CPU seconds in each run of several sizes: which work grows with the data."""
    if len({r["size"] for r in rows}) < 2:
        return
    costs = {f"{r['size']} --cores {r['cores']}": rule_costs(r["workdir"]) for r in rows}
    last = list(costs.values())[-1]
    rules = sorted({rule for c in costs.values() for rule in c}, key=lambda rule: -sum(last.get(rule, [0.0])))
    print("\nPer rule and size, the jobs' CPU s (benchmark files):\n")
    print("| rule | " + " | ".join(costs) + " |")
    print("|---|" + "---|" * len(costs))
    for rule in rules:
        print(f"| {rule} | " + " | ".join(f"{sum(c.get(rule, [])):.1f}" for c in costs.values()) + " |")
    print("| all jobs with a benchmark file | " + " | ".join(f"{sum(sum(v) for v in c.values()):.1f}"
                                                           for c in costs.values()) + " |")


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through the points."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return slope, my - slope * mx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--sizes", nargs="+", default=["small"], choices=["tiny", "small", "full"])
    parser.add_argument("--configfile", help="an extra config over config.yaml (default: none)")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="usseg-cores-"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n")
    print("| demo | --cores | wall | CPU s (user + system) | largest process so far | images | CPU s per 1,000 images "
          "| load average during the run |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for size in args.sizes:
        for cores in args.cores:
            r = run(cores, size, work, args.configfile)
            rows.append(r)
            # One row as each run ends: a full-size run takes long, and a stopped benchmark keeps what it measured.
            minutes, seconds = divmod(r["wall"], 60)
            print(f"| {r['size']} | {r['cores']} | {int(minutes)} min {seconds:.0f} s | {r['cpu']:.0f} "
                  f"| {r['maxrss']} MB | {r['images']} | {1000 * r['cpu'] / r['images']:.0f} | {r['load']:.1f} |",
                  flush=True)
    print_scaling(rows)
    print_rules_per_size(rows)
    print_breakdown(rows[-1])
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
