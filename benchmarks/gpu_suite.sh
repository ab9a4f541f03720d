#!/usr/bin/env bash
# The benchmark suite of issue 12 in one unattended run (under 8 minutes on one H100/H200):
#   1. train step, ViT-B/16 224 px, bf16 autocast (--amp), SDPA in LGDEA's lesion-query neck,
#      batch 128: LGDEA and CLIP-on-evidence
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
#   bash benchmarks/gpu_suite.sh [--dry-run] --plan      # print the commands, run nothing
# DIR defaults to work_dirs/gpu_suite (full) or work_dirs/gpu_suite_dry (dry run).
# PYTHON picks the interpreter (default: python on PATH). --plan prints one line per command,
# "+ " and the shell-quoted words, and skips the GPU check (tests/test_benchmarks_suite.py runs
# the planned commands in-process).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python}

MODE=full
OUT=
PLAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|--tiny) MODE=dry-run; shift ;;
    --plan) PLAN=1; shift ;;
    --out) [ $# -ge 2 ] || { echo "gpu_suite.sh: --out needs a directory" >&2; exit 2; }
           OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_suite.sh: unknown option $1 (known: --dry-run, --tiny, --plan, --out DIR)" >&2
       exit 2 ;;
  esac
done
if [ -z "$OUT" ]; then
  if [ "$MODE" = full ]; then OUT=work_dirs/gpu_suite; else OUT=work_dirs/gpu_suite_dry; fi
fi
if [ "$PLAN" = 0 ]; then mkdir -p "$OUT"; fi

# run CMD...: run it, or with --plan print it ("+ " and the shell-quoted words)
run() {
  if [ "$PLAN" = 1 ]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
say() { if [ "$PLAN" = 0 ]; then echo "$@"; fi; }

if [ "$MODE" = full ] && [ "$PLAN" = 0 ]; then
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_suite.sh: torch sees no CUDA GPU; run on a GPU machine, or pass --dry-run" >&2
    exit 1
  fi
fi
if [ "$MODE" = full ]; then
  STEP=(--settings vitb224 --batch 128 --device cuda --amp --attention-impl sdpa --warmup 3
        --rounds 3 --steps 5)
  DATA=(--num-images 16 --repeats 3)
  GRAPH=(--sizes 10000 100000 400000 --queries 20000 --batch-sizes 128 1024 4096
         --device cuda)
else
  STEP=(--settings tiny64 --batch 4 --device cpu --amp --attention-impl sdpa --warmup 0
        --rounds 1 --steps 1 --threads 1)
  DATA=(--num-images 2 --height 400 --width 320 --max-size 128 --repeats 1)
  GRAPH=(--sizes 1000 --queries 100 --batch-sizes 32 --repeats 1 --threads 1)
fi

say "== [1/3] train step ($MODE)"
run "$PY" benchmarks/bench_lgdea_step.py --methods lgdea "${STEP[@]}" --out "$OUT/step.json"
say "== [2/3] data loading"
run "$PY" benchmarks/bench_data_loading.py "${DATA[@]}" --step-json "$OUT/step.json" \
  --step-method lgdea --out "$OUT/data.json"
say "== [3/3] evidence graph"
run "$PY" benchmarks/bench_evidence_graph.py "${GRAPH[@]}" --out "$OUT/graph.json"
say "== report"
run "$PY" benchmarks/suite_report.py "$OUT" --mode "$MODE"
say "gpu_suite.sh: wrote $OUT/suite.json and $OUT/suite.md"
