#!/usr/bin/env bash
# `make demo`: the whole pipeline on the embedded synthetic corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
affectflow corpus synth --out data/synthetic --seed 0
affectflow corpus check data/synthetic
echo "demo finished in $(( $(date +%s) - start )) s"
