"""Safe checkpoint loading.

torch >= 2.6 loads with ``weights_only=True``: only tensors, containers and allowlisted classes
are unpickled, so a crafted file cannot run code. mmengine's checkpoints also hold the training
state: its message hub's ``HistoryBuffer`` objects and numpy scalars (best scores). Those few
data classes are allowlisted here, and a HistoryBuffer is pickled as its constructor arguments
(plain lists) rather than its ``__dict__``, which would need ``getattr`` -- a global that must never
be allowed, since it reaches arbitrary code. Resume thus works without turning ``weights_only`` off.
"""
from __future__ import annotations

import copyreg
import pickle
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


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
