#!/usr/bin/env bash
# Distributed training with torchrun on one or more nodes.
#
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py options ...]
#
# NPROC processes per node (one per GPU; on a CPU-only machine they use the gloo backend,
# see docs/get_started.md). Environment (as mmpretrain's script):
#   NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT or MASTER_PORT (29500),
#   PYTHON (python): the interpreter that runs torch.distributed.run (= torchrun).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [tools/train.py options ...]" >&2
    exit 2
fi

CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$TOOLS_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
