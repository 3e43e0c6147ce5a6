#!/usr/bin/env python3
"""Install the `nnunet` extra (nnU-Net v2) without torchvision and timm, keeping the installed torch.

    python tools/install-nnunet.py [PYTHON]      # default: .venv/bin/python

Why: nnunetv2 pulls torchvision through timm. On the CPU build of PyTorch the
torchvision wheel from PyPI is a CUDA build that fails to load ("operator
torchvision::nms does not exist"), and an unconstrained install may replace
torch itself. usseg uses nnU-Net's dataset check, planning, preprocessing,
2D U-Net training and prediction, none of which needs torchvision: only
nnU-Net's Primus (transformer) trainers import timm. So this script asks pip
for the full resolution of the extra with torch pinned to the installed
version, drops timm and torchvision and whatever only they need, and installs
the rest, exactly pinned, with --no-deps. Nothing that imports torchvision is
installed, so nothing can break the environment.

With a torchvision that matches your torch (a CUDA build from PyPI, or
PyTorch's own CPU wheel index) the plain `pip install -e ".[nnunet]"` works
too; see docs/pipeline-checks.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {"timm", "torchvision"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0])


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else str(REPO / ".venv" / "bin" / "python")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["nnunet"]
    torch_version = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(f"torch=={torch_version}\n")
        report = Path(tmp) / "report.json"
        subprocess.run(
            # Without --ignore-installed: what is installed stays as it is (other
            # tools share the environment), and is not walked into below.
            [python, "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report),
             "-c", str(constraints), *extra],
            check=True,
        )
        resolved = {
            _norm(item["metadata"]["name"]): item["metadata"] for item in json.loads(report.read_text())["install"]
        }
    # Walk the requirement graph from the extra's packages, never through a skipped one.
    todo = [_requirement_name(r) for r in extra]
    keep: set[str] = set()
    while todo:
        name = todo.pop()
        if name in keep or name in SKIPPED or name not in resolved:
            continue  # skipped, or installed already (torch among them)
        keep.add(name)
        todo += [_requirement_name(r) for r in resolved[name].get("requires_dist") or [] if "extra ==" not in r]
    pins = sorted(f"{resolved[n]['name']}=={resolved[n]['version']}" for n in keep)
    left_out = sorted(set(resolved) - keep)
    print(f"installing {len(pins)} packages with torch {torch_version} kept; left out: {', '.join(left_out) or 'none'}")
    if pins:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", *pins], check=True)
    subprocess.run(
        [python, "-c", "import nnunetv2.experiment_planning.verify_dataset_integrity, "
         "nnunetv2.training.nnUNetTrainer.nnUNetTrainer, nnunetv2.inference.predict_from_raw_data"],
        check=True,
    )
    print("nnunetv2 imports; nnU-Net's Primus trainers (which need timm) are not available")
    return 0


if __name__ == "__main__":
    sys.exit(main())
