#!/usr/bin/env bash
# Runs once inside the fresh conda environment (Snakemake post-deploy script), in the
# workflow's working directory: installs affectflow and builds its C++ extension.
set -euo pipefail
source_dir="${AFFECTFLOW_SOURCE:-$PWD}"
if [ ! -f "$source_dir/setup.py" ]; then
  echo "affectflow post-deploy: no setup.py in $source_dir; set AFFECTFLOW_SOURCE to the affectflow checkout" >&2
  exit 1
fi
python -m pip install --no-deps --no-build-isolation "$source_dir"
python -c "import affectflow._native"
