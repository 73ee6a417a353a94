#!/usr/bin/env bash
# `make demo`: the whole workflow on the embedded synthetic corpus (config/config.yaml),
# on 2 cores: synthesize, align, train the 4 CNN variants, extract features, train the
# RNN ablation grid, evaluate, then Tables 1-5, Figure 3 and the HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
cores="${CORES:-2}"
start=$(date +%s)
snakemake --cores "$cores"
snakemake --report results/report.html
elapsed=$(( $(date +%s) - start ))
echo
cat results/tables/table1.md
echo
echo "Tables:  results/tables/table{1..5}.md (and .tsv)"
echo "Figures: results/figures/figure3.png, results/figures/training_curves.png"
echo "Report:  $(pwd)/results/report.html"
printf 'demo finished in %d min %02d s (wall time, %s cores)\n' $((elapsed / 60)) $((elapsed % 60)) "$cores"
