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
cat results/tables/table3.md
echo
python3 - <<'PY'
import json
s = json.load(open("results/figures/figure3_smoothness.json"))
for label, value in s["traces"].items():
    print(f"Figure 3 ({s['subject']}): {label}: mean |first difference| {value:.4f} "
          f"({s['ratio_to_first'][label]:.2f}x the CNN's)")
PY
echo
echo "Tables:  results/tables/table{1..5}.md (and .tsv)"
echo "Figures: results/figures/figure3.png, results/figures/training_curves.png"
echo "Report:  $(pwd)/results/report.html"
printf 'demo finished in %d min %02d s (wall time, %s cores)\n' $((elapsed / 60)) $((elapsed % 60)) "$cores"
