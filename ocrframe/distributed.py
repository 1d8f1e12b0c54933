"""Data-parallel training through mmengine's launchers: NCCL on CUDA, gloo on CPU.

mmengine's own set-up assumes CUDA in two places: its ``pytorch`` and ``slurm`` launchers call
``torch.cuda.set_device``, and the Runner hands ``device_ids=[LOCAL_RANK]`` to DDP. On a CPU this
module starts the gloo process group itself (the Runner then skips its own initialisation) and
wraps the model with :class:`AnyDeviceDDP`, which gives DDP device ids only for CUDA modules.

Tested here on CPU with gloo (2 processes, torchrun and Slurm-style environments). The CUDA branch
(:func:`uses_cuda` true: NCCL, mmengine's own initialisation, one GPU per process) is mmengine's
standard path and untested on this machine.
"""
from __future__ import annotations

import logging
import os
import subprocess

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel


def uses_cuda() -> bool:
    return torch.cuda.is_available()


class AnyDeviceDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper with ``device_ids`` only for a module on a GPU: for a CPU module
    DDP requires ``device_ids=None``."""

    def __init__(self, module, device_ids=None, **kwargs):
        on_gpu = next(module.parameters()).device.type == "cuda"
        kwargs.setdefault("broadcast_buffers", False)  # as mmengine's default wrapper
        super().__init__(module=module, device_ids=device_ids if on_gpu else None, **kwargs)


def prepare(cfg, launcher: str) -> None:
    """Make a config ready for ``launcher`` ("none", "pytorch" or "slurm"): pick the backend, the
    model wrapper, and on CPU start the gloo process group."""
    cfg.launcher = launcher
    if launcher == "none":
        return
    if cfg.get("env_cfg") is None:
        cfg.env_cfg = {}
    if cfg.env_cfg.get("dist_cfg") is None:
        cfg.env_cfg.dist_cfg = {}
    dist_cfg = cfg.env_cfg.dist_cfg
    backend = "nccl" if uses_cuda() else "gloo"
    if dist_cfg.get("backend") not in (None, backend):
        print_log(f"distributed backend {backend} instead of the config's {dist_cfg['backend']} "
                  f"({'a GPU' if uses_cuda() else 'no GPU'} here)", logger="current", level=logging.INFO)
    dist_cfg["backend"] = backend
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(type="AnyDeviceDDP")
    if not uses_cuda() and not dist.is_initialized():
        init_cpu_process_group(launcher, timeout=dist_cfg.get("timeout"))


def init_cpu_process_group(launcher: str, timeout: float | None = None) -> None:
    """gloo process group from torchrun's environment, or from Slurm's (srun) mapped onto it."""
    if launcher == "slurm":
        slurm_to_torch_environment()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"--launcher {launcher} needs ${name}: start training with tools/dist_train.sh "
                               f"(torchrun) or tools/slurm_train.sh (srun), not directly")
    import datetime

    kwargs = {"timeout": datetime.timedelta(seconds=timeout)} if timeout else {}
    dist.init_process_group("gloo", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]), **kwargs)


def slurm_to_torch_environment() -> None:
    """RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from SLURM_* (as mmengine's slurm launcher
    does). MASTER_ADDR, if unset, is the first node of the job (``scontrol show hostnames``)."""
    missing = [n for n in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID") if n not in os.environ]
    if missing:
        raise ValueError(f"--launcher slurm needs {', '.join(missing)}: start training with srun "
                           "(tools/slurm_train.sh)")
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ["SLURM_LOCALID"]
    os.environ.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_NODELIST", "")
        first = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True)
        os.environ["MASTER_ADDR"] = first.stdout.split()[0]
