"""Safe checkpoint loading: weights and training state load, code-carrying pickles are refused."""
from __future__ import annotations

import json
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


# -- the config stored in a checkpoint is data, never code -------------------------------------

def checkpoint_with_config(tmp_path, meta: dict):
    """A checkpoint of the paper model (random weights) with ``meta`` as its metadata."""
    from mmengine.config import Config

    from conftest import CONFIG
    from ocrframe.registry import MODELS

    torch.manual_seed(0)
    path = tmp_path / "crafted.pth"
    torch.save(dict(meta=meta, state_dict=MODELS.build(Config.fromfile(str(CONFIG)).model).state_dict()), path)
    return path


def word_image(tmp_path):
    from conftest import render_word

    render_word("open").save(tmp_path / "word.png")
    return tmp_path / "word.png"


@pytest.mark.parametrize("command", [["read"], ["export", "--onnx", "out.onnx", "--no-check"]])
def test_a_config_stored_as_python_text_is_refused_unrun_and_loads_with_the_config_named(tmp_path, command):
    from conftest import CONFIG
    from ocrframe.cli import main

    marker = tmp_path / "pwned"
    text = f"_x = __import__('os').system('touch {marker}')\n" + CONFIG.read_text()
    path = checkpoint_with_config(tmp_path, dict(cfg=text))  # how mmengine stores a config
    inputs = [str(word_image(tmp_path))] if command == ["read"] else []
    args = [command[0], str(path), *inputs, *command[1:]]
    if command[0] == "export":
        args[args.index("out.onnx")] = str(tmp_path / "out.onnx")
    with pytest.raises(ValueError, match=r"stores its config as Python text.*not read: pass the config .*--config"):
        main(args)
    assert not marker.exists()
    if command == ["read"]:  # the way out the message names
        assert main([*args, "--config", str(CONFIG), "--precision", "fp32", "--runtime", "torch"]) == 0
        assert not marker.exists()


@pytest.mark.parametrize("meta", [
    dict(cfg=json.dumps(dict(model=dict(type="subprocess.getoutput", cmd="touch {marker}"))), cfg_format="json"),
    dict(cfg=json.dumps(dict(model=dict(type="Recognizer"), test_pipeline=[dict(type="subprocess.getoutput",
         cmd="touch {marker}")])), cfg_format="json"),
    dict(cfg=json.dumps(dict(custom_imports=dict(imports=["os"]), model=dict(type="Recognizer"))), cfg_format="json"),
    dict(cfg="_x = __import__('os').system('touch {marker}')", cfg_format="json"),
])
def test_a_stored_config_naming_code_by_its_path_is_refused_and_never_built(tmp_path, meta):
    from ocrframe.inference import Reader

    marker = tmp_path / "pwned"
    meta = dict(meta, cfg=meta["cfg"].replace("{marker}", str(marker)))
    with pytest.raises(ValueError, match=r"crafted.pth.*(not registered components|custom_imports|not valid JSON)"):
        Reader.from_checkpoint(checkpoint_with_config(tmp_path, meta))
    assert not marker.exists()


def test_a_type_given_by_its_dotted_path_does_run_code_when_built_unchecked(tmp_path):
    # The control for the test above: mmengine's registries import and call such a type.
    from ocrframe.registry import MODELS

    marker = tmp_path / "pwned"
    MODELS.build(dict(type="subprocess.getoutput", cmd=f"touch {marker}"))
    assert marker.exists()


def test_mmengines_resume_never_sees_a_config_text_it_would_execute(tmp_path):
    # mmengine's Runner.resume runs Config.fromstring(meta["config"]); the loader it uses is ours.
    from mmengine.runner.checkpoint import _load_checkpoint

    marker = tmp_path / "pwned"
    torch.save(dict(meta=dict(iter=2, config=f"_x = __import__('os').system('touch {marker}')"),
                    state_dict={"w": torch.ones(2)}), tmp_path / "ck.pth")
    loaded = _load_checkpoint(str(tmp_path / "ck.pth"))
    assert "config" not in loaded["meta"] and loaded["meta"]["iter"] == 2
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2))
    assert not marker.exists()


def test_a_stored_config_is_rebuilt_from_data(tmp_path):
    from mmengine.config import Config

    from conftest import CONFIG
    from ocrframe.checkpoint import store_config, stored_config

    cfg = Config.fromfile(str(CONFIG))
    meta = store_config(dict(cfg="python text mmengine put there"), cfg)
    assert meta["cfg_format"] == "json" and json.loads(meta["cfg"])["model"] == cfg.model.to_dict()
    rebuilt = stored_config(dict(meta=meta), "ck.pth")
    assert rebuilt.model.to_dict() == cfg.model.to_dict()
    assert rebuilt.test_pipeline == [dict(t) for t in cfg.test_pipeline]
