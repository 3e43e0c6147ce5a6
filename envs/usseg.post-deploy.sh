#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (envs/usseg.yaml), from
# Snakemake's working directory, after creating it: installs PyTorch and the
# usseg checkout there. Snakemake runs a copy of this file from .snakemake/conda/,
# so the checkout is found from the working directory, not from this file.
set -euo pipefail
if [ ! -f tools/pip-install.sh ] || [ ! -f Snakefile ]; then
  echo "usseg conda environment: $(pwd) is not the usseg repository root." >&2
  echo "Run snakemake --sdm conda from the folder that holds the Snakefile." >&2
  exit 1
fi
bash tools/pip-install.sh python
