"""Safe checkpoint loading: weights and training state load, code-carrying pickles are refused."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from ocrframe.checkpoint import load_checkpoint


class WritesAFile:
    """Unpickling this calls open(marker, "w"): arbitrary code at load time."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [WritesAFile, RunsAShellCommand])
def test_malicious_checkpoint_is_refused_and_its_code_never_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_the_malicious_payload_does_run_when_loaded_unsafely(tmp_path):
    # The control for the test above: without weights_only the same file runs its code.
    marker = tmp_path / "pwned"
    torch.save({"meta": WritesAFile(marker)}, tmp_path / "evil.pth")
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()


def test_weights_and_training_state_load(tmp_path):
    state = {
        "state_dict": {"layer.weight": torch.arange(6.0).reshape(2, 3)},
        "message_hub": {"log_scalars": {"train/loss": HistoryBuffer([3.0, 2.0], [1, 1], max_length=10)}},
        "meta": {"best_score": np.float64(0.75), "iter": np.int64(4)},
    }
    torch.save(state, tmp_path / "ok.pth")
    loaded = load_checkpoint(tmp_path / "ok.pth")
    assert torch.equal(loaded["state_dict"]["layer.weight"], state["state_dict"]["layer.weight"])
    buffer = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == [3.0, 2.0] and buffer.max_length == 10
    assert loaded["meta"]["best_score"] == 0.75 and loaded["meta"]["iter"] == 4


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint .*nothing.pth does not exist"):
        load_checkpoint(tmp_path / "nothing.pth")
