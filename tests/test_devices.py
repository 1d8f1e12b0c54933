"""Device logic checked on a CPU-only machine (tests/device_check.py): the model's parameters and
the batch live on a stand-in device, and any op mixing it with CPU tensors fails as it would on a
GPU. Covers the training step (loss, non-finite guard), validation (decoders), the evaluation of
``ocrframe test --lexicon`` and the Reader; and counts the device-to-host copies of a step."""
from __future__ import annotations

import pytest
import torch

from conftest import CONFIG
from device_check import FAKE, DeviceCheck, DeviceMixError, to_fake


def small_model(decoder: dict | None = None):
    from mmengine.config import Config

    from ocrframe.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    torch.manual_seed(0)
    model_cfg = dict(cfg.model, sequence_encoder=dict(type="BiLSTM", hidden_size=16, num_layers=1))
    if decoder is not None:
        model_cfg["decoder"] = decoder
    return MODELS.build(model_cfg)


def batch(texts: list[str], width: int = 100, nan_in: int | None = None) -> dict:
    images = torch.randn(len(texts), 1, 32, width)
    if nan_in is not None:
        images[nan_in, 0, 3, 3] = float("nan")
    return dict(inputs=images, data_samples=dict(texts=texts, keys=[f"key-{t}" for t in texts],
                                                  widths=torch.full((len(texts),), width)))


def guarded_wrapper(model):
    from ocrframe.optim import GuardedOptimWrapper

    return GuardedOptimWrapper(optimizer=torch.optim.Adam(model.parameters(), 1e-3))


def test_the_stand_in_device_catches_what_a_gpu_refuses():
    with DeviceCheck():
        remote = torch.ones(3).to(FAKE)
        assert remote.device == FAKE
        assert (remote + torch.tensor(2.0)).device == FAKE  # a 0-dim CPU tensor is a scalar: allowed
        assert float((remote * torch.arange(3, device=remote.device)).sum()) == 3.0
        with pytest.raises(DeviceMixError, match="mixes devices"):
            torch.where(torch.tensor([True, False, True]), remote, torch.zeros(3))


def test_the_loss_masks_samples_on_the_device_of_their_losses():
    """The masks of usable samples meet the per-sample losses the head returns on the model's
    device (the head here stands in for any head, whatever it does with the targets)."""
    model = small_model()
    model.head.loss = lambda log_probs, lengths, targets, target_lengths: log_probs.sum((1, 2))
    with DeviceCheck():
        model.to(FAKE)
        data = to_fake(batch(["ab", "cde", "abcdefghijkl"], width=24))
        loss = model(data["inputs"], data["data_samples"], mode="loss")["loss"]
        assert loss.device == FAKE and torch.isfinite(loss).item()
    assert model.skipped_labels == 1


def test_a_training_step_keeps_every_tensor_on_the_model_device():
    model = small_model()
    with DeviceCheck() as check:
        model.to(FAKE)
        optim = guarded_wrapper(model)
        log_vars = model.train_step(batch(["ab", "cde", "fg", "hij"]), optim)
        assert torch.isfinite(log_vars["loss"])
        assert optim.optimizer.state  # the step was taken
        # a label longer than the frames of its image, and NaN pixels: the paths that report samples
        model.train_step(batch(["ab", "abcdefghijkl"], width=24), optim)
        model.train_step(batch(["ab", "cd"], nan_in=1), optim)
    assert optim.skipped_steps == 1


@pytest.mark.parametrize("decoder", [None, dict(type="BeamSearchDecoder", beam_width=3),
                                     dict(type="LexiconDecoder", lexicon=["ab", "cd"])])
def test_validation_decodes_on_the_model_device(decoder):
    model = small_model(decoder).eval()
    with DeviceCheck():
        model.to(FAKE)
        outputs = model.val_step(batch(["ab", "cd"]))
    assert [o["gt"] for o in outputs] == ["ab", "cd"]


def test_evaluation_and_the_reader_keep_to_the_model_device(val_lmdb, tmp_path):
    from mmengine.config import Config

    from ocrframe.evaluation import evaluate
    from ocrframe.inference import Reader
    from ocrframe.data.build import build_dataset, dataset_for

    cfg = Config.fromfile(str(CONFIG))
    dataset = build_dataset(dataset_for([str(val_lmdb)], cfg, cfg.test_pipeline))
    model = small_model().eval()
    images = [build_dataset(dataset_for([str(val_lmdb)], cfg, cfg.test_pipeline), raw=True)[i]["image"]
              for i in range(3)]
    with DeviceCheck():
        model.to(FAKE)
        words = tmp_path / "words.txt"
        words.write_text("ab cd abc xyz\n")
        table = evaluate(model, {"val": dataset}, ["none", str(words)], batch_size=8)
        predictions = Reader(model, cfg.test_pipeline, precision="fp32", batch_size=2).read(images, frames=True)
    assert set(table["val"]) == {"none", "words.txt"}
    assert len(predictions) == 3


def test_a_training_step_copies_to_the_host_a_fixed_number_of_times_whatever_the_batch_size():
    """Each device-to-host copy makes the host wait for the GPU. Per step: the flags the loss logs
    from, the guard's decision to step, and the frame lengths the BiLSTM reads to leave padding out
    (plus, on CUDA, PyTorch's CTC loss reading the lengths)."""
    counts = []
    for size in (4, 16):
        model = small_model()
        with DeviceCheck() as check:
            model.to(FAKE)
            optim = guarded_wrapper(model)
            data = batch(["ab"] * size)
            check.transfers_to_host = 0
            model.train_step(data, optim)
        counts.append(check.transfers_to_host)
    assert counts == [3, 3]


# -- mixed precision on a GPU, with torch.cuda answering as a given GPU would ---------------------

def pretend_gpu(monkeypatch, native_bf16: bool) -> None:
    """torch.cuda as on an A100 (native bf16) or a V100 / T4 (bf16 only emulated)."""
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native_bf16 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


def amp_config():
    from mmengine.config import Config

    return Config(dict(optim_wrapper=dict(type="GuardedOptimWrapper", optimizer=dict(type="Adam", lr=1e-3),
                                          clip_grad=dict(max_norm=5.0))))


@pytest.mark.parametrize("native, dtype", [(True, "bfloat16"), (False, "float16")])
def test_amp_on_a_gpu_picks_bf16_only_where_native_and_always_scales_the_loss(monkeypatch, native, dtype):
    """cuDNN runs the LSTMs in fp16 under autocast whatever its dtype: dynamic loss scaling with bf16 too."""
    from ocrframe.optim import use_mixed_precision

    pretend_gpu(monkeypatch, native_bf16=native)
    cfg = amp_config()
    assert use_mixed_precision(cfg) == f"CUDA AMP {dtype} with dynamic loss scaling"
    assert cfg.optim_wrapper.type == "GuardedAmpOptimWrapper"
    assert (cfg.optim_wrapper.dtype, cfg.optim_wrapper.loss_scale) == (dtype, "dynamic")
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)


def test_the_reader_reads_in_fp32_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    from ocrframe.optim import native_bf16

    pretend_gpu(monkeypatch, native_bf16=False)
    assert not native_bf16("cuda")
    pretend_gpu(monkeypatch, native_bf16=True)
    assert native_bf16("cuda")


@pytest.mark.parametrize("flags, native", [
    (dict(architecture="x86_64", avx512_f=True, avx512_bf16=False, amx_bf16=False), False),  # Skylake / Cascade Lake
    (dict(architecture="x86_64", avx512_f=True, avx512_bf16=True, amx_bf16=False), True),  # Cooper Lake, Zen 4
    (dict(architecture="x86_64", avx512_f=True, avx512_bf16=False, amx_bf16=True), True),  # AMX alone
    (dict(architecture="aarch64"), True)])
def test_a_cpu_counts_as_fast_at_bf16_only_with_the_instructions_not_with_avx512_alone(monkeypatch, flags, native):
    """oneDNN says yes to bf16 on every AVX-512 x86 CPU; there it is emulated, so the CPU's own flags decide."""
    from ocrframe.optim import native_bf16

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags)
    assert native_bf16("cpu") is native
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # AVX2 only
    assert native_bf16("cpu") is False


def test_cpu_autocast_wrapper_trains_in_fp32_on_a_gpu_since_it_cannot_scale_the_loss(caplog):
    from ocrframe.optim import AutocastOptimWrapper

    class OnGpu(torch.nn.Module):  # parameters that say they are on a GPU; nothing runs
        def parameters(self, recurse=True):
            yield torch.empty(1, device="meta").as_subclass(GpuTensor)

    class GpuTensor(torch.Tensor):
        @property
        def device(self):
            return torch.device("cuda")

    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1))
    with caplog.at_level("WARNING", logger="ocrframe"), wrapper.optim_context(OnGpu()):
        assert not torch.is_autocast_enabled("cuda")
    assert wrapper._enabled is False


def test_the_gpu_smoke_test_says_plainly_that_it_needs_a_gpu(tmp_path):
    import subprocess

    from conftest import REPO

    result = subprocess.run(["bash", str(REPO / "tools" / "gpu_smoke.sh"), str(tmp_path / "smoke")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "GPU present" in result.stdout and "FAIL" in result.stdout and "install a CUDA build" in result.stdout
