"""ONNX export of a trained recognizer: images (N, C, 32, W) -> log-probabilities (N, T, K), with
the batch size and the image width left free.

The charset and the input normalisation travel in the model's metadata (``metadata_props``), so
the file can be decoded without ocrframe: take the argmax per frame, merge repeats, drop the blank.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

logger = logging.getLogger("ocrframe.export")


def onnx_metadata(model, pipeline: list) -> dict[str, str]:
    """What a consumer needs besides the graph: the symbols, the blank, and the preprocessing."""
    charset = model.charset
    return dict(
        ocrframe_symbols=json.dumps(charset.tokens, ensure_ascii=False),
        ocrframe_blank=str(charset.blank),
        ocrframe_separator=charset.separator,
        ocrframe_case=charset.case,
        ocrframe_pipeline=json.dumps([dict(t) if isinstance(t, dict) else repr(t) for t in pipeline]),
    )


def export_onnx(model, out: str | Path, pipeline: list = (), opset: int = 18) -> Path:
    """Write ``model`` (a recognizer) to ``out`` as ONNX with dynamic batch and width."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx packages: pip install 'ocrframe[onnx]'") from None

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    # Tracing unrolls the LSTMs over the example's frames: a narrow example keeps the export quick.
    example = torch.zeros(2, model.in_channels, 32, 16)
    batch = torch.export.Dim("batch", min=1, max=4096)
    width = torch.export.Dim("width", min=16, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about LSTM weights and deprecations inside torch
        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, opset_version=opset,
                                    input_names=["images"], output_names=["log_probs"],
                                    dynamic_shapes=({0: batch, 3: width},))
    proto = program.model_proto
    # The exporter records the example's frame count as fixed in the shapes it annotates, though
    # the graph computes it from the width: name it in the output and drop the intermediate
    # annotations (onnxruntime infers them again, and would otherwise warn at every other width).
    frames = proto.graph.output[0].type.tensor_type.shape.dim[1]
    frames.Clear()
    frames.dim_param = "frames"
    del proto.graph.value_info[:]
    for key, value in onnx_metadata(model, list(pipeline)).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))
    return out


def check_onnx(model, path: str | Path, shapes=((1, 100), (3, 157)), atol: float = 1e-3) -> dict:
    """Run the ONNX file with onnxruntime next to the PyTorch model on random images of several
    batch sizes and widths. Returns the largest log-probability difference and whether greedy
    transcriptions agree; raises if they do not."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    channels = session.get_inputs()[0].shape[1]
    generator = torch.Generator().manual_seed(0)
    worst, same = 0.0, True
    for batch, width in shapes:
        images = torch.rand(batch, channels, 32, width, generator=generator) * 2 - 1
        with torch.inference_mode():
            expected = model(images).float()
        got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        worst = max(worst, float((got - expected).abs().max()))
        lengths = model.frame_lengths(torch.full((batch,), width))
        same &= [p.text for p in model.decoder.decode(expected, lengths)] == \
                [p.text for p in model.decoder.decode(got, lengths)]
    if worst > atol or not same:
        raise RuntimeError(f"{path}: onnxruntime disagrees with PyTorch (largest log-prob difference {worst:.2e}, "
                           f"greedy transcriptions {'equal' if same else 'differ'})")
    return dict(max_abs_diff=worst, same_transcriptions=same)
