"""Reading images with a trained model::

    reader = Reader.from_checkpoint("work_dirs/crnn_vgg_bilstm_ctc/best_word_acc_iter_N.pth")
    for p in reader.read(["word.png", pil_image, numpy_array], frames=True):
        print(p.text, p.score, p.extras["x"])   # x: pixel column of each character

Images go through the model's test pipeline (grayscale, height 32, aspect ratio kept), are sorted
by width and batched in width buckets, so a batch holds images of nearly the same width and little
of it is padding. The decoder and a lexicon can be chosen per call; any registered decoder works.

Precision: "fp32" is the model as trained, exact. "bf16" runs the network under bf16 autocast
(fast on CPUs with native bf16, e.g. AVX-512 BF16 or AMX, and on GPUs) and re-runs in fp32 every
image whose best path has a frame where the two best classes are closer than ``recheck_margin``,
so greedy transcriptions stay those of fp32. "int8" does the same with the model quantized to int8
and run by onnxruntime (``Reader.from_checkpoint`` quantizes once, calibrated on the config's
validation images, and caches the file). "auto" picks bf16 where the hardware has it.

Runtime: "torch", or "onnxruntime" (CPU) running the model exported to ONNX; fp32 there gives the
same log-probabilities to ~1e-5 and is often faster on CPUs (docs/benchmarks.md). int8 always
runs on onnxruntime. Exporting runs the first export in this process and later ones in a fresh
process, so a script that makes several onnxruntime Readers needs `if __name__ == "__main__":`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ocrframe.checkpoint import load_model
from ocrframe.data.batching import as_pil, input_batches, padded_batches, pipeline_samples
from ocrframe.data.transforms import Compose
from ocrframe.decoders import ctc_alignment, decoder_for
from ocrframe.model import Prediction
from ocrframe.optim import native_bf16

PRECISIONS = ("auto", "fp32", "bf16", "int8")
RUNTIMES = ("torch", "onnxruntime")


class Reader:
    """A recognizer in eval mode with its test pipeline.

    Args:
        model: a built recognizer (``Reader.from_checkpoint`` builds it from a checkpoint).
        pipeline: the test pipeline (transform configs or callables).
        batch_size: images per forward pass.
        width_step: images whose widths (after resizing) round up to the same multiple of this
            share a batch; each batch is padded to its widest image.
        precision: "fp32", "bf16", "int8" or "auto" (see the module docstring).
        recheck_margin: with bf16 or int8, images whose best path has a frame with a top-2
            log-probability gap below this are re-read in fp32.
        runtime: "torch" or "onnxruntime" (int8 implies onnxruntime).
        onnx_model: with onnxruntime, the model's ONNX file at this precision (``ocrframe export
            CKPT --onnx F [--int8]``; ``Reader.from_checkpoint`` makes it).
    """

    def __init__(self, model, pipeline, batch_size: int = 64, width_step: int = 8, precision: str = "auto",
                 recheck_margin: float = 1.0, runtime: str = "torch", onnx_model: str | Path | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.model = model.eval()
        self.pipeline = Compose(pipeline)
        self.batch_size, self.width_step = batch_size, width_step
        self.device = next(model.parameters()).device
        self.runtime = check_runtime(runtime, precision, self.device.type)
        if precision == "auto":
            precision = "bf16" if native_bf16(self.device.type) and self.runtime == "torch" else "fp32"
        self.precision, self.recheck_margin = precision, recheck_margin
        self.rechecked = 0  # images re-read in fp32 so far (bf16, int8)
        if self.runtime == "onnxruntime":
            if onnx_model is None:
                raise ValueError(f"runtime='onnxruntime' needs the model's ONNX file (onnx_model=...): `ocrframe export "
                                 f"CKPT --onnx FILE{' --int8' if precision == 'int8' else ''}` writes one, "
                                 "Reader.from_checkpoint(...) makes one itself")
            from ocrframe.export import onnx_session

            self.session = onnx_session(onnx_model)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, config: str | Path | None = None, device: str = "auto",
                        calibration: Iterable | None = None, **kwargs) -> "Reader":
        """Build the recognizer from the config stored in the checkpoint (or ``config``). For
        onnxruntime without ``onnx_model``, export it (see ``onnx_model_for``; int8 is calibrated on
        ``calibration`` images if given)."""
        int8 = kwargs.get("precision") == "int8"
        on_onnxruntime = int8 or kwargs.get("runtime") == "onnxruntime"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() and not on_onnxruntime else "cpu"
        check_runtime(kwargs.get("runtime", "torch"), kwargs.get("precision", "auto"), torch.device(device).type)
        if calibration is not None and not int8:
            raise ValueError("calibration images are for precision='int8'")
        model, cfg = load_model(checkpoint, config)
        if on_onnxruntime and kwargs.get("onnx_model") is None:
            from ocrframe.export import onnx_model_for

            with tempfile.TemporaryDirectory() as tmp:  # the session keeps the model in memory
                kwargs["onnx_model"] = onnx_model_for(checkpoint, model, cfg, int8, calibration, Path(tmp))
                return cls(model.to(device), cfg.test_pipeline, **kwargs)
        return cls(model.to(device), cfg.test_pipeline, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> "Reader":
        """A released model by name (``ocrframe models`` lists them; see ``ocrframe/pretrained.py``);
        the same as ``from_checkpoint``, which also takes names."""
        from ocrframe.pretrained import available_models

        if name not in available_models():
            raise ValueError(f"no released model is named {name!r}; installed: "
                             f"{', '.join(sorted(available_models())) or 'none'} (`ocrframe models`)")
        return cls.from_checkpoint(name, **kwargs)

    @property
    def charset(self):
        return self.model.charset

    # -- the network ------------------------------------------------------------------------------
    @torch.inference_mode()
    def log_probs(self, images: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame log-probabilities (N, T, K) in fp32, at this reader's precision; frames at
        or beyond ``frame_lengths`` (padding) are not rechecked."""
        images = images.to(self.device)
        if self.runtime == "onnxruntime":
            log_probs = torch.from_numpy(self.session.run(None, {"images": images.contiguous().numpy()})[0])
            if self.precision == "fp32":
                return log_probs
        elif self.precision == "fp32":
            return self.model(images).float()
        else:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                log_probs = self.model(images).float()
        top2 = log_probs.topk(2, dim=-1).values
        close = (top2[..., 0] - top2[..., 1]) < self.recheck_margin
        if frame_lengths is not None:
            close &= torch.arange(close.shape[1], device=close.device) < frame_lengths.to(close.device)[:, None]
        close = close.any(dim=1)
        if close.any():
            self.rechecked += int(close.sum())
            log_probs[close] = self.model(images[close]).float()
        return log_probs

    # -- reading ----------------------------------------------------------------------------------
    def read(self, images: Iterable, decoder=None, lexicon=None, frames: bool = False) -> list[Prediction]:
        """Read images given as paths, PIL images or HxW(xC) uint8 arrays: one Prediction each,
        in the order given.

        decoder: None (the model's own), a registered decoder name ("GreedyDecoder"; a unique
            case-insensitive part such as "beam" works), a decoder config dict, or a decoder.
        lexicon: words the result must come from -- a list of words or a file of words (one
            lexicon for every image), or a list with one word list per image.
        frames: add ``extras["frames"]`` (the frame index of each character) and ``extras["x"]``
            (its pixel column in the image as given).
        """
        pils = [as_pil(image, i) for i, image in enumerate(images)]
        samples = pipeline_samples(pils, self.pipeline)
        decoder, decode_kwargs = decoder_for(decoder, lexicon, len(samples), self.model.decoder, self.charset)
        predictions: list[Prediction | None] = [None] * len(samples)
        for indices, batch in padded_batches(samples, self.batch_size, self.width_step):
            lengths = self.model.frame_lengths(batch["data_samples"]["widths"])
            log_probs = self.log_probs(batch["inputs"], lengths)
            lengths = lengths.clamp(max=log_probs.shape[1])
            kwargs = {k: [v[i] for i in indices] for k, v in decode_kwargs.items()}
            for i, prediction in zip(indices, decoder.decode(log_probs, lengths, **kwargs)):
                predictions[i] = prediction
            if frames:
                for row, i in enumerate(indices):
                    self._add_positions(predictions[i], log_probs[row, : lengths[row]],
                                        samples[i]["width"], pils[i].width)
        for sample, prediction in zip(samples, predictions):  # what pipeline steps found, e.g. a staff's geometry
            prediction.extras.update(sample.get("extras", {}))
        return predictions

    def input_batches(self, images: Iterable) -> list[np.ndarray]:
        """Images as the network takes them: through the pipeline, in padded width-bucket batches."""
        return input_batches(images, self.pipeline, self.batch_size, self.width_step)

    def _add_positions(self, prediction: Prediction, log_probs: torch.Tensor, resized_width: int,
                       original_width: int) -> None:
        tokens = self.charset.encode(prediction.text)
        frame_of = ctc_alignment(log_probs.cpu().numpy(), tokens, self.charset.blank)
        pixels_per_frame = resized_width / max(len(log_probs), 1) * original_width / resized_width
        prediction.extras["frames"] = frame_of
        prediction.extras["x"] = [round((t + 0.5) * pixels_per_frame, 1) for t in frame_of]


def check_runtime(runtime: str, precision: str, device: str) -> str:
    """The runtime a Reader uses (int8 implies onnxruntime), or a ValueError for a combination
    that cannot run -- before anything is exported."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if precision == "int8":
        runtime = "onnxruntime"
    if runtime == "onnxruntime" and precision == "bf16":
        raise ValueError("precision='bf16' runs on torch; onnxruntime runs fp32 or int8")
    if runtime == "onnxruntime" and device != "cpu":
        raise ValueError(f"onnxruntime runs on the CPU here, not on {device}: use device='cpu'")
    return runtime


