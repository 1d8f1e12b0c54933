#!/usr/bin/env bash
# Data-parallel training on a Slurm cluster: srun starts one task per GPU; each task trains with
# mmengine's slurm launcher (NCCL on GPUs; gloo on CPU-only partitions).
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [tools/train.py arguments...]
#   GPUS=16 GPUS_PER_NODE=8 tools/slurm_train.sh gpu crnn configs/crnn_vgg_bilstm_ctc.py --data /data/mjsynth_lmdb
# GPUS (default 8) tasks in all, GPUS_PER_NODE (default 8) per node; CPUS_PER_TASK (default 5);
# SRUN_ARGS for anything else srun should get. CPU partitions: GPUS=0 TASKS=4 TASKS_PER_NODE=2.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS=${TASKS:-$GPUS}
TASKS_PER_NODE=${TASKS_PER_NODE:-$GPUS_PER_NODE}
GRES=()
[ "$GPUS" -gt 0 ] && GRES=(--gres="gpu:$GPUS_PER_NODE")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=python3
# shellcheck disable=SC2086  # SRUN_ARGS is a list of arguments
exec srun -p "$PARTITION" --job-name="$JOB_NAME" "${GRES[@]}" \
  --ntasks="$TASKS" --ntasks-per-node="$TASKS_PER_NODE" --cpus-per-task="${CPUS_PER_TASK:-5}" \
  --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "$@"
