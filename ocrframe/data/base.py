"""What every dataset shares: label checking against the charset, the transform pipeline, and the
bad-sample policy (skip and count by key, or stop with an error naming the sample)."""
from __future__ import annotations

import io
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ocrframe.charset import Charset, LabelError

logger = logging.getLogger("ocrframe.data")
POLICIES = ("skip", "error")


class BadSample(Exception):
    """A sample that cannot be used: ``key`` names it, ``reason`` is the category counted in the
    log ("empty label", "undecodable image", ...), ``detail`` the specifics."""

    def __init__(self, key: str, reason: str, detail: str = ""):
        super().__init__(f"{key}: {reason}" + (f" ({detail})" if detail else ""))
        self.key, self.reason, self.detail = key, reason, detail


def image_aspect_ratio(source: bytes | Path) -> float:
    """Width / height from the image header alone (no decoding); 1.0 if unreadable."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.width / max(image.height, 1)
    except (OSError, ValueError):
        return 1.0  # the bad sample is reported when it is loaded


SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


def decode_image(source: bytes | Path, key: str, mode: str = "RGB") -> Image.Image:
    """An image in ``mode`` ("RGB", or "L" for a pipeline that wants grayscale) from encoded bytes
    or a file, or BadSample saying why not."""
    if mode == "L" and isinstance(source, bytes):
        image = _gray_by_opencv(source)
        if image is not None:
            return image
    try:
        if isinstance(source, bytes):  # the format named by its signature: no trying every decoder
            formats = next(([name] for signature, name in SIGNATURES if source.startswith(signature)), None)
            image = Image.open(io.BytesIO(source), formats=formats)
        else:
            image = Image.open(source)
        if mode == "L":
            image.draft("L", image.size)  # JPEG: decoded straight to grayscale (other formats ignore it)
        return image.convert(mode)  # forces the decode, so truncated files fail here too
    except FileNotFoundError:
        raise BadSample(key, "missing image file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadSample(key, "undecodable image", str(exc)) from None


def _gray_by_opencv(data: bytes) -> Image.Image | None:
    """An 8-bit RGB or grayscale PNG, or a JPEG, decoded straight to grayscale by OpenCV (installed
    with mmengine): a C call, without Pillow's per-image Python work, which costs more than the
    decoding itself on small word images. Pixels as Pillow's ``convert("L")`` gives them, within
    one grey level of rounding. None for anything else (other formats, alpha, palettes, 16 bits, a
    file OpenCV cannot read): Pillow decodes those and reports the errors."""
    png = data.startswith(SIGNATURES[0][0]) and len(data) > 25 and data[24] == 8 and data[25] in (0, 2)
    if not (png or data.startswith(SIGNATURES[1][0])):
        return None
    try:
        import cv2
    except ImportError:
        return None
    # EXIF orientation ignored, as Pillow does
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if array is None else Image.fromarray(array)


class SkipCounter:
    """Counts skipped samples by reason and keeps the first few keys of each, for the log."""

    EXAMPLES = 5

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, key: str) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.EXAMPLES:
            self.examples[reason].append(key)

    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return "; ".join(f"{n} {reason} (e.g. {', '.join(self.examples[reason])})"
                         for reason, n in self.counts.most_common())


class OcrDataset(Dataset):
    """Base class. Subclasses implement ``__len__``, ``load(index) -> dict(image, text, key)``
    (raising :class:`BadSample` for an unusable sample) and ``describe() -> str``.

    on_bad_sample: "skip" (log the key and the reason, count it, serve the next sample) or "error".
    A subclass whose ``load`` returns labels already cleaned (by :meth:`scan_labels`) sets
    ``labels_cleaned = True``, so they are not cleaned again for every sample.
    """

    labels_cleaned = False

    def __init__(self, charset, pipeline=(), on_bad_sample: str = "skip"):
        if on_bad_sample not in POLICIES:
            raise ValueError(f"on_bad_sample must be one of {POLICIES}, not {on_bad_sample!r}")
        from ocrframe.data.transforms import Compose, Grayscale

        self.charset = Charset.build(charset)
        self.pipeline = Compose(pipeline)
        # a pipeline that starts by making images grayscale gets them decoded that way
        first = self.pipeline.transforms[0] if self.pipeline.transforms else None
        self.decode_mode = "L" if isinstance(first, Grayscale) else "RGB"
        self.on_bad_sample = on_bad_sample
        self.skipped = SkipCounter()

    def describe(self) -> str:
        return type(self).__name__

    def full_init(self) -> None:
        """Nothing to do: datasets load their index when built (mmengine's ConcatDataset calls this)."""

    @property
    def metainfo(self) -> dict:
        """What mmengine's Runner hands to metrics and visualisers as ``dataset_meta``."""
        return dict(name=self.describe(), charset=repr(self.charset))

    def clean_label(self, text: str, key: str) -> str:
        """The label as the model will see it, or BadSample (empty, symbols outside the charset)."""
        try:
            label = self.charset.clean(text)
        except LabelError as exc:
            raise BadSample(key, "symbols outside the charset", str(exc)) from None
        if label.unknown and self.charset.unknown != "remove":  # "remove" already dropped them
            raise BadSample(key, "symbols outside the charset", f"{text!r} has {list(label.unknown)}")
        if not label.text:
            raise BadSample(key, "empty label")
        return label.text

    def scan_labels(self, items, total: int) -> list:
        """Check stored labels once, up front: ``items`` yields (item, key, label or None); returns
        [(item, clean label)] for the usable ones and logs what was skipped, by reason."""
        usable = []
        for item, key, text in items:
            try:
                if text is None:
                    raise BadSample(key, "missing label")
                usable.append((item, self.clean_label(text, key)))
            except BadSample as bad:
                if self.on_bad_sample == "error":
                    self.skip(bad)
                self.skipped.add(bad.reason, bad.key)
        skipped = self.skipped.total()
        (logger.warning if skipped else logger.info)(
            "%s: %d usable samples of %d%s", self.describe(), len(usable), total,
            f"; skipped {skipped}: {self.skipped.summary()}" if skipped else "")
        if not usable:
            raise ValueError(f"{self.describe()} has no usable sample out of {total}: {self.skipped.summary()}")
        return usable

    def skip(self, bad: BadSample) -> None:
        if self.on_bad_sample == "error":
            raise BadSample(bad.key, f"{bad.reason} in {self.describe()}",
                            f"{bad.detail}; on_bad_sample='skip' skips such samples") from None
        self.skipped.add(bad.reason, bad.key)
        logger.warning("%s: skipped %s (%d skipped in this process)", self.describe(), bad,
                       self.skipped.total())

    def sample_key(self, index: int) -> str:
        """The key of sample ``index`` without loading it, for error messages."""
        return f"#{index}"

    def __getitem__(self, index: int) -> dict:
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            key = None
            try:
                sample = self.load(i)
                key = sample["key"]
                if not self.labels_cleaned:
                    sample["text"] = self.clean_label(sample["text"], key)
                return self.pipeline(sample)
            except BadSample as bad:
                self.skip(bad)
            except Exception as exc:
                # Raised in a DataLoader worker, the error reaches the training process as text:
                # say there which dataset and sample it was.
                raise SampleError(f"{self.describe()}: sample {key or self.sample_key(i)} (index {i}) failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        raise RuntimeError(f"{self.describe()}: every sample is unusable: {self.skipped.summary()}")


class SampleError(RuntimeError):
    """A sample could not be loaded or transformed for a reason other than bad data (a bug in a
    transform, an I/O error): names the dataset, the sample key and the cause."""
