#!/usr/bin/env bash
# The project's test command (README "Quick start", step 2; CI runs exactly this).
# Fast suite: everything but tests marked `slow`. `bash tools/run_tests.sh -m slow` runs those.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m pytest tests projects -q -p no:cacheprovider "$@"
