#!/usr/bin/env bash
# The first run on a GPU machine, in one command: each check prints PASS or FAIL, the exit code is
# the number of failures. Paper CRNN on the embedded synthetic words, small validation and test sets.
#   tools/gpu_smoke.sh [WORK_DIR]          (default: work_dirs/gpu_smoke; about 5 minutes on one GPU)
# Checks:
#   1. single GPU, 50 iterations, fp32, validation and test (curves.png, worst_errors.png)
#   2. resume: 25 iterations, then --resume to 50 (the data position restored without loading)
#   3. --amp, 50 iterations: CUDA autocast with dynamic loss scaling, the loss finite
#   4. 2 GPUs under torchrun (NCCL), 50 iterations, validation and test; skipped with fewer GPUs
# Logs: WORK_DIR/<check>.log. See docs/distributed.md for what each check covers.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
[ -x "$PYTHON" ] || PYTHON=python3
WORK=${1:-work_dirs/gpu_smoke}
CONFIG="$ROOT/configs/crnn_vgg_bilstm_ctc.py"
mkdir -p "$WORK"
FAILED=0
OPTIONS=(train_cfg.val_interval=50 default_hooks.checkpoint.interval=25 default_hooks.logger.interval=10
         val_dataloader.dataset.length=256 test_dataloader.dataset.length=256)

report() {  # NAME STATUS DETAIL
  printf '%-34s %s  %s\n' "$1" "$2" "$3"
  [ "$2" = PASS ] || [ "$2" = SKIP ] || FAILED=$((FAILED + 1))
}

finite_loss() {  # LOG: the last logged training loss is a finite number
  grep -o ' loss: [^ ]*' "$1" | tail -n 1 | grep -Eq 'loss: [0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$'
}

train() {  # NAME MAX_ITERS [train.py arguments]: runs tools/train.py, output to WORK/NAME.log
  local name=$1 iters=$2
  shift 2
  "$PYTHON" "$ROOT/tools/train.py" "$CONFIG" --schedule paper --work-dir "$WORK/$name" "$@" \
    --cfg-options train_cfg.max_iters="$iters" "${OPTIONS[@]}" >"$WORK/$name.log" 2>&1
}

GPUS=$("$PYTHON" - <<'EOF'
import torch
print(torch.cuda.device_count() if torch.cuda.is_available() else 0)
EOF
)
"$PYTHON" - <<'EOF'
import torch
if torch.cuda.is_available():
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}: "
          f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, native bf16: "
          f"{torch.cuda.is_bf16_supported(including_emulation=False)}")
EOF
if [ "$GPUS" -lt 1 ]; then
  report "GPU present" FAIL "torch.cuda.is_available() is False: install a CUDA build of torch"
  exit "$FAILED"
fi

# 1. one GPU, fp32
if train single 50 && [ -f "$WORK/single/iter_50.pth" ] && [ -f "$WORK/single/curves.png" ] \
    && [ -f "$WORK/single/worst_errors.png" ] && finite_loss "$WORK/single.log"; then
  report "1 GPU, 50 iterations, val + test" PASS "$(grep -o 'word_acc: [0-9.]*' "$WORK/single.log" | tail -n 1)"
else
  report "1 GPU, 50 iterations, val + test" FAIL "see $WORK/single.log"
fi

# 2. resume
if train resume 25 --no-test && train resume 50 --no-test --resume \
    && grep -q "resumed the data at sample 1600 of the global order" "$WORK/resume.log" \
    && [ -f "$WORK/resume/iter_50.pth" ] && finite_loss "$WORK/resume.log"; then
  report "resume 25 -> 50" PASS "data position restored without loading"
else
  report "resume 25 -> 50" FAIL "see $WORK/resume.log (the first half's log is overwritten by the second)"
fi

# 3. mixed precision
if train amp 50 --no-test --amp && grep -q "mixed precision: CUDA AMP .* with dynamic loss scaling" "$WORK/amp.log" \
    && finite_loss "$WORK/amp.log"; then
  report "--amp, 50 iterations" PASS "$(grep -o 'CUDA AMP [a-z0-9]*' "$WORK/amp.log" | head -n 1), loss finite"
else
  report "--amp, 50 iterations" FAIL "see $WORK/amp.log"
fi

# 4. two GPUs, NCCL
if [ "$GPUS" -lt 2 ]; then
  report "2 GPUs (torchrun, NCCL)" SKIP "only $GPUS GPU"
elif PYTHON="$PYTHON" "$ROOT/tools/dist_train.sh" "$CONFIG" 2 --schedule paper --work-dir "$WORK/ddp" \
      --cfg-options train_cfg.max_iters=50 "${OPTIONS[@]}" >"$WORK/ddp.log" 2>&1 \
    && [ -f "$WORK/ddp/iter_50.pth" ] \
    && [ -f "$WORK/ddp/worst_errors.png" ] && finite_loss "$WORK/ddp.log"; then
  report "2 GPUs (torchrun, NCCL)" PASS "$(grep -o 'among [0-9]* test images' "$WORK/ddp.log" | tail -n 1)"
else
  report "2 GPUs (torchrun, NCCL)" FAIL "see $WORK/ddp.log"
fi

[ "$FAILED" -eq 0 ] && echo "gpu smoke test: PASS" || echo "gpu smoke test: FAIL ($FAILED check(s))"
exit "$FAILED"
