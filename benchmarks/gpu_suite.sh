#!/usr/bin/env bash
# The benchmark suite of issue 12 in one unattended run (under 8 minutes on one H100/H200):
#   1. train step, ViT-B/16 224 px, bf16 autocast, batch 128: LGDEA and CLIP-on-evidence
#      (bench_lgdea_step.py; ratio target LGDEA <= 1.10x CLIP-ev; MFU from the ThroughputHook
#      peak table),
#   2. data loading on MIMIC-size JPEGs, raw vs preprocess_images.py, with LGDEA's measured step
#      time (bench_data_loading.py),
#   3. evidence graph: in-batch (on the GPU) vs faiss flat / IVF at N = 10k, 100k, 400k
#      (bench_evidence_graph.py),
# then benchmarks/suite_report.py writes OUT/suite.json and OUT/suite.md.
#
# Usage (after the README's install, from any directory):
#   bash benchmarks/gpu_suite.sh [--out DIR]             # needs a CUDA GPU
#   bash benchmarks/gpu_suite.sh --dry-run [--out DIR]   # every step at tiny sizes on the CPU
# DIR defaults to work_dirs/gpu_suite (full) or work_dirs/gpu_suite_dry (dry run).
# PYTHON picks the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python}

MODE=full
OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|--tiny) MODE=dry-run; shift ;;
    --out) [ $# -ge 2 ] || { echo "gpu_suite.sh: --out needs a directory" >&2; exit 2; }
           OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_suite.sh: unknown option $1 (known: --dry-run, --tiny, --out DIR)" >&2; exit 2 ;;
  esac
done
if [ -z "$OUT" ]; then
  if [ "$MODE" = full ]; then OUT=work_dirs/gpu_suite; else OUT=work_dirs/gpu_suite_dry; fi
fi
mkdir -p "$OUT"

if [ "$MODE" = full ]; then
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_suite.sh: torch sees no CUDA GPU; run on a GPU machine, or pass --dry-run" >&2
    exit 1
  fi
  STEP=(--settings vitb224 --batch 128 --device cuda --amp --warmup 3 --rounds 3 --steps 5)
  DATA=(--num-images 16 --repeats 3)
  GRAPH=(--sizes 10000 100000 400000 --queries 20000 --batch-sizes 128 1024 4096
         --device cuda)
else
  STEP=(--settings tiny64 --batch 4 --device cpu --warmup 0 --rounds 1 --steps 1 --threads 1)
  DATA=(--num-images 2 --height 400 --width 320 --max-size 128 --repeats 1)
  GRAPH=(--sizes 1000 --queries 100 --batch-sizes 32 --repeats 1 --threads 1)
fi

echo "== [1/3] train step ($MODE)"
"$PY" benchmarks/bench_lgdea_step.py --methods lgdea "${STEP[@]}" --out "$OUT/step.json"
echo "== [2/3] data loading"
"$PY" benchmarks/bench_data_loading.py "${DATA[@]}" --step-json "$OUT/step.json" \
  --step-method lgdea --out "$OUT/data.json"
echo "== [3/3] evidence graph"
"$PY" benchmarks/bench_evidence_graph.py "${GRAPH[@]}" --out "$OUT/graph.json"
echo "== report"
"$PY" benchmarks/suite_report.py "$OUT" --mode "$MODE"
echo "gpu_suite.sh: wrote $OUT/suite.json and $OUT/suite.md"
