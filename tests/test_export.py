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
from mmengine.config import Config

from conftest import READING_WORDS, REPO, render_word
from ocrframe.export import check_onnx, export_onnx, onnx_model_for, onnx_session
from ocrframe.checkpoint import load_model
from ocrframe.data.batching import pipeline_samples
from ocrframe.data.transforms import pad_collate
from ocrframe.inference import Reader
from ocrframe.registry import MODELS


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "crnn.onnx"
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "export", str(checkpoint), "--onnx", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, result.stderr


def test_export_reports_its_own_onnxruntime_check(exported):
    out, stdout, _ = exported
    assert f"wrote {out}" in stdout
    assert "onnxruntime agrees with PyTorch" in stdout


def test_export_does_not_pass_on_the_exporters_log_noise(exported):
    """Without torchvision the exporter logs one warning per operator it skips; a user's first
    `ocrframe read` exports, so that noise would greet them."""
    assert "torchvision" not in exported[2]


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


def test_sessions_leave_the_cores_to_torch_between_runs(exported):
    """onnxruntime's threads spin after a run by default; torch's threads (recheck, decoder) then
    wait for a time slice. Sessions made by ocrframe turn that off and match torch's thread count."""
    options = onnx_session(exported[0]).get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == torch.get_num_threads()


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


def test_the_omr_model_exports_with_a_free_width(tmp_path):
    """The simplified CRNN (no conv4/conv6, a stack of unidirectional LSTMs)."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(REPO / "configs" / "crnn_omr.py")).model).eval()
    path = export_onnx(model, tmp_path / "omr.onnx")
    assert check_onnx(model, path, shapes=((1, 40), (2, 233)), atol=1e-4)["same_transcriptions"]


def test_onnxruntime_reads_a_padded_batch_as_its_images_alone(exported, checkpoint):
    """The ONNX graph takes images only: run on a padded batch, the padding reached the backward
    LSTM and the convolutions at each word's end (4 of 300 held-out words read differently from
    PyTorch with crnn-en). The Reader runs each width on its own where the model reads alone."""
    model, cfg = load_model(checkpoint)
    assert model.reads_padded_images_alone  # VGG masks the padding
    reader = Reader(model, cfg.test_pipeline, precision="fp32", runtime="onnxruntime", onnx_model=exported[0])
    samples = pipeline_samples([render_word(w).convert("RGB") for w in ("ab", "harbour", "abcdefghijklmn")],
                               reader.pipeline)
    batch = pad_collate(samples)
    images, widths = batch["inputs"], batch["data_samples"]["widths"]
    assert len(widths.unique()) == 3  # padded
    got = reader.run_path("onnxruntime fp32", images, widths)
    assert got.shape == reader.run_path("torch fp32", images, widths).shape
    for row, length in enumerate(model.frame_lengths(widths).tolist()):
        alone = reader.run_path("torch fp32", images[row:row + 1, ..., : int(widths[row])])
        assert torch.allclose(got[row, :length], alone[0, :length], atol=1e-4), row


# -- int8 ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported_int8(checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    for i, word in enumerate(["harbour", "open24", "street", "x", "quiet", "b52"]):
        render_word(word).save(folder / f"{i}.png")
    out = folder.parent / "crnn-int8.onnx"
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "export", str(checkpoint), "--onnx", str(out),
                             "--int8", "--calibration", str(folder)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, sorted(folder.glob("*.png"))


def test_int8_export_quantizes_the_convolutions_after_the_first(exported_int8):
    out, stdout, _ = exported_int8
    assert f"wrote {out}" in stdout and "calibrated on 6 images" in stdout
    assert "reads" in stdout and "of the 6 images as PyTorch fp32 does" in stdout
    graph = onnx.load(str(out)).graph
    produced_by = {output: node for node in graph.node for output in node.output}
    initializers = {i.name: i for i in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == 7
    weights = [produced_by.get(conv.input[1]) for conv in convs]
    assert weights[0] is None and initializers[convs[0].input[1]].data_type == onnx.TensorProto.FLOAT
    for dequantize in weights[1:]:  # int8 weights, per output channel
        assert dequantize.op_type == "DequantizeLinear"
        assert initializers[dequantize.input[0]].data_type == onnx.TensorProto.INT8
        assert len(initializers[dequantize.input[1]].dims) == 1


def test_int8_reader_rechecks_near_ties_in_fp32(exported_int8, checkpoint):
    out, _, images = exported_int8
    beam = "BeamSearchDecoder"  # reads more than the best path: every near tie is re-read
    model, cfg = load_model(checkpoint)
    fp32 = Reader(model, cfg.test_pipeline, precision="fp32").read(images, decoder=beam)
    int8 = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=out, recheck_margin=-float("inf"))
    alone = int8.read(images, decoder=beam)
    assert int8.rechecked == 0 and [p.score for p in alone] != [p.score for p in fp32]  # really int8
    assert [p.score for p in alone] == pytest.approx([p.score for p in fp32], rel=0.2)  # and close to fp32
    # Each image's closest call in int8: the smallest top-2 gap over its frames. With the margin
    # between the smallest and the largest, exactly the images below it are re-read in fp32.
    gaps = []
    for image in images:
        top2 = int8.log_probs(torch.from_numpy(int8.input_batches([image])[0])).topk(2, dim=-1).values[0]
        gaps.append(float((top2[:, 0] - top2[:, 1]).min()))
    int8.recheck_margin, int8.rechecked = sorted(gaps)[len(gaps) // 2], 0
    expected = [gap < int8.recheck_margin for gap in gaps]
    reread = int8.read(images, decoder=beam)
    assert 0 < int8.rechecked == sum(expected) < len(images)
    for prediction, reference, int8_alone, was_reread in zip(reread, fp32, alone, expected):
        assert prediction.score == pytest.approx((reference if was_reread else int8_alone).score, rel=1e-5)
    int8.recheck_margin, int8.rechecked = float("inf"), 0
    assert [p.score for p in int8.read(images, decoder=beam)] == pytest.approx([p.score for p in fp32], rel=1e-5)
    assert int8.rechecked == len(images)


def test_from_checkpoint_exports_once_and_caches(reading_checkpoint, tmp_path, monkeypatch):
    import ocrframe.export

    checkpoint = reading_checkpoint  # a model that reads: its int8 readings are not all near ties
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path))
    monkeypatch.setattr("ocrframe.export.CALIBRATION_IMAGES", 8)
    images = [render_word(w) for w in READING_WORDS]
    torch_fp32 = Reader.from_checkpoint(checkpoint, precision="fp32", runtime="torch").read(images)
    onnx_fp32 = Reader.from_checkpoint(checkpoint, precision="fp32", runtime="onnxruntime")
    int8 = Reader.from_checkpoint(checkpoint, precision="int8", batch_size=2)
    assert (onnx_fp32.runtime, int8.runtime) == ("onnxruntime", "onnxruntime")
    assert [p.score for p in onnx_fp32.read(images)] == pytest.approx([p.score for p in torch_fp32], rel=1e-4)
    assert [p.text for p in torch_fp32] == READING_WORDS
    assert [p.text for p in int8.read(images)] == READING_WORDS
    assert int8.rechecked < len(images)  # some images were read by the int8 model alone
    cached = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert [p.name.rsplit("-", 1)[1] for p in cached] == ["fp32.onnx", "int8.onnx"]

    def no_second_time(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(ocrframe.export, "export_onnx", no_second_time)
    monkeypatch.setattr(ocrframe.export, "export_int8", no_second_time)
    Reader.from_checkpoint(checkpoint, precision="int8")
    Reader.from_checkpoint(checkpoint, runtime="onnxruntime")
    assert sorted((tmp_path / "onnx").glob("*")) == cached  # no partial files left either


def test_the_onnx_cache_is_keyed_by_the_weights_files_content(checkpoint, tmp_path, monkeypatch):
    """The same file is exported once; rewritten with other weights, it gets a file of its own."""
    import shutil

    import ocrframe.export
    from conftest import save_checkpoint

    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path / "cache"))
    copy = shutil.copy(checkpoint, tmp_path / "crnn.pth")
    model, cfg = load_model(copy)
    exports = []

    def export(model, out, pipeline):  # the key is what is tested here; real exports are tested above
        exports.append(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"onnx")
        return out

    monkeypatch.setattr(ocrframe.export, "export_onnx", export)
    first = onnx_model_for(copy, model, cfg)
    assert onnx_model_for(copy, model, cfg) == first and exports == [first]
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(model, cfg, copy)  # the same size, other bytes
    second = onnx_model_for(copy, model, cfg)
    assert second != first and exports == [first, second]


def test_onnxruntime_needs_its_model_file_and_runs_fp32_or_int8(checkpoint):
    model, cfg = load_model(checkpoint)
    with pytest.raises(ValueError, match="ocrframe export CKPT --onnx FILE --int8"):
        Reader(model, cfg.test_pipeline, precision="int8")
    with pytest.raises(ValueError, match="'bf16' runs on torch"):
        Reader(model, cfg.test_pipeline, precision="bf16", runtime="onnxruntime", onnx_model="x.onnx")
    with pytest.raises(ValueError, match="runtime must be one of"):
        Reader(model, cfg.test_pipeline, runtime="tensorrt")
    # from a checkpoint, before anything is exported
    for bad, match in [(dict(runtime="onnxruntime", device="cuda"), "onnxruntime runs on the CPU here"),
                       (dict(precision="fp32", calibration=["x.png"]), "calibration images are for precision='int8'")]:
        with pytest.raises(ValueError, match=match):
            Reader.from_checkpoint(checkpoint, **bad)


def test_every_cache_lives_under_one_root(monkeypatch, tmp_path):
    """The font index, background crops, ONNX files and inference plans move together."""
    from ocrframe.export import onnx_cache
    from ocrframe.fileio import cache_dir

    monkeypatch.delenv("OCRFRAME_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "ocrframe"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ocrframe"
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    assert onnx_cache() == tmp_path / "own" / "onnx"
