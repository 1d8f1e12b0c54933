"""Reading images with a trained model::

    reader = Reader.from_checkpoint("work_dirs/crnn_vgg_bilstm_ctc/best_word_acc_iter_N.pth")
    for p in reader.read(["word.png", pil_image, numpy_array], frames=True):
        print(p.text, p.score, p.extras["x"])   # x: pixel column of each character

Images go through the model's test pipeline (grayscale, height 32, aspect ratio kept), are sorted
by width and batched in width buckets, so a batch holds images of nearly the same width and little
of it is padding. The decoder and a lexicon can be chosen per call; any registered decoder works.

Paths: the network runs in PyTorch fp32 (the model as trained: the reference), PyTorch bf16 (a
bf16 copy, batch norm folded into the convolutions; fast on CPUs with native bf16 such as AVX-512
BF16 or AMX, and on GPUs), onnxruntime fp32 (the model exported to ONNX; same log-probabilities to
~1e-5), or onnxruntime int8 (the convolutions quantized; ``Reader.from_checkpoint`` quantizes
once, calibrated on the config's validation images, and caches the file). After any path but the
reference, the images whose transcription could differ from fp32's are re-read in fp32
(ocrframe/autotune.py), so greedy transcriptions are those of fp32.

``precision`` and ``runtime`` ("auto" by default) restrict the paths; with more than one left, the
Reader times them once per model, host and batch size -- one image at a time and full batches,
recheck included -- keeps the fastest exact one for each, and caches the choice next to the ONNX
files (``onnx_cache()``). ``Reader.explain()`` (``ocrframe read --explain``) says what was chosen
and why. Exporting runs the first export in this process and later ones in a fresh process, so a
script that makes several onnxruntime Readers needs `if __name__ == "__main__":`.
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image

import ocrframe.autotune as autotune
from ocrframe.checkpoint import load_model
from ocrframe.data.batching import as_pil, input_batches, padded_batches, pipeline_samples, width_buckets
from ocrframe.data.transforms import Compose, pad_collate
from ocrframe.decoders import ctc_alignment, decoder_for
from ocrframe.export import onnx_cache, onnx_model_for, onnx_session, validation_images
from ocrframe.model import Prediction
from ocrframe.optim import native_bf16

logger = logging.getLogger("ocrframe.inference")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
RUNTIMES = ("auto", "torch", "onnxruntime")


def fold_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (in eval mode) with each batch norm that directly follows a convolution in a
    ``nn.Sequential`` folded into the convolution's weights and replaced by ``nn.Identity``, in
    place: the same function with one memory pass fewer per convolution."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in model.modules():
        if isinstance(module, torch.nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if isinstance(conv, torch.nn.Conv2d) and type(norm) is torch.nn.BatchNorm2d and \
                        norm.track_running_stats and not (conv.training or norm.training):
                    module[i], module[i + 1] = fuse_conv_bn_eval(conv, norm), torch.nn.Identity()
    return model


class Reader:
    """A recognizer in eval mode with its test pipeline.

    Args:
        model: a built recognizer (``Reader.from_checkpoint`` builds it from a checkpoint).
        pipeline: the test pipeline (transform configs or callables).
        batch_size: images per forward pass.
        width_step: images whose widths (after resizing) round up to the same multiple of this
            share a batch; each batch is padded to its widest image.
        precision: "fp32", "bf16", "int8" or "auto" (see the module docstring).
        recheck_margin: with bf16 or int8, the least log-probability gap to a frame's best class
            for which another class is taken as a possible fp32 best (see ocrframe/autotune.py).
        runtime: "torch", "onnxruntime" or "auto" (int8 implies onnxruntime).
        onnx_model: the model's ONNX file at the forced precision (``ocrframe export CKPT --onnx F
            [--int8]``), or a dict {"fp32": file, "int8": file}, or a callable giving an
            onnxruntime session for a precision; ``Reader.from_checkpoint`` makes them.
        calibration_images: images to time the paths on with "auto" (default: the first images read).
    """

    def __init__(self, model, pipeline, batch_size: int = 64, width_step: int = 8, precision: str = "auto",
                 recheck_margin: float = 1.0, runtime: str = "auto", onnx_model=None,
                 calibration_images: Iterable | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.model = model.eval()
        self.pipeline = Compose(pipeline)
        self.pipeline_config = pipeline
        self.batch_size, self.width_step = batch_size, width_step
        self.device = next(model.parameters()).device
        self.runtime = check_runtime(runtime, precision, self.device.type)
        self.precision, self.recheck_margin = precision, recheck_margin
        self.rechecked = 0  # images re-read in fp32 so far
        self.calibration_images = calibration_images if calibration_images is None or callable(calibration_images) \
            else list(calibration_images)
        self._onnx_given: set[str] = set()
        if callable(onnx_model):
            self._session_for = onnx_model
        else:
            files = {} if onnx_model is None else dict(onnx_model) if isinstance(onnx_model, dict) else \
                {"int8" if precision == "int8" else "fp32": onnx_model}
            self._session_for = lambda p: onnx_session(files[p]) if p in files else None
            self._onnx_given = set(files)
        self._sessions: dict = {}
        self._bf16_model = None
        self.paths = self._candidate_paths(onnx_model)
        if not self.paths:
            raise ValueError(f"runtime='onnxruntime' needs the model's ONNX file (onnx_model=...): `ocrframe export "
                             f"CKPT --onnx FILE{' --int8' if precision == 'int8' else ''}` writes one, "
                             "Reader.from_checkpoint(...) makes one itself")
        self.plan = None
        if len(self.paths) == 1:  # nothing to choose
            (path,) = self.paths
            # bf16, int8: recheck_margin as it is when reading (None)
            margin = None if precision in ("bf16", "int8") else autotune.MARGIN_FLOOR.get(path, 0.0)
            entry = dict(path=path, margin=margin, reason="the only path allowed by precision and runtime")
            self.plan = dict(host=autotune.host_key(), batch_size=batch_size,
                             classes={cls: entry for cls in autotune.CLASSES})
        # the sessions of a forced onnxruntime path are made now: a missing file is an error here
        for path in self.paths if len(self.paths) == 1 else ():
            if path.startswith("onnxruntime"):
                self.session(path.split()[1])

    def _candidate_paths(self, onnx_model) -> list[str]:
        """The paths allowed by the precision and runtime asked for, and available here."""
        precisions = ["fp32", "bf16", "int8"] if self.precision == "auto" else [self.precision]
        runtimes = ["torch", "onnxruntime"] if self.runtime == "auto" else [self.runtime]
        paths = []
        for runtime, precision in itertools.product(runtimes, precisions):
            path = f"{runtime} {precision}"
            if path not in autotune.PATHS:
                continue
            # bf16 where it has fast kernels: emulated, it is several times slower than fp32
            if self.precision == "auto" and path == "torch bf16" and not native_bf16(self.device.type):
                continue
            if runtime == "onnxruntime":
                if self.device.type != "cpu" or onnx_model is None or not onnxruntime_available():
                    continue
                if not callable(onnx_model) and precision not in self._onnx_given:
                    continue
            paths.append(path)
        return paths

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, config: str | Path | None = None, device: str = "auto",
                        calibration: Iterable | None = None, **kwargs) -> "Reader":
        """Build the recognizer from the config stored in the checkpoint (or ``config``). The ONNX
        files onnxruntime paths need are exported when first used (see ``onnx_model_for``; int8 is
        calibrated on ``calibration`` images if given). With "auto", the paths are timed on the
        config's first validation images (else on the first images read)."""
        precision, runtime = kwargs.get("precision", "auto"), kwargs.get("runtime", "auto")
        if device == "auto":
            on_onnxruntime = precision == "int8" or runtime == "onnxruntime"
            device = "cuda" if torch.cuda.is_available() and not on_onnxruntime else "cpu"
        target = check_device(device)
        check_runtime(runtime, precision, target.type)
        if target.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: this torch build or machine has no CUDA "
                             "(torch.cuda.is_available() is False); use cpu")
        if calibration is not None and precision != "int8":
            raise ValueError("calibration images are for precision='int8'")
        model, cfg = load_model(checkpoint, config)
        if kwargs.get("onnx_model") is None:
            def session_for(onnx_precision: str):
                with tempfile.TemporaryDirectory() as tmp:  # the session keeps the model in memory
                    return onnx_session(onnx_model_for(checkpoint, model, cfg, onnx_precision == "int8", calibration,
                                                       Path(tmp)))
            kwargs["onnx_model"] = session_for
        if "auto" in (precision, runtime) and kwargs.get("calibration_images") is None:
            kwargs["calibration_images"] = lambda: validation_images(cfg, autotune.TIMING_IMAGES)
        return cls(model.to(device), cfg.test_pipeline, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> "Reader":
        """A released model by name (``ocrframe models`` lists them; see ``ocrframe/pretrained.py``);
        the same as ``from_checkpoint``, which also takes names, but never a local file of that name."""
        from ocrframe.pretrained import released_weights

        return cls.from_checkpoint(released_weights(name), **kwargs)

    # -- paths --------------------------------------------------------------------------------------
    def session(self, precision: str):
        """The onnxruntime session of the model at ``precision``, made on first use."""
        if precision not in self._sessions:
            session = self._session_for(precision)
            if session is None:
                raise ValueError(f"no ONNX file of the model in {precision} was given")
            self._sessions[precision] = session
        return self._sessions[precision]

    @torch.inference_mode()
    def run_path(self, path: str, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame log-probabilities (N, T, K) in fp32 by one path, without recheck. ``widths``
        (each image's width before padding) let every path read a padded batch as the torch model
        does: where it reads each image as alone, onnxruntime (whose graphs take images only) runs
        the images of each width without their padding; frames beyond an image's own are zeros."""
        images = images.to(self.device)
        given = None if widths is None else dict(widths=widths.to(self.device))
        if path == "torch fp32":
            return self.model(images, given).float()
        if path == "torch bf16":
            # a bf16 copy of the weights rather than autocast, which casts every weight on every call:
            # at batch 1 that cast cost more than the network (docs/benchmarks.md)
            if self._bf16_model is None:
                self._bf16_model = fold_batch_norm(copy.deepcopy(self.model)).to(torch.bfloat16)
            return self._bf16_model(images.to(torch.bfloat16), given).float()
        runtime, precision = path.split()
        if runtime != "onnxruntime" or precision not in ("fp32", "int8"):
            raise ValueError(f"unknown path {path!r}; paths: {', '.join(autotune.PATHS)}")
        session, images = self.session(precision), images.cpu()
        padded = widths is not None and bool((widths < images.shape[-1]).any())
        if not (padded and self.model.reads_padded_images_alone):
            return torch.from_numpy(session.run(None, {"images": images.contiguous().numpy()})[0])
        widths = widths.cpu()
        frames = int(self.model.frame_lengths(torch.tensor([images.shape[-1]]))[0])
        out = None
        for width in widths.unique().tolist():
            rows = (widths == width).nonzero()[:, 0]
            part = torch.from_numpy(session.run(None, {"images": images[rows, ..., :width].contiguous().numpy()})[0])
            if out is None:
                out = torch.zeros(len(images), frames, part.shape[-1])
            out[rows, : part.shape[1]] = part
        return out

    def path_for(self, count: int) -> tuple[str, float]:
        """(path, recheck margin) for a batch of ``count`` images."""
        if self.plan is None:
            self.calibrate()
        entry = self.plan["classes"][autotune.batch_class(count, self.batch_size)]
        return entry["path"], self.recheck_margin if entry["margin"] is None else entry["margin"]

    def calibrate(self, images: Iterable | None = None, again: bool = False, fallback: list | None = None) -> dict:
        """Choose the path for each batch-size class: from the cache if this model, host and batch
        size were timed before (unless ``again``), else by timing each path on ``images`` (default:
        the calibration images, else ``fallback``) and caching the result. Returns the plan."""
        if len(self.paths) == 1:
            return self.plan
        cache = autotune.plan_file(onnx_cache(), autotune.model_key(self.model, self.pipeline_config),
                                   self.batch_size)
        plan = None if again else autotune.load_plan(cache)
        if plan is not None and all(e["path"] in self.paths for e in plan["classes"].values()):
            self.plan = plan
            logger.info("inference paths (cached in %s): %s", cache, self._summary())
            return plan
        if images is None and callable(self.calibration_images):
            try:
                self.calibration_images = self.calibration_images()
            except Exception as exc:  # e.g. a config whose validation set is elsewhere
                logger.warning("timing the inference paths on the images read: the calibration images failed to "
                               "load (%s)", exc)
                self.calibration_images = None
        if images is None:
            images = self.calibration_images or fallback
        if not images:
            raise ValueError("choosing the inference path needs images to time it on: give calibration_images, "
                             "or read images first")
        pils = [as_pil(image, i) for i, image in enumerate(list(images)[:autotune.TIMING_IMAGES])]
        samples = pipeline_samples(pils, self.pipeline)
        singles = [self._network_input(pad_collate([s])) for s in samples[:autotune.SINGLE_IMAGES]]
        # one full batch as a large read runs it: the images of the commonest width bucket (repeated
        # if too few), so the batch holds as little padding as reading's batches do
        bucket = max(width_buckets([s["width"] for s in samples], len(samples), self.width_step), key=len)
        common = [samples[i] for i in bucket]
        full = (common * math.ceil(self.batch_size / len(common)))[:self.batch_size]
        batches = dict(single=singles, batch=[self._network_input(pad_collate(full))])
        for path in [p for p in self.paths if p.startswith("onnxruntime")]:
            try:
                self.session(path.split()[1])
            except Exception as exc:  # e.g. a model the ONNX exporter cannot export: time the others
                # the exporter's messages carry whole tracebacks: their first line says what failed
                reason = (str(exc).strip().splitlines() or [""])[0][:300]
                logger.warning("leaving out the inference path %s (%s: %s); `ocrframe export CKPT --onnx OUT` shows "
                               "the whole error", path, type(exc).__name__, reason)
                self.paths.remove(path)
        logger.info("timing the inference paths %s on %d images (once per model, host and batch size)",
                    ", ".join(self.paths), len(pils))
        self.plan = autotune.calibrate(self, batches, self.paths)
        autotune.save_plan(cache, self.plan)
        logger.info("inference paths (cached in %s): %s", cache, self._summary())
        return self.plan

    @staticmethod
    def _network_input(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["inputs"], batch["data_samples"]["widths"]

    def _summary(self) -> str:
        return "; ".join(f"{cls}: {e['path']}" for cls, e in self.plan["classes"].items())

    def explain(self) -> str:
        """Which path reads which batches, and why."""
        if self.plan is None:
            self.calibrate()
        if len(self.paths) == 1:
            return (f"inference path: {self.paths[0]} for every batch (precision={self.precision!r}, "
                    f"runtime={self.runtime!r}: the only path they allow)")
        return autotune.explain(self.plan)

    @property
    def charset(self):
        return self.model.charset

    # -- the network ------------------------------------------------------------------------------
    @torch.inference_mode()
    def log_probs(self, images: torch.Tensor, widths: torch.Tensor | None = None, path: str | None = None,
                  margin: float | None = None, rule: str = "labelling") -> torch.Tensor:
        """Per-frame log-probabilities (N, T, K) in fp32, by the path chosen for this batch size
        (or ``path``, with ``margin``), the images its recheck ``rule`` selects re-read in fp32:
        "labelling" (greedy transcriptions stay those of fp32) or "near ties" (any frame within
        the margin; for decoders that read more than the best path). Frames at or beyond
        ``widths`` (each image's width before padding; None: the batch's width) are padding and
        are not looked at."""
        if path is None:
            path, chosen_margin = self.path_for(len(images))
            margin = chosen_margin if margin is None else margin
        elif margin is None:
            margin = self.recheck_margin
        log_probs = self.run_path(path, images, widths)
        if path == autotune.REFERENCE:
            return log_probs
        if widths is None:
            frame_lengths = torch.full((len(images),), log_probs.shape[1])
        else:
            frame_lengths = self.model.frame_lengths(widths.cpu(), at_most=log_probs.shape[1])
        if rule == "labelling":
            reread = autotune.labelling_may_change(log_probs, frame_lengths, margin, self.charset.blank)
        elif rule == "near ties":
            reread = autotune.near_ties(log_probs, frame_lengths, margin)
        else:
            raise ValueError(f"rule must be 'labelling' or 'near ties', not {rule!r}")
        if reread.any():
            self.rechecked += int(reread.sum())
            log_probs[reread] = self.run_path(autotune.REFERENCE, images[reread],
                                              None if widths is None else widths[reread]).to(log_probs.device)
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
        if isinstance(images, (str, Path, Image.Image, np.ndarray)):  # iterated: a path's characters, rows
            raise TypeError(f"Reader.read takes a list of images, not one {type(images).__name__}: "
                            "for one image, reader.read([image])[0]")
        pils = [as_pil(image, i) for i, image in enumerate(images)]
        samples = pipeline_samples(pils, self.pipeline)
        report_squeezed(samples)
        decoder, decode_kwargs = decoder_for(decoder, lexicon, len(samples), self.model.decoder, self.charset)
        if self.plan is None:
            self.calibrate(fallback=pils)  # without calibration images: timed on the first images read
        # a decoder that reads only the best path needs a recheck only where that path's text can change
        rule = "labelling" if getattr(decoder, "best_path_only", False) else "near ties"
        predictions: list[Prediction | None] = [None] * len(samples)
        for indices, batch in padded_batches(samples, self.batch_size, self.width_step):
            widths = batch["data_samples"]["widths"]
            log_probs = self.log_probs(batch["inputs"], widths, rule=rule)
            lengths = self.model.frame_lengths(widths, at_most=log_probs.shape[1])
            kwargs = {k: [v[i] for i in indices] for k, v in decode_kwargs.items()}
            for i, prediction in zip(indices, decoder.decode(log_probs, lengths, **kwargs)):
                predictions[i] = prediction
            if frames:
                for row, i in enumerate(indices):
                    # a step that cropped the image said where (extras["crop"]: x0, y0, x1, y1)
                    x0, _, x1, _ = samples[i].get("extras", {}).get("crop") or (0, 0, pils[i].width, 0)
                    self._add_positions(predictions[i], log_probs[row, : lengths[row]], x0, x1)
        for sample, prediction in zip(samples, predictions):  # what pipeline steps found, e.g. a staff's geometry
            prediction.extras.update(sample.get("extras", {}))
        return predictions

    def input_batches(self, images: Iterable) -> list[np.ndarray]:
        """Images as the network takes them: through the pipeline, in padded width-bucket batches."""
        return input_batches(images, self.pipeline, self.batch_size, self.width_step)

    def _add_positions(self, prediction: Prediction, log_probs: torch.Tensor, x0: float, x1: float) -> None:
        """Each character's frame, and its pixel column in the image as given, whose columns x0..x1
        the network read."""
        tokens = self.charset.encode(prediction.text)
        frame_of = ctc_alignment(log_probs.cpu().numpy(), tokens, self.charset.blank)
        pixels_per_frame = (x1 - x0) / max(len(log_probs), 1)
        prediction.extras["frames"] = frame_of
        prediction.extras["x"] = [round(x0 + (t + 0.5) * pixels_per_frame, 1) for t in frame_of]


def report_squeezed(samples: list[dict]) -> None:
    """Warn about images the pipeline squeezed to its widest (``Resize``'s ``max_width``)."""
    squeezed = [(i, s["extras"]["squeezed_from"]) for i, s in enumerate(samples)
                if "squeezed_from" in s.get("extras", {})]
    if squeezed:
        index, natural = squeezed[0]
        logger.warning("%d of %d images were wider than the pipeline's Resize(max_width=...) and were squeezed to %d "
                       "px, which distorts their glyphs (e.g. image %d: %d px at the model's height); split long "
                       "lines, or raise max_width in the config's test_pipeline", len(squeezed), len(samples),
                       samples[index]["width"], index, natural)


def check_device(device: str) -> torch.device:
    """``device`` as a torch.device, or a ValueError saying what is wrong with it."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device torch knows: use cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: the Reader runs on cpu or cuda")
    return parsed


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
    if runtime == "auto" and precision == "bf16":
        runtime = "torch"
    return runtime


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
