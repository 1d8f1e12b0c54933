"""Optimizer wrappers that skip a step whose loss is not finite, and mixed precision: the CPU
autocast wrapper, whether bf16 runs natively here, and the choice of wrapper for ``--amp``.

A NaN or infinite loss back-propagated once turns every weight into NaN. The model logs which
samples gave it (see ``Recognizer.loss``); :class:`SkipNonFiniteLoss` then leaves the weights and
the optimizer state alone for that step. Under DDP all ranks agree (one all-reduce of a flag), so
either every rank steps or none does -- a rank that skipped alone would leave the others waiting
in the gradient all-reduce.
"""
from __future__ import annotations

import contextlib
import logging

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper



class NonFiniteLossError(RuntimeError):
    pass


def finite_everywhere(loss: torch.Tensor) -> bool:
    """Whether the loss is finite on this rank and, in distributed training, on every rank."""
    flag = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


class SkipNonFiniteLoss:
    """Mixin for an mmengine OptimWrapper: ``update_params`` skips backward and step when the loss
    is NaN or infinite (on any rank), logs it, and counts it. ``max_consecutive_skips`` in a row
    mean the weights or the learning rate have diverged: training stops with an error."""

    def __init__(self, *args, max_consecutive_skips: int = 20, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self._skips_in_a_row = 0

    def update_params(self, loss: torch.Tensor, step_kwargs=None, zero_kwargs=None) -> None:
        if finite_everywhere(loss):
            self._skips_in_a_row = 0
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self.skipped_steps += 1
        self._skips_in_a_row += 1
        self._inner_count += 1  # keeps gradient accumulation in step with the iterations
        self.zero_grad(**(zero_kwargs or {}))
        print_log(f"skipped an optimizer step: the loss is {float(loss.detach()):.4g} (on this or another rank; the "
                  f"samples are logged above); {self.skipped_steps} step(s) skipped so far",
                  logger="current", level=logging.WARNING)
        if self._skips_in_a_row >= self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"the loss was not finite for {self._skips_in_a_row} steps in a row: the weights or the learning "
                "rate have diverged. Lower the learning rate, add clip_grad to the optim_wrapper, or resume from an "
                "earlier checkpoint")


class GuardedOptimWrapper(SkipNonFiniteLoss, OptimWrapper):
    """mmengine's OptimWrapper (fp32) that skips steps with a non-finite loss."""


class GuardedAmpOptimWrapper(SkipNonFiniteLoss, AmpOptimWrapper):
    """mmengine's AmpOptimWrapper (CUDA: fp16 with dynamic loss scaling, or bf16) that also skips
    steps with a non-finite loss. CUDA only, untested on this CPU-only machine."""


class AutocastOptimWrapper(SkipNonFiniteLoss, OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` (bf16 by default) on any device, CPU included.

    mmengine's AmpOptimWrapper (fp16/bf16 with loss scaling) only runs on accelerators; bf16 needs
    no loss scaling, so on a CPU with bf16 support this is the mixed-precision path. The CTC head
    computes its loss in fp32 regardless. Where bf16 has no fast kernels (see :func:`native_bf16`)
    the wrapper runs in fp32 and says so once in the log. A step with a non-finite loss is skipped
    (:class:`~ocrframe.optim.SkipNonFiniteLoss`).
    """

    def __init__(self, dtype: str = "bfloat16", **kwargs):
        super().__init__(**kwargs)
        self.dtype = getattr(torch, dtype)
        self._enabled: bool | None = None

    @contextlib.contextmanager
    def optim_context(self, model):
        device = next(model.parameters()).device.type
        if self._enabled is None:
            self._enabled = device != "cuda" and (self.dtype != torch.bfloat16 or native_bf16(device))
            if device == "cuda":
                # cuDNN runs LSTMs in fp16 under any autocast dtype: unscaled, their gradients underflow
                print_log("AutocastOptimWrapper has no loss scaling, which CUDA autocast needs: training in fp32; "
                          "for mixed precision on a GPU use tools/train.py --amp (GuardedAmpOptimWrapper)",
                          logger="current", level=logging.WARNING)
            elif not self._enabled:
                print_log(f"this {device.upper()} has no fast bf16 kernels: training in fp32 instead of bf16 "
                          "autocast, which would be slower here", logger="current", level=logging.WARNING)
        with super().optim_context(model), torch.autocast(device, dtype=self.dtype, enabled=self._enabled):
            yield


def native_bf16(device: str) -> bool:
    """Whether bf16 runs on fast kernels here. CPUs without AVX-512 BF16 / AMX make oneDNN refuse
    bf16 convolutions, and PyTorch falls back to a reference path many times slower than fp32.
    oneDNN's own check counts any AVX-512 x86 CPU (Skylake, Cascade Lake), which only emulates bf16,
    so on x86 the instructions themselves are asked for. GPUs before Ampere (V100, T4) emulate bf16,
    and ``is_bf16_supported()`` counts emulation unless told not to."""
    if device == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device == "cpu":
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # newer than torch 2.1
        flags = get_capabilities() if get_capabilities else {}
        if flags.get("architecture") not in ("x86_64", "x86"):
            return True  # Arm with BF16, where oneDNN's check is about the instructions, or an older torch
        return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    return True


def use_mixed_precision(cfg) -> str:
    """Switch a config's optimizer wrapper to mixed precision on this device; returns what was chosen.

    CUDA: :class:`GuardedAmpOptimWrapper` (see :func:`cuda_amp`).
    CPU: ``AutocastOptimWrapper`` with bf16, which itself trains in fp32 where the CPU has no fast
    bf16 kernels. Either way the CTC loss is computed in fp32 (see the CTC head).
    """
    wrapper = cfg.optim_wrapper
    keep = {k: v for k, v in wrapper.items() if k in ("optimizer", "clip_grad", "accumulative_counts",
                                                        "paramwise_cfg", "max_consecutive_skips")}
    if torch.cuda.is_available():  # the choice is tested with a stand-in torch.cuda; no GPU here
        dtype, loss_scale = cuda_amp()
        cfg.optim_wrapper = dict(type="GuardedAmpOptimWrapper", dtype=dtype, loss_scale=loss_scale, **keep)
        return f"CUDA AMP {dtype} with dynamic loss scaling"
    cfg.optim_wrapper = dict(type="AutocastOptimWrapper", dtype="bfloat16", **keep)
    return "CPU bf16 autocast (fp32 where this CPU has no fast bf16 kernels)"


def cuda_amp() -> tuple[str, str]:
    """(autocast dtype, loss scale) for CUDA training: bf16 where the GPU has it natively, else
    fp16; dynamic loss scaling either way. Under autocast, cuDNN runs LSTMs in fp16 whatever the
    autocast dtype (ATen's AutocastRNN.cpp casts ``_cudnn_rnn`` to half), so the BiLSTM's
    gradients need scaling with bf16 too."""
    return ("bfloat16" if native_bf16("cuda") else "float16"), "dynamic"


def refitted_end(begin: int, end: float, max_iters: int, new_max_iters: int) -> int | None:
    """Where an LR scheduler over iterations [begin, end) ends once training is cut from
    ``max_iters`` to ``new_max_iters`` iterations: one that ran to the end of training ends at the
    new end (a cosine decay still reaches its minimum), one that ends earlier (a warm-up) keeps its
    end, and one that would begin after the new end has no place (None)."""
    if begin >= new_max_iters:
        return None
    return new_max_iters if end >= min(max_iters, new_max_iters) else int(end)
