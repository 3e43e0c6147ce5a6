# Two entry points: `make report` and `make test`. Both create .venv and
# install everything first (PyTorch, then usseg and its dependencies).
# The PyTorch build (CPU or which CUDA): see "GPUs" in the README.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
# The PyTorch build: TORCH_SPEC (default torch==2.13.0, set in
# tools/pip-install.sh) and TORCH_PIP_ARGS, extra pip options for the torch
# install such as --index-url of a CUDA build. Both reach the script through
# the environment when given on make's command line.

BIN := $(VENV)/bin
STAMP := $(VENV)/.usseg-installed

.PHONY: install system-deps report test lint clean dvc-commit dvc-pull

$(STAMP): pyproject.toml tools/pip-install.sh tools/install-nnunet.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	bash tools/pip-install.sh $(BIN)/python '[dev]'
	# The nnunet extra (the report's nnU-Net reference) without torchvision,
	# which would not load beside a CPU build of torch (docs/pipeline-checks.md).
	$(BIN)/python tools/install-nnunet.py $(BIN)/python
	# The page `dvc plots show` fills, with Vega inline: it draws offline (docs/dvc.md).
	$(BIN)/python tools/dvc-sync.py plots-page
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests need: Chromium (report rendering test) and a
# single-node SLURM (cluster test). Installs only what is missing; needs root.
system-deps:
	bash tools/install-system-deps.sh

report: install
	$(BIN)/snakemake --cores $(CORES) report

test: install system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

# DVC round trip (docs/dvc.md): record a finished run in dvc.lock; after a
# clone, fetch the results and mark them current for Snakemake.
dvc-commit: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tools/dvc-sync.py commit

dvc-pull: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tools/dvc-sync.py pull

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/ruff check src tests benchmarks scripts tools

clean:
	rm -rf results data/demo .snakemake
