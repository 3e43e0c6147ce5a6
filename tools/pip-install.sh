#!/usr/bin/env bash
# Installs usseg into the Python environment of PYTHON: PyTorch first, then the
# package (editable) with its dependencies. One install recipe for the two
# places that build an environment: `make` (.venv) and the conda post-deploy
# script (envs/usseg.post-deploy.sh).
#
#   bash tools/pip-install.sh PYTHON [EXTRAS]      e.g. EXTRAS=[dev]
#
# TORCH_SPEC (default torch==2.13.0) and TORCH_PIP_ARGS (e.g. --index-url of a
# CUDA wheel index) choose the PyTorch build. torch goes first because an
# unpinned torch, pulled in as a dependency, is the newest multi-GB CUDA build;
# once 2.13.0 is there, usseg's range "torch>=2.2" keeps it.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash tools/pip-install.sh PYTHON [EXTRAS]" >&2
  exit 2
fi
python="$1"
extras="${2:-}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
# shellcheck disable=SC2086  # TORCH_PIP_ARGS holds several words on purpose
"$python" -m pip install --quiet ${TORCH_PIP_ARGS:-} "$torch_spec"
"$python" -m pip install --quiet -e "$repo$extras"
