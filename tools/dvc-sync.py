#!/usr/bin/env python3
"""Keep DVC in step with the Snakemake workflow (see docs/dvc.md).

    python tools/dvc-sync.py               # regenerate dvc.yaml from the Snakemake DAG
    python tools/dvc-sync.py --check       # exit 1 (and show the diff) if dvc.yaml is stale
    python tools/dvc-sync.py commit        # after `snakemake report`: record the results in dvc.lock
    python tools/dvc-sync.py pull [ARGS]   # dvc pull ARGS, then mark the results up to date for Snakemake
    python tools/dvc-sync.py touch         # the same after a `dvc checkout` you ran yourself

Run it from the repository root (or pass --repo).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from usseg.dvc_stages import DvcStagesError, after_checkout, check, commit, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repo", type=Path, default=Path.cwd(), help="workflow root (default: the current folder)"
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare dvc.yaml with the generated one"
    )
    parser.add_argument(
        "command", nargs="?", choices=["generate", "commit", "pull", "touch"], default="generate"
    )
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER, help="extra arguments for `dvc pull`")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if not (repo / "Snakefile").is_file():
        parser.error(f"{repo} has no Snakefile; run from the repository root or pass --repo")
    try:
        if args.command == "generate":
            if args.check:
                diff = check(repo)
                if diff:
                    sys.stdout.write(diff)
                    print(
                        "dvc.yaml is out of date: run `python tools/dvc-sync.py`", file=sys.stderr
                    )
                    return 1
                print("dvc.yaml is up to date")
                return 0
            path = write(repo)
            print(f"wrote {path}")
            return 0
        if args.command == "commit":
            commit(repo)
            print("results recorded in dvc.lock: `git add dvc.lock`, commit, then `dvc push`")
            return 0
        if args.command == "pull":
            proc = subprocess.run(
                [sys.executable, "-m", "dvc", "pull", *args.dvc_args], cwd=repo, check=False
            )
            if proc.returncode != 0:
                return proc.returncode
        after_checkout(repo)
        print("results match dvc.lock; their file times are now in Snakemake's DAG order")
        return 0
    except DvcStagesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
