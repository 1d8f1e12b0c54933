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

import hashlib
import inspect
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from ocrframe.checkpoint import load_checkpoint, load_weights, stored_config, use_trained_model
from ocrframe.data.transforms import Compose, pad_collate
from ocrframe.engine import native_bf16
from ocrframe.model import Prediction, takes_per_image_lexicons
from ocrframe.registry import DECODERS, MODELS, ComponentError

logger = logging.getLogger("ocrframe.inference")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
RUNTIMES = ("torch", "onnxruntime")
CALIBRATION_IMAGES = 128  # int8 activation ranges: enough images to see the range of each layer
ONNX_RECIPE = "opset 18; int8: QDQ, convolutions but the first"  # change it when export_onnx/quantize_onnx change


def load_model_config(checkpoint: str | Path, config: str | Path | None = None) -> tuple[Config, dict]:
    """The config a checkpoint was trained with (stored in it as data by the runner, or ``config``,
    a file the user names) and its weights. A stored config is never executed (ocrframe/checkpoint.py)."""
    state = load_checkpoint(checkpoint)
    if config is not None:
        if not Path(config).is_file():
            raise FileNotFoundError(f"config {config} does not exist")
        cfg = use_trained_model(Config.fromfile(str(config)), state)
    else:
        cfg = stored_config(state, checkpoint)
    return cfg, state.get("state_dict", state)


def load_model(checkpoint: str | Path, config: str | Path | None = None):
    """(recognizer in eval mode with the checkpoint's weights, its config)."""
    cfg, weights = load_model_config(checkpoint, config)
    model = MODELS.build(cfg.model)
    load_weights(model, weights, checkpoint)
    return model.eval(), cfg


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
            with tempfile.TemporaryDirectory() as tmp:  # the session keeps the model in memory
                kwargs["onnx_model"] = onnx_model_for(checkpoint, model, cfg, int8, calibration, Path(tmp))
                return cls(model.to(device), cfg.test_pipeline, **kwargs)
        return cls(model.to(device), cfg.test_pipeline, **kwargs)

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
        samples = self._samples(pils)
        decoder, decode_kwargs = self._decoder_for(decoder, lexicon, len(samples))
        predictions: list[Prediction | None] = [None] * len(samples)
        for indices, batch in self._batches(samples):
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

    def _samples(self, pils: list[Image.Image]) -> list[dict]:
        return [self.pipeline(dict(image=pil, text="", key=str(i))) for i, pil in enumerate(pils)]

    def _batches(self, samples: list[dict]):
        """(indices, padded batch) per width bucket of pipeline outputs."""
        for indices in width_buckets([s["width"] for s in samples], self.batch_size, self.width_step):
            yield indices, pad_collate([samples[i] for i in indices])

    def input_batches(self, images: Iterable) -> list[np.ndarray]:
        """Images as the network takes them: through the pipeline, in padded width-bucket batches."""
        samples = self._samples([as_pil(image, i) for i, image in enumerate(images)])
        return [batch["inputs"].numpy() for _, batch in self._batches(samples)]

    def _add_positions(self, prediction: Prediction, log_probs: torch.Tensor, resized_width: int,
                       original_width: int) -> None:
        tokens = self.charset.encode(prediction.text)
        frame_of = ctc_alignment(log_probs.cpu().numpy(), tokens, self.charset.blank)
        pixels_per_frame = resized_width / max(len(log_probs), 1) * original_width / resized_width
        prediction.extras["frames"] = frame_of
        prediction.extras["x"] = [round((t + 0.5) * pixels_per_frame, 1) for t in frame_of]

    # -- decoders and lexicons --------------------------------------------------------------------
    def _decoder_for(self, spec, lexicon, count: int):
        """(decoder, extra keyword arguments of decode() holding one value per image)."""
        if lexicon is None:
            return (self.model.decoder if spec is None else build_decoder(spec, self.charset)), {}
        per_image = isinstance(lexicon, (list, tuple)) and len(lexicon) > 0 and not isinstance(lexicon[0], str)
        if per_image and len(lexicon) != count:
            raise ValueError(f"got {len(lexicon)} per-image lexicons for {count} images")
        words = None if per_image else read_lexicon(lexicon)
        if spec is None:
            spec = _the_lexicon_decoder()
        if words is not None and isinstance(spec, (str, dict)):
            cfg = dict(type=find_decoder(spec)) if isinstance(spec, str) else dict(spec)
            if "lexicon" in _init_params(DECODERS.get(cfg["type"])):
                return build_decoder(dict(cfg, lexicon=words), self.charset), {}
            spec = cfg
        decoder = build_decoder(spec, self.charset)
        if not takes_per_image_lexicons(decoder):
            raise ValueError(f"decoder {type(decoder).__name__} does not use a lexicon; decoders that do: "
                             f"{', '.join(_lexicon_decoders()) or '(none installed)'}")
        return decoder, dict(lexicons=list(lexicon) if per_image else [words] * count)


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


def onnx_session(path: str | Path):
    """An onnxruntime CPU session using as many threads as torch."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("runtime onnxruntime needs it: pip install 'ocrframe[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # its shape-inference warnings about the free width are expected
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_cache() -> Path:
    """Where ONNX files of checkpoints are kept: $OCRFRAME_CACHE/onnx, else ~/.cache/ocrframe/onnx."""
    return Path(os.environ.get("OCRFRAME_CACHE") or Path.home() / ".cache" / "ocrframe") / "onnx"


def onnx_model_for(checkpoint: str | Path, model, cfg: Config, int8: bool = False, calibration: Iterable | None = None,
                   scratch: Path | None = None) -> Path:
    """The ONNX file (fp32, or int8 calibrated on the config's first validation images) of a
    checkpoint, made once and cached, keyed by the checkpoint's and the config's content; int8 is
    quantized from the cached fp32 file. An int8 file calibrated on ``calibration`` images instead
    is written to ``scratch``."""
    import onnxruntime

    from ocrframe.export import export_onnx

    # What the files depend on: the weights, the config, how they are made and who makes them.
    recipe = f"{ONNX_RECIPE} {CALIBRATION_IMAGES} torch {torch.__version__} onnxruntime {onnxruntime.__version__}"
    key = hashlib.sha256(Path(checkpoint).read_bytes() + cfg.pretty_text.encode() + recipe.encode()).hexdigest()[:20]
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


def quantized_model(model, cfg: Config, out: str | Path, calibration: Iterable | None = None, opset: int = 18,
                    fp32: str | Path | None = None) -> Path:
    """Write ``model`` to ``out`` in int8, calibrated on up to CALIBRATION_IMAGES of
    ``calibration`` (images), or on the config's first validation images; quantized from its
    ``fp32`` ONNX file when there is one, else exported first."""
    from ocrframe.export import export_int8, quantize_onnx

    calibration = validation_images(cfg) if calibration is None else list(calibration)[:CALIBRATION_IMAGES]
    logger.info("quantizing to int8, calibrated on %d images -> %s", len(calibration), out)
    batches = Reader(model, cfg.test_pipeline, precision="fp32").input_batches(calibration)
    if fp32 is not None:
        return quantize_onnx(fp32, out, batches)
    return export_int8(model, out, batches, cfg.test_pipeline, opset)


def validation_images(cfg: Config, count: int | None = None) -> list:
    """The first ``count`` (default CALIBRATION_IMAGES) images of the config's validation set, as
    loaded (before its pipeline)."""
    from ocrframe.runner import build_dataset

    count = count or CALIBRATION_IMAGES
    try:
        dataset = build_dataset(cfg.val_dataloader.dataset, raw=True)
        return [dataset[i]["image"] for i in range(min(count, len(dataset)))]
    except Exception as exc:
        raise RuntimeError(f"int8 calibration reads the config's validation set, which failed ({type(exc).__name__}: "
                           f"{exc}); give calibration images instead (Reader.from_checkpoint(..., calibration="
                           "images), `--calibration FOLDER`)") from exc


def width_buckets(widths: Sequence[int], batch_size: int, width_step: int = 8) -> list[list[int]]:
    """Indices grouped into batches of images whose widths round up to the same multiple of
    ``width_step``, narrowest first; at most ``batch_size`` per batch."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    batches: list[list[int]] = []
    for i in order:
        bucket = math.ceil(widths[i] / width_step)
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and math.ceil(widths[last[0]] / width_step) == bucket:
            last.append(i)
        else:
            batches.append([i])
    return batches


def ctc_alignment(log_probs: np.ndarray, tokens: Sequence[int], blank: int) -> list[int]:
    """Frame at which each token starts on the most probable CTC path that yields ``tokens``
    (Viterbi over the usual blank-interleaved states). ``log_probs``: (T, K)."""
    if not tokens:
        return []
    states = np.full(2 * len(tokens) + 1, blank)
    states[1::2] = tokens
    num_frames, num_states = len(log_probs), len(states)
    # a state may also be entered from two back when it is a token differing from that one
    skip = np.zeros(num_states, dtype=bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(num_states, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    came_from = np.zeros((num_frames, num_states), dtype=np.int64)
    came_from[0] = np.arange(num_states)
    for t in range(1, num_frames):
        stay, step, jump = score, np.r_[-np.inf, score[:-1]], np.r_[-np.inf, -np.inf, score[:-2]]
        jump = np.where(skip, jump, -np.inf)
        best = np.argmax(np.stack([stay, step, jump]), axis=0)
        score = np.choose(best, [stay, step, jump]) + log_probs[t, states]
        came_from[t] = np.arange(num_states) - best
    state = num_states - 1 if score[-1] >= score[-2] else num_states - 2
    if not np.isfinite(score[state]):
        raise ValueError(f"{len(tokens)} tokens cannot be aligned to {num_frames} frames")
    path = [state]
    for t in range(num_frames - 1, 0, -1):
        state = came_from[t, state]
        path.append(state)
    path.reverse()
    starts = {}
    for t, s in enumerate(path):
        if s % 2 == 1 and s not in starts:
            starts[s] = t
    return [starts[2 * k + 1] for k in range(len(tokens))]


# -- decoders --------------------------------------------------------------------------------------

def find_decoder(name: str) -> str:
    """A registered decoder name from an exact name, a case-insensitive one, or a unique
    case-insensitive part of one ("beam", "greedy")."""
    names = _decoder_names()
    if name in names:
        return name
    matches = [n for n in names if n.lower() == name.lower()] or [n for n in names if name.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ComponentError(f"decoder {name!r} is ambiguous: it matches {', '.join(matches)}; give the full name")
    DECODERS.get(name)  # raises, naming the nearest registered decoders
    raise AssertionError("unreachable")


def build_decoder(spec, charset):
    """A decoder from a name, a config dict or a ready decoder, built for ``charset``."""
    if hasattr(spec, "decode"):
        return spec
    cfg = dict(type=find_decoder(spec)) if isinstance(spec, str) else dict(spec)
    if isinstance(cfg.get("type"), str):
        cfg["type"] = find_decoder(cfg["type"])
    return DECODERS.build(cfg, default_args=dict(charset=charset))


def _decoder_names() -> list[str]:
    from ocrframe.plugins import load_plugins

    load_plugins()
    return sorted(DECODERS.module_dict)


def _init_params(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _lexicon_decoders() -> list[str]:
    """Registered decoders that take a lexicon (``lexicon`` at construction or ``lexicons`` in decode)."""
    def takes_lexicon(cls) -> bool:
        return "lexicon" in _init_params(cls) or takes_per_image_lexicons(cls)

    return [name for name in _decoder_names() if takes_lexicon(DECODERS.module_dict[name])]


PREFERRED_LEXICON_DECODER = "LexiconDecoder"  # the CTC plugin's: the paper's lexicon-based transcription


def _the_lexicon_decoder() -> str:
    """The decoder used for a lexicon given without one: LexiconDecoder when installed, else the
    only decoder that takes a lexicon."""
    found = _lexicon_decoders()
    if PREFERRED_LEXICON_DECODER in found:
        return PREFERRED_LEXICON_DECODER
    if len(found) != 1:
        raise ValueError("a lexicon was given without a decoder; choose one that uses a lexicon: "
                         + (", ".join(found) if found else "none is installed"))
    return found[0]


def read_lexicon(source) -> list[str]:
    """Words from a list, or from a file of words (whitespace- or line-separated). A Hunspell
    dictionary (``.dic``, e.g. /usr/share/hunspell/en_US.dic) loses its first line (the word
    count) and each word's affix flags (``word/FLAGS``)."""
    if isinstance(source, (list, tuple)):
        return list(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"lexicon file {path} does not exist (one word per line)")
    if path.suffix == ".dic":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip().isdigit():
            lines = lines[1:]
        words = [line.split("/", 1)[0].strip() for line in lines]
        words = [w for w in words if w]
    else:
        words = path.read_text(encoding="utf-8").split()
    if not words:
        raise ValueError(f"lexicon file {path} holds no words")
    return words


# -- inputs ----------------------------------------------------------------------------------------

def as_pil(image, index: int = 0) -> Image.Image:
    """An RGB PIL image from a path, a PIL image or a uint8 array (HxW or HxWxC)."""
    if isinstance(image, Image.Image):
        from ocrframe.data.base import to_rgb

        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image {index}: arrays must be uint8 HxW or HxWxC, got {image.dtype} {image.shape}")
        return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).convert("RGB")
    if isinstance(image, (str, Path)):
        from ocrframe.data.base import decode_image

        return decode_image(Path(image), str(image))
    raise TypeError(f"image {index}: expected a path, a PIL image or a numpy array, got {type(image).__name__}")
