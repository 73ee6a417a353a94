#!/usr/bin/env bash
# Runs once inside the fresh conda environment (Snakemake post-deploy script), in the
# workflow's working directory: installs affectflow and builds its C++ extension.
#
# affectflow.yaml (generated from pyproject.toml by tools/gen_env.py) already holds every
# runtime dependency at the version `make` installs, the extension's build requirements
# (setuptools, pybind11) and a C++ compiler (conda-forge's cxx-compiler, activated here).
#  - No --no-deps: pip checks affectflow's declared dependencies against the environment and
#    installs nothing while affectflow.yaml is current (tests/test_env.py checks that it is);
#    were it stale, pip fetches what is missing instead of leaving a broken environment.
#  - --no-build-isolation: build with the environment's pinned setuptools and pybind11 (an
#    isolated build would download unpinned ones).
#  - dlib's headers: setup.py takes them from $DLIB_SOURCE_DIR if set, else from dlib's source
#    distribution, which it downloads (pip download) into $source_dir/.deps/ -- the same dlib
#    release as the environment's dlib-bin, as in `make`. pkg-config is confined to this
#    environment (which has no dlib-1), so a host's Debian libdlib-dev, another dlib release,
#    is not picked up.
set -euo pipefail
source_dir="${AFFECTFLOW_SOURCE:-$PWD}"
if [ ! -f "$source_dir/setup.py" ]; then
  echo "affectflow post-deploy: no setup.py in $source_dir; set AFFECTFLOW_SOURCE to the affectflow checkout" >&2
  exit 1
fi
if [ -n "${CONDA_PREFIX:-}" ]; then
  export PKG_CONFIG_LIBDIR="$CONDA_PREFIX/lib/pkgconfig:$CONDA_PREFIX/share/pkgconfig"
  unset PKG_CONFIG_PATH
fi
python -m pip install --no-build-isolation "$source_dir"
# The extension, and the modules `affectflow corpus synth` needs (dlib-bin, scikit-image).
python -c "import affectflow._native, dlib, skimage"
