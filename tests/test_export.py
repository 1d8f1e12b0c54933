"""ONNX export: the exported file runs in onnxruntime at other batch sizes and widths than the
one traced, agrees with PyTorch, and carries what a consumer needs to decode it."""
from __future__ import annotations

import json
import subprocess
import sys

import onnx
import onnxruntime
import pytest
import torch

from ocrframe.inference import load_model


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "crnn.onnx"
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "export", str(checkpoint), "--onnx", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_export_reports_its_own_onnxruntime_check(exported):
    out, stdout = exported
    assert f"wrote {out}" in stdout
    assert "onnxruntime agrees with PyTorch" in stdout


@pytest.mark.parametrize("batch, width", [(1, 100), (3, 157), (2, 411)])
def test_onnxruntime_matches_pytorch_at_any_batch_and_width(exported, checkpoint, batch, width):
    model, _ = load_model(checkpoint)
    session = onnxruntime.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    images = torch.rand(batch, 1, 32, width, generator=torch.Generator().manual_seed(width)) * 2 - 1
    got = torch.from_numpy(session.run(["log_probs"], {"images": images.numpy()})[0])
    with torch.inference_mode():
        expected = model(images)
    assert got.shape == expected.shape == (batch, model.backbone.num_frames(width), 37)
    assert torch.allclose(got, expected, atol=1e-4)
    lengths = model.frame_lengths(torch.full((batch,), width))
    assert [p.text for p in model.decoder.decode(got, lengths)] == [p.text for p in model.decoder.decode(expected, lengths)]


def test_the_file_declares_dynamic_axes_and_carries_the_charset(exported, checkpoint):
    proto = onnx.load(str(exported[0]))
    (images,) = proto.graph.input
    assert [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim] == ["batch", 1, 32, "width"]
    (log_probs,) = proto.graph.output
    assert [d.dim_param or d.dim_value for d in log_probs.type.tensor_type.shape.dim] == ["batch", "frames", 37]
    meta = {p.key: p.value for p in proto.metadata_props}
    model, _ = load_model(checkpoint)
    assert json.loads(meta["ocrframe_symbols"]) == model.charset.tokens
    assert int(meta["ocrframe_blank"]) == model.charset.blank == 0
    assert json.loads(meta["ocrframe_pipeline"])[1]["type"] == "Resize"
