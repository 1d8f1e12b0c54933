"""ONNX export of a trained recognizer: images (N, C, 32, W) -> log-probabilities (N, T, K), with
the batch size and the image width left free.

The charset and the input normalisation travel in the model's metadata (``metadata_props``), so
the file can be decoded without ocrframe: take the argmax per frame, merge repeats, drop the blank.

``quantize_onnx`` turns such a file into an int8 one (onnxruntime's static quantization): the
convolutions after the first run on int8 kernels, with activation ranges calibrated on images the
model reads; the rest stays fp32. ``Reader(precision="int8")`` runs it and re-reads near ties
in fp32, so its greedy transcriptions are those of the fp32 model.

The Reader's onnxruntime side is here too: :func:`onnx_session` runs a file, and
:func:`onnx_model_for` makes (once, cached) the fp32 or int8 file of a checkpoint.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ocrframe.fileio import atomic_output, cache_dir, check_writable, remove_stale_temporaries

logger = logging.getLogger("ocrframe.export")
CALIBRATION_IMAGES = 128  # int8 activation ranges: enough images to see the range of each layer
ONNX_RECIPE = "opset 18; int8: QDQ, convolutions but the first"  # change it when export_onnx/quantize_onnx change
_exported_here = False  # see export_onnx


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

    out = check_writable(out, "ONNX file")
    remove_stale_temporaries(out.parent)
    # In one process, torch's exporter (2.13) gives the LSTMs of every export after the first a
    # fixed width: the first export runs here, later ones in a fresh process (which imports the
    # calling script again: scripts need the `if __name__ == "__main__":` guard).
    global _exported_here
    with atomic_output(out) as partial:  # complete or absent, also for a cache other processes read
        if not _exported_here:
            _exported_here = True
            _export(model.eval().cpu(), str(partial), list(pipeline), opset)
        else:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                pool.apply(_export, (model.eval().cpu(), str(partial), list(pipeline), opset))
        images = onnx.load(str(partial), load_external_data=False).graph.input[0]
        if images.type.tensor_type.shape.dim[3].dim_param != "width":
            raise RuntimeError(f"{out}: the exporter fixed the image width; this torch version cannot export this "
                               "model with a free width")
    return out


@contextlib.contextmanager
def _exporter_logs_quiet():
    """The exporter logs a warning per torchvision operator it skips when torchvision is absent (it
    is not a dependency): noise on a user's first `ocrframe read`, so only its errors get through."""
    exporter = logging.getLogger("torch.onnx")
    level = exporter.level
    exporter.setLevel(logging.ERROR)
    try:
        yield
    finally:
        exporter.setLevel(level)


def _export(model, out: str, pipeline: list, opset: int) -> None:
    import onnx

    # Tracing unrolls the LSTMs over the example's frames: a narrow example keeps the export quick.
    example = torch.zeros(2, model.in_channels, 32, 16)
    batch = torch.export.Dim("batch", min=1, max=4096)
    width = torch.export.Dim("width", min=16, max=4096)
    with warnings.catch_warnings(), _exporter_logs_quiet():
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
    for key, value in onnx_metadata(model, pipeline).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, out)


def check_onnx(model, path: str | Path, shapes=((1, 100), (3, 157)), atol: float = 1e-3) -> dict:
    """Run the ONNX file with onnxruntime next to the PyTorch model on random images of several
    batch sizes and widths. Returns the largest log-probability difference and whether greedy
    transcriptions agree; raises if they do not."""
    session = onnx_session(path)
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


def quantize_onnx(fp32: str | Path, out: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """Write an int8 version of the ONNX model ``fp32`` to ``out``: convolution weights int8 per
    output channel, their inputs uint8 with ranges from ``calibration`` (image batches
    (N, C, 32, W) as the model takes them), in onnxruntime's QDQ format. The file appears complete
    or not at all."""
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ImportError("int8 export needs the onnx packages: pip install 'ocrframe[onnx]'") from None

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": np.ascontiguousarray(batch, dtype=np.float32)}

    out = check_writable(out, "ONNX file")
    with tempfile.TemporaryDirectory() as tmp, atomic_output(out) as partial:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))  # folds constants, infers shapes: the quantizer needs both
        convs = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type == "Conv"]
        # The convolutions but the first: in int8 the first one, reading the image, moved the
        # best class of 8 % of the frames of a trained OMR model (fine vertical positions), the
        # others 0.1 % each; it costs < 1 % of the work. The LSTMs and the classifier stay fp32.
        quantize_static(str(prepared), str(partial), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=convs[:1])
    return out


def export_int8(model, out: str | Path, calibration: Iterable[np.ndarray], pipeline: list = (),
                opset: int = 18) -> Path:
    """Export ``model`` to ONNX and quantize it to int8 (see ``quantize_onnx``) at ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        return quantize_onnx(export_onnx(model, Path(tmp) / "fp32.onnx", pipeline, opset), out, calibration)


def onnx_session(path: str | Path):
    """An onnxruntime CPU session using as many threads as torch, whose threads sleep between runs."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("runtime onnxruntime needs it: pip install 'ocrframe[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # By default its threads spin for a while after each run, holding the cores that torch's own
    # threads need next (the recheck, the decoder): on a 2-core AVX2 host a tiny torch reduction
    # after a run of batch 1 then waited ~9 ms for a time slice, as long as the int8 network itself.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # its shape-inference warnings about the free width are expected
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_cache() -> Path:
    """Where ONNX files of checkpoints (and the inference plans timed on them) are kept."""
    return cache_dir() / "onnx"


def onnx_model_for(checkpoint: str | Path, model, cfg, int8: bool = False, calibration: Iterable | None = None,
                   scratch: Path | None = None) -> Path:
    """The ONNX file (fp32, or int8 calibrated on the config's first validation images) of a
    checkpoint, made once and cached, keyed by the checkpoint's and the config's content; int8 is
    quantized from the cached fp32 file. An int8 file calibrated on ``calibration`` images instead
    is written to ``scratch``."""
    import onnxruntime

    # What the files depend on: the weights, the config, how they are made and who makes them.
    recipe = f"{ONNX_RECIPE} {CALIBRATION_IMAGES} torch {torch.__version__} onnxruntime {onnxruntime.__version__}"
    from ocrframe.pretrained import file_digest, find_weights

    weights_file = find_weights(checkpoint) or Path(checkpoint)  # a released model's name names a file too
    key = hashlib.sha256((file_digest(weights_file) + cfg.pretty_text + recipe).encode()).hexdigest()[:20]
    fp32 = onnx_cache() / f"{key}-fp32.onnx"
    if int8 and calibration is not None:
        out = Path(scratch or tempfile.mkdtemp()) / "int8.onnx"
    else:
        out = onnx_cache() / f"{key}-{'int8' if int8 else 'fp32'}.onnx"
    if out.is_file():
        return out
    if not fp32.is_file():
        export_onnx(model, fp32, cfg.test_pipeline)
    return quantized_model(model, cfg, out, calibration, fp32=fp32) if int8 else fp32


def quantized_model(model, cfg, out: str | Path, calibration: Iterable | None = None, opset: int = 18,
                    fp32: str | Path | None = None) -> Path:
    """Write ``model`` to ``out`` in int8, calibrated on up to CALIBRATION_IMAGES of
    ``calibration`` (images), or on the config's first validation images; quantized from its
    ``fp32`` ONNX file when there is one, else exported first."""
    from ocrframe.data.batching import input_batches
    from ocrframe.data.transforms import Compose

    calibration = validation_images(cfg) if calibration is None else list(calibration)[:CALIBRATION_IMAGES]
    logger.info("quantizing to int8, calibrated on %d images -> %s", len(calibration), out)
    batches = input_batches(calibration, Compose(cfg.test_pipeline))
    if fp32 is not None:
        return quantize_onnx(fp32, out, batches)
    return export_int8(model, out, batches, cfg.test_pipeline, opset)


def validation_images(cfg, count: int | None = None) -> list:
    """The first ``count`` (default CALIBRATION_IMAGES) images of the config's validation set, as
    loaded (before its pipeline)."""
    from ocrframe.data.build import build_dataset

    count = count or CALIBRATION_IMAGES
    try:
        dataset = build_dataset(cfg.val_dataloader.dataset, raw=True)
        return [dataset[i]["image"] for i in range(min(count, len(dataset)))]
    except Exception as exc:
        raise RuntimeError(f"int8 calibration reads the config's validation set, which failed ({type(exc).__name__}: "
                           f"{exc}); give calibration images instead (Reader.from_checkpoint(..., calibration="
                           "images), `--calibration FOLDER`)") from exc
