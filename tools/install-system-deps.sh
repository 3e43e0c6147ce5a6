#!/usr/bin/env bash
# Install the Debian packages the test suite and the docs tools need, if missing:
#   chromium       headless browser for the report rendering test
#   slurmctld slurmd slurm-client munge   a single-node SLURM for the cluster test
#   graphviz       `dot`, which draws docs/img/rulegraph.svg (tools/architecture.py)
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages present: chromium, slurm, munge, graphviz"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${need[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${need[*]}" >&2
  echo "(the browser and SLURM tests skip without them outside CI, and fail in CI)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
