"""Choosing how the Reader runs the network: the fastest path that reads as the fp32 model does.

A *path* is a runtime and a precision: the model in PyTorch fp32 (the reference), PyTorch bf16,
onnxruntime fp32 or onnxruntime int8. Every path but the reference is followed by a recheck: the
images whose transcription could differ from the reference's are re-read by the reference.

The recheck rule (:func:`labelling_may_change`): a frame is *ambiguous* when a class other than
its best one is within ``margin`` log-probability of it -- the reference's best class for that
frame could be any of those. The greedy transcription only depends on the collapsed best path,
so an image is re-read only if some choice among its ambiguous frames' candidates collapses to a
different labelling. Most ambiguous frames of a CTC model sit at the edge of a character's run
("a a -" against "a - -"), where either choice gives the same text. For decoders that read more
than the best path (beam search, lexicons), :func:`near_ties` re-reads every image with an
ambiguous frame.

The margin of a path is at least its floor (``recheck_margin`` for bf16 and int8, 1e-3 for
onnxruntime fp32) and at least twice the largest deviation measured on the calibration images
(how far below its own best class a path put the reference's best class).

Calibration (:func:`calibrate`): per batch-size class (one image, a full batch) each path reads
the calibration images a few times, rounds interleaved, recheck included; paths that do not
give the reference's transcriptions are dropped, and the fastest is kept. The result is cached
per model, host and batch size (:func:`plan_file`), so it runs once.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ocrframe.fileio import atomic_write

logger = logging.getLogger("ocrframe.autotune")
REFERENCE = "torch fp32"
PATHS = (REFERENCE, "torch bf16", "onnxruntime fp32", "onnxruntime int8")
MARGIN_FLOOR = {"onnxruntime fp32": 1e-3}  # the others: the Reader's recheck_margin
CLASSES = ("single", "batch")
TIMING_IMAGES = 64  # calibration images: one full batch, the first SINGLE_IMAGES of them also one by one
SINGLE_IMAGES = 8
ROUNDS = 3  # timed rounds per path, after one warm-up round
MAX_COMBINATIONS = 256  # choices of an ambiguous run enumerated before rechecking it unread
# Change it when what a plan depends on changes. 2: the batch from one width bucket; 3: padded
# batches cost far less in PyTorch (no packed sequences, narrow masks), so the paths are timed anew;
# 4: onnxruntime's threads no longer spin after a run (``ocrframe.export.onnx_session``).
PLAN_VERSION = 4


def batch_class(count: int, batch_size: int) -> str:
    """"single" for batches nearer one image than a full batch (geometrically), else "batch"."""
    return "single" if count * count < batch_size else "batch"


# -- the recheck rules ------------------------------------------------------------------------------

def _candidates(log_probs: torch.Tensor, lengths: torch.Tensor, margin: float):
    """(best class per frame, classes within margin of it per frame, ambiguous frames) -- padding
    frames are never ambiguous."""
    best_value, best = log_probs.max(-1)
    near = (best_value[..., None] - log_probs) < margin  # strictly within: a margin of 0 leaves the best alone
    near.scatter_(-1, best[..., None], True)
    valid = torch.arange(log_probs.shape[1], device=log_probs.device) < lengths.to(log_probs.device)[:, None]
    ambiguous = (near.sum(-1) > 1) & valid
    return best, near, ambiguous


def near_ties(log_probs: torch.Tensor, lengths: torch.Tensor, margin: float) -> torch.Tensor:
    """(N,) images with any frame whose two best classes are closer than ``margin``."""
    return _candidates(log_probs, lengths, margin)[2].any(1)


def labelling_may_change(log_probs: torch.Tensor, lengths: torch.Tensor, margin: float, blank: int) -> torch.Tensor:
    """(N,) images whose greedy (best path) labelling changes for some choice, at each ambiguous
    frame, of a class within ``margin`` of the best (see the module docstring).

    The frames that are not ambiguous are the same on every choice, so the labelling splits into
    independent parts: each run of consecutive ambiguous frames, with the frame before it fixed,
    decides what it and the frame after it emit. A run's choices are enumerated (a run has one to
    a few frames with two or three candidates); a run with more than MAX_COMBINATIONS choices
    counts as changing."""
    best, near, ambiguous = _candidates(log_probs, lengths, margin)
    changes = torch.zeros(len(log_probs), dtype=torch.bool)
    rows = ambiguous.any(1).nonzero()[:, 0].tolist()
    if not rows:
        return changes
    best, near, ambiguous = best[rows].cpu().numpy(), near[rows].cpu().numpy(), ambiguous[rows].cpu().numpy()
    lengths = lengths[rows].tolist()
    for k, row in enumerate(rows):
        changes[row] = _some_run_changes(best[k], near[k], ambiguous[k], lengths[k], blank)
    return changes


def _some_run_changes(best: np.ndarray, near: np.ndarray, ambiguous: np.ndarray, length: int, blank: int) -> bool:
    frames = np.flatnonzero(ambiguous)
    # runs of consecutive ambiguous frames: split where the gap to the next one is more than 1
    for run in np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1):
        first, last = int(run[0]), int(run[-1])
        before = int(best[first - 1]) if first > 0 else blank
        after = [int(best[last + 1])] if last + 1 < length else []
        choices = [np.flatnonzero(near[t]).tolist() for t in run]
        if math.prod(len(c) for c in choices) > MAX_COMBINATIONS:
            return True
        expected = _emitted(before, best[first:last + 1].tolist() + after, blank)
        for combination in itertools.product(*choices):
            if _emitted(before, list(combination) + after, blank) != expected:
                return True
    return False


def _emitted(previous: int, frames: list[int], blank: int) -> list[int]:
    """What CTC's collapse emits for ``frames`` following a frame of class ``previous``."""
    out = []
    for symbol in frames:
        if symbol != blank and symbol != previous:
            out.append(symbol)
        previous = symbol
    return out


def required_margin(log_probs: torch.Tensor, reference: torch.Tensor, lengths: torch.Tensor) -> float:
    """How far below a path's own best class it put the reference's best class, at worst over the
    valid frames: a margin at least this large keeps the reference's class among the candidates."""
    best_value = log_probs.max(-1).values
    at_reference = log_probs.gather(-1, reference.argmax(-1, keepdim=True))[..., 0]
    valid = torch.arange(log_probs.shape[1]) < lengths[:, None]
    return float(((best_value - at_reference) * valid).max()) if valid.any() else 0.0


# -- where plans are kept ---------------------------------------------------------------------------

def host_key() -> str:
    """What a timing depends on besides the model: the CPU (model name and the instruction-set
    flags the kernels dispatch on), the threads, and the libraries."""
    cpu, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu.strip():
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = " ".join(sorted(f for f in line.split(":", 1)[1].split()
                                        if f.startswith(("avx", "amx", "fma", "f16c", "vnni"))))
    except OSError:
        pass
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    isa = " ".join(f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ)
    return (f"{cpu} [{flags}] {torch.get_num_threads()} threads {isa} torch {torch.__version__} "
            f"onnxruntime {ort} plan v{PLAN_VERSION}")


def model_key(model, pipeline) -> str:
    """The weights, the architecture and the input pipeline, hashed."""
    digest = hashlib.sha256(repr(model).encode() + repr(pipeline).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def plan_file(cache: Path, model_hash: str, batch_size: int) -> Path:
    host = hashlib.sha256(host_key().encode()).hexdigest()[:12]
    return cache / f"{model_hash}-plan-{host}-batch{batch_size}.json"


def load_plan(path: Path) -> dict | None:
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return plan if plan.get("host") == host_key() and set(plan.get("classes", {})) == set(CLASSES) else None


def save_plan(path: Path, plan: dict) -> None:
    atomic_write(path, json.dumps(plan, indent=1).encode())  # complete or absent, also for other processes reading the cache


# -- calibration ------------------------------------------------------------------------------------

def calibrate(reader, batches: dict[str, list[tuple[torch.Tensor, torch.Tensor]]], paths: list[str],
              rounds: int | None = None) -> dict:
    """Time each of ``paths`` on each class's ``batches`` ((images, widths before padding) as the
    network takes them), recheck included, rounds interleaved (robust to other work on the machine), and
    keep per class the fastest path that gives the reference's greedy transcriptions. Returns the
    plan: per class the chosen path, its margin, and every path's figures."""
    plan = dict(host=host_key(), batch_size=reader.batch_size, classes={})
    blank = reader.charset.blank
    for cls, class_batches in batches.items():
        references = [reader.run_path(REFERENCE, images, widths) for images, widths in class_batches]
        lengths_of = [reader.model.frame_lengths(widths) for _, widths in class_batches]
        labellings = [_labellings(ref, lengths, blank) for ref, lengths in zip(references, lengths_of)]
        figures, margins = {path: dict(exact=True) for path in paths}, {}
        for path in paths:
            if path == REFERENCE:
                margins[path] = 0.0
                continue
            # how far the path strays from the reference on these images sets its margin
            worst = max(required_margin(reader.run_path(path, images, widths), ref, lengths)
                        for ref, (images, widths), lengths in zip(references, class_batches, lengths_of))
            margins[path] = max(MARGIN_FLOOR.get(path, reader.recheck_margin), 2 * worst)
            figures[path]["deviation"] = round(worst, 4)
        images_count = sum(len(images) for images, _ in class_batches)
        seconds = {path: math.inf for path in paths}
        rechecked = {}
        for _ in range((rounds or ROUNDS) + 1):  # the first round warms up (allocations, kernels)
            for path in paths:
                reader.rechecked = 0
                start = time.perf_counter()
                outputs = [reader.log_probs(images, widths, path=path, margin=margins[path], rule="labelling")
                           for images, widths in class_batches]
                seconds[path] = min(seconds[path], time.perf_counter() - start)
                rechecked[path] = reader.rechecked
                same = all(_labellings(out, lengths, blank) == expected
                           for out, lengths, expected in zip(outputs, lengths_of, labellings))
                figures[path]["exact"] &= same
        reader.rechecked = 0
        for path in paths:
            figures[path].update(ms_per_image=round(seconds[path] / images_count * 1e3, 3),
                                 rechecked=f"{rechecked[path]}/{images_count}", margin=round(margins[path], 4))
        exact = [p for p in paths if figures[p]["exact"]]
        chosen = min(exact, key=lambda p: figures[p]["ms_per_image"])
        plan["classes"][cls] = dict(path=chosen, margin=margins[chosen], images=images_count,
                                    batch=max(len(images) for images, _ in class_batches), paths=figures)
    return plan


def _labellings(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[tuple[int, ...]]:
    best = log_probs.argmax(-1).tolist()
    out = []
    for row, length in zip(best, lengths.tolist()):
        out.append(tuple(_emitted(blank, row[:length], blank)))
    return out


def explain(plan: dict) -> str:
    """The plan in words: per batch-size class, the path chosen and every path's figures."""
    lines = [f"inference paths on {plan['host']} (batch size {plan['batch_size']}):"]
    for cls, entry in plan["classes"].items():
        label = "one image at a time" if cls == "single" else f"batches of up to {plan['batch_size']}"
        lines.append(f"  {label}: {entry['path']} (fastest exact path on {entry['images']} calibration images, "
                     f"batches of {entry['batch']})")
        for path, f in sorted(entry["paths"].items(), key=lambda item: item[1]["ms_per_image"]):
            note = "" if path == REFERENCE else (f", rechecked {f['rechecked']} at margin {f['margin']:g} "
                                                 f"(deviation seen {f['deviation']:g})")
            lines.append(f"    {path}: {f['ms_per_image']:.2f} ms/image{note}"
                         + ("" if f["exact"] else ", NOT exact: not used"))
    return "\n".join(lines)
