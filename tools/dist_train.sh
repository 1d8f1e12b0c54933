#!/usr/bin/env bash
# Data-parallel training on one machine: NPROC processes started by torchrun, one per GPU (NCCL),
# or on a machine without GPUs NPROC CPU processes (gloo). The batch size in the config is per process.
#   tools/dist_train.sh CONFIG NPROC [tools/train.py arguments...]
#   e.g. tools/dist_train.sh configs/crnn_vgg_bilstm_ctc.py 4 --data /data/mjsynth_lmdb --auto-scale-lr
# Several nodes: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=first-node tools/dist_train.sh CONFIG GPUS_PER_NODE
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=python3
# Each process gets an equal share of the cores unless told otherwise (torchrun would set 1 thread).
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  export OMP_NUM_THREADS=$(( $(nproc) / NPROC > 0 ? $(nproc) / NPROC : 1 ))
fi
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" \
  "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
