"""Batching by width: images of similar width share a batch, so little of each batch is padding.

One bucketer, :func:`width_buckets`, serves evaluation (by aspect ratio, through
:class:`~ocrframe.data.sampler.WidthBucketBatchSampler` and ``evaluation.run_network``, which
sorts by rendered width where a dataset has no aspect ratio) and the
Reader (by resized width, in steps). Training batches of the text config are of one width (100 px);
the OMR config batches snippets of one note count (``length_group``). :func:`as_pil` and :func:`input_batches` turn what a user
gives into what the network takes.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

logger = logging.getLogger("ocrframe.data")


def width_buckets(widths: Sequence[float], batch_size: int, width_step: int | None = 8) -> list[list[int]]:
    """Indices of ``widths`` sorted narrowest first (ties keep their order) and cut into batches of
    at most ``batch_size``; with ``width_step``, a batch also holds only widths that round up to
    the same multiple of it."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and (
                width_step is None or math.ceil(widths[last[0]] / width_step) == math.ceil(widths[i] / width_step)):
            last.append(i)
        else:
            batches.append([i])
    return batches


def as_pil(image, index: int = 0) -> Image.Image:
    """An RGB PIL image from a path, a PIL image or a uint8 array (HxW or HxWxC, channels last),
    converted as files are (:func:`~ocrframe.data.base.to_rgb`: transparency, 16 bits, ...)."""
    from ocrframe.data.base import BadSample, decode_image, to_rgb

    if isinstance(image, (str, Path)):
        decoded = decode_image(Path(image), str(image))
        if decoded.info.get("pages", 1) > 1:
            logger.warning("%s holds %d pages (or frames); reading the first. To read them all, give each as an "
                           "image: [page.copy() for page in PIL.ImageSequence.Iterator(PIL.Image.open(path))]; "
                           "`ocrframe read FILE` reads every page of a file it is given", image, decoded.info["pages"])
        return decoded
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image {index}: arrays must be uint8 HxW or HxWxC, got {image.dtype} {image.shape}")
        if image.ndim == 3 and image.shape[2] > 4:
            hint = ("; this one looks channels first: give array.transpose(1, 2, 0)"
                    if image.shape[0] in (1, 3, 4) else "")
            raise ValueError(f"image {index}: arrays must be H x W or H x W x C (channels last, C of 1 to 4), "
                             f"got shape {image.shape}{hint}")
        image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"image {index}: expected a path, a PIL image or a numpy array, got {type(image).__name__}")
    if image.width == 0 or image.height == 0:  # the pipeline would resize it to a black image and read that
        raise BadSample(f"image {index}", "empty image", f"{image.width} pixels wide, {image.height} high; "
                        "give an image with at least one row and column of pixels, or leave it out")
    try:
        return to_rgb(image)
    except OSError as exc:  # an image from Image.open is decoded only now: a truncated file fails here
        raise BadSample(f"image {index}", "undecodable image",
                        f"{exc}; Pillow decodes a file opened with Image.open when its pixels are first used, "
                        "so check the file it came from (complete? a supported format?)") from exc


def pipeline_samples(pils: list[Image.Image], pipeline) -> list[dict]:
    """Each image through a (test) pipeline, as a sample dict keyed by its position."""
    return [pipeline(dict(image=pil, text="", key=str(i))) for i, pil in enumerate(pils)]


def padded_batches(samples: list[dict], batch_size: int, width_step: int = 8):
    """(indices, padded batch) per width bucket of pipeline outputs."""
    from ocrframe.data.transforms import pad_collate

    for indices in width_buckets([s["width"] for s in samples], batch_size, width_step):
        yield indices, pad_collate([samples[i] for i in indices])


def input_batches(images: Iterable, pipeline, batch_size: int = 64, width_step: int = 8) -> list[np.ndarray]:
    """Images as the network takes them: through the pipeline, in padded width-bucket batches."""
    samples = pipeline_samples([as_pil(image, i) for i, image in enumerate(images)], pipeline)
    return [batch["inputs"].numpy() for _, batch in padded_batches(samples, batch_size, width_step)]
