#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun and mmengine's pytorch launcher.
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Several nodes: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 bash tools/dist_train.sh CONFIG 8 ...
set -euo pipefail
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python )}
exec "$PY" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" --master_port="$PORT" --nproc_per_node="$GPUS" \
  "$REPO/tools/train.py" "$CONFIG" --launcher pytorch "$@"
