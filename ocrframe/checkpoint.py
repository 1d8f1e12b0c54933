"""Safe checkpoint loading, and checkpoints written so that a crash never leaves a broken one.

torch >= 2.6 loads with ``weights_only=True``: only tensors, containers and allowlisted classes
are unpickled, so a crafted file cannot run code. mmengine's checkpoints also hold the training
state: its message hub's ``HistoryBuffer`` objects and numpy scalars (best scores). Those few
data classes are allowlisted here, and a HistoryBuffer is pickled as its constructor arguments
(plain lists) rather than its ``__dict__``, which would need ``getattr`` -- a global that must never
be allowed, since it reaches arbitrary code. Resume thus works without turning ``weights_only`` off.

Saving: mmengine writes a checkpoint straight to its final name and the ``last_checkpoint`` pointer
with a plain ``open``, and deletes the oldest kept checkpoint *before* writing the new one; a kill
during a save can thus leave a truncated file that resume then picks. :class:`AtomicCheckpointHook`
writes every file to a temporary name, fsyncs it and renames it into place (a rename is atomic), then
points ``last_checkpoint`` at it the same way, and only then deletes what is beyond the last K.
"""
from __future__ import annotations

import copyreg
import os
import pickle
from collections import deque
from pathlib import Path

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from ocrframe.fileio import atomic_write
from ocrframe.registry import HOOKS


def _reduce_history_buffer(buffer: HistoryBuffer):
    return HistoryBuffer, (buffer._log_history.tolist(), buffer._count_history.tolist(), buffer.max_length)


copyreg.pickle(HistoryBuffer, _reduce_history_buffer)

_numpy_scalar_types = [np.float64, np.float32, np.int64, np.int32, np.bool_]
TRAINING_STATE = [
    HistoryBuffer,
    np.dtype,
    np._core.multiarray.scalar,
    *(type(np.dtype(t)) for t in _numpy_scalar_types),
]
torch.serialization.add_safe_globals(TRAINING_STATE)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a file needing anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(
            f"refused to load {path}: it holds Python objects that are not plain weights or ocrframe "
            f"training state, and unpickling them could run arbitrary code. Only load checkpoints you "
            f"trust; details: {str(exc).splitlines()[0]}") from None


@CheckpointLoader.register_scheme(prefixes="", force=True)
def _load_local_checkpoint(filename, map_location=None) -> dict:
    """mmengine's loader for local files (resume, ``load_from``), replaced by the safe one above:
    older torch versions would otherwise unpickle anything."""
    return load_checkpoint(Path(filename).expanduser(), map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes (``backend_args=dict(backend="atomic_local")``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        atomic_write(filepath, obj.encode(encoding))


register_backend("atomic_local", AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook (same arguments) that writes checkpoints and ``last_checkpoint``
    atomically and deletes old checkpoints (beyond ``max_keep_ckpts``) only after the new one is
    in place. Local disks only; for other storage pass its ``backend_args``."""

    def __init__(self, *args, backend_args: dict | None = None, **kwargs):
        super().__init__(*args, backend_args=backend_args or dict(backend="atomic_local"), **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):  # replaces mmengine's: see the module docstring
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        kept = list(getattr(self, "keep_ckpt_ids", []))
        if self.max_keep_ckpts > 0:
            if not kept or kept[-1] != step:
                kept.append(step)
            dropped, kept = kept[:-self.max_keep_ckpts], kept[-self.max_keep_ckpts:]
            self.keep_ckpt_ids = deque(kept)
            runner.message_hub.update_info("keep_ckpt_ids", kept)  # saved in the checkpoint, for resume
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        atomic_write(Path(runner.work_dir) / "last_checkpoint", str(self.last_ckpt).encode())
        for old in dropped if self.max_keep_ckpts > 0 else ():
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
