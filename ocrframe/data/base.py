"""What every dataset shares: label checking against the charset, the transform pipeline, and the
bad-sample policy: skip and count by key (training), stop with an error naming the sample, or
mark it (evaluation: the sample keeps its place, is read as nothing and counted as an error)."""
from __future__ import annotations

import io
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from ocrframe.charset import Charset, LabelError

logger = logging.getLogger("ocrframe.data")
POLICIES = ("skip", "error", "mark")
BLANK_SIZE = (100, 32)  # what a marked sample shows the model in place of its image


class BadSample(ValueError):
    """A sample that cannot be used: ``key`` names it, ``reason`` is the category counted in the
    log ("empty label", "undecodable image", ...), ``detail`` the specifics. A ValueError, so that
    ``except ValueError`` around reading also catches a missing or undecodable image."""

    def __init__(self, key: str, reason: str, detail: str = ""):
        super().__init__(f"{key}: {reason}" + (f" ({detail})" if detail else ""))
        self.key, self.reason, self.detail = key, reason, detail


def image_aspect_ratio(source: bytes | Path) -> float:
    """Width / height as the image is shown (EXIF orientation applied), from the header alone (no
    decoding); 1.0 if unreadable."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # a quarter turn swaps the sides
            width, height = (image.height, image.width) if turned else (image.width, image.height)
            return width / max(height, 1)
    except (OSError, ValueError, Image.DecompressionBombError):
        return 1.0  # the bad sample is reported when it is loaded


# Formats whose frames are pages or an animation's frames, each an image to read; not a JPEG's MPO
# previews or depth maps, nor a PSD's layers (Pillow gives those frames too).
PAGED_FORMATS = ("TIFF", "GIF", "PNG", "WEBP")


def image_pages(source: bytes | Path) -> int:
    """How many pages an encoded image holds (a multi-page TIFF's pages, an animation's frames),
    from its headers; 1 if unreadable (the error is reported when it is decoded)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return _pages(image)
    except (OSError, ValueError, EOFError, Image.DecompressionBombError):
        return 1


def _pages(image: Image.Image) -> int:
    several = image.format in PAGED_FORMATS and getattr(image, "is_animated", False)  # cheaper than n_frames
    return image.n_frames if several else 1


SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


def decode_image(source: bytes | Path, key: str, mode: str = "RGB", page: int = 0) -> Image.Image:
    """An image in ``mode`` ("RGB", or "L" for a pipeline that wants grayscale) from encoded bytes
    or a file, as shown (see :func:`to_rgb`), or BadSample saying why not. ``page`` counts from 0;
    the image's ``info["pages"]`` says how many the file holds where it is more than one (see
    :func:`image_pages`)."""
    if mode == "L" and isinstance(source, bytes) and not page:
        image = _gray_by_opencv(source)
        if image is not None:
            return image
    try:
        if isinstance(source, bytes):  # the format named by its signature: no trying every decoder
            formats = next(([name] for signature, name in SIGNATURES if source.startswith(signature)), None)
            image = Image.open(io.BytesIO(source), formats=formats)
        else:
            image = Image.open(source)
        pages = _pages(image)
        if page:
            image.seek(page)  # EOFError past the last page
        if mode == "L":
            image.draft("L", image.size)  # JPEG: decoded straight to grayscale (other formats ignore it)
        decoded = to_rgb(image)  # decodes, so truncated files fail here too
        decoded = decoded if mode == "RGB" else decoded.convert(mode)
        if pages > 1:
            decoded.info["pages"] = pages
        return decoded
    except EOFError as exc:  # past the last page, or a file that ends early
        if not page:
            raise BadSample(key, "undecodable image", str(exc) or "the file ends early") from None
        raise BadSample(key, "no such page", f"page {page} counting from 0 of a file of "
                        f"{image_pages(source)} page(s)") from None
    except FileNotFoundError:
        raise BadSample(key, "missing image file") from None
    except Image.DecompressionBombError as exc:  # not an OSError: it would end the whole run
        raise BadSample(key, f"image over Pillow's size limit (PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}; "
                             "raise it to read larger images)", str(exc)) from None
    except UnidentifiedImageError:  # Pillow's message names an io.BytesIO object, not the file
        raise BadSample(key, "undecodable image", "not in an image format Pillow reads") from None
    except (OSError, ValueError) as exc:
        raise BadSample(key, "undecodable image", str(exc)) from None


EXIF_ORIENTATION = 0x0112
WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")  # more than 8 bits per pixel


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as shown, in RGB, whatever Pillow read: EXIF orientation applied; 16-bit, 32-bit
    and float gray scaled into 8 bits (Pillow's own conversion clips them to white or black);
    transparency (an alpha channel, a palette or tRNS colour) composited onto a background that
    contrasts with text drawn on transparency alone, whatever its colour: dark text on white, light
    text on black (a picture filling most of the image keeps white around it)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in WIDE_MODES:
        image = Image.fromarray(_to_8_bits(np.asarray(image)), "L")
    if "transparency" in image.info or image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        # Shown pixels covering under half of the image are the writing alone: black under light
        # writing. Covering more, they are a picture (ink on paper, with transparent margins or
        # the corners of a rotation), light because of its paper: white continues that.
        shown = np.asarray(image.getchannel("A")) > 127
        light = 0 < shown.mean() < 0.5 and np.asarray(image.convert("L"))[shown].mean() > 127
        background = Image.new("RGBA", image.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def _to_8_bits(array: np.ndarray) -> np.ndarray:
    """Gray values of any range as uint8: from the smallest of 0..1 (float only), 0..255, 0..65535
    that holds them, else from their own minimum to maximum. 0..65535 only if the brightest value
    is over a quarter of it: less is data of fewer bits (a 10- or 12-bit sensor's) stored in 16,
    which scaled from 0..65535 would be all but black."""
    values = np.nan_to_num(array.astype(np.float64), nan=0.0)
    low = min(float(values.min(initial=0.0)), 0.0)
    peak = float(values.max(initial=0.0))
    ranges = ([1.0] if array.dtype.kind == "f" else []) + [255.0] + ([65535.0] if peak >= 16384 else [])
    top = next((r for r in ranges if peak <= r and low == 0.0), None)
    if top is None:
        low, top = float(values.min()), max(peak, float(values.min()) + 1e-9)
    return np.round((values - low) / (top - low) * 255.0).clip(0, 255).astype(np.uint8)


def _gray_by_opencv(data: bytes) -> Image.Image | None:
    """An 8-bit RGB or grayscale PNG, or a JPEG, decoded straight to grayscale by OpenCV (installed
    with mmengine): a C call, without Pillow's per-image Python work, which costs more than the
    decoding itself on small word images. Pixels as Pillow's ``convert("L")`` gives them, within
    one grey level of rounding. None for anything else (other formats, alpha, palettes, 16 bits, a
    file OpenCV cannot read, transparency, EXIF data that may turn the image, a PNG over Pillow's
    size limit): Pillow decodes those as :func:`to_rgb` says and reports the errors."""
    png = data.startswith(SIGNATURES[0][0]) and len(data) > 25 and data[24] == 8 and data[25] in (0, 2)
    if not (png or data.startswith(SIGNATURES[1][0])):
        return None
    if b"tRNS" in data[:4096] or b"Exif\x00\x00" in data[:65536]:
        return None
    pixels = int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big") if png else 0
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow refuses or warns of a decompression bomb (OpenCV's limit is 12 times higher)
    try:
        import cv2
    except ImportError:
        return None
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if array is None else Image.fromarray(array)


class SkipCounter:
    """Counts skipped samples by reason and keeps the first few keys of each, and the detail of the
    first (why it failed), for the log."""

    EXAMPLES = 5

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.details: dict[str, str] = {}

    def add(self, reason: str, key: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.EXAMPLES:
            self.examples[reason].append(key)
        if detail:
            self.details.setdefault(reason, f"{key}: {detail}")

    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return "; ".join(f"{n} {reason} (e.g. {', '.join(self.examples[reason])}"
                         + (f"; {self.details[reason]}" if reason in self.details else "") + ")"
                         for reason, n in self.counts.most_common())


class Curriculum:
    """Mixin for a dataset with a training curriculum: ``difficulty`` in [0, 1], where 1 draws every
    sample from the full distribution and d < 1 makes a share 1 - d of them easy (the dataset says
    what easy is). ``DifficultyRamp`` raises it from the main process during training; the value
    lives in shared memory, so DataLoader workers forked before a change still see it. Set it in
    ``__init__`` (``self.difficulty = difficulty``), before any worker starts."""

    _difficulty = None

    @property
    def difficulty(self) -> float:
        return 1.0 if self._difficulty is None else self._difficulty.value

    @difficulty.setter
    def difficulty(self, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"difficulty must be in [0, 1], not {value}")
        if self._difficulty is None:
            import multiprocessing

            self._difficulty = multiprocessing.RawValue("d", value)
        else:
            self._difficulty.value = value

    def __getstate__(self) -> dict:  # shared memory is inherited by forked workers, not pickled
        return dict(self.__dict__, _difficulty=None, _pickled_difficulty=self.difficulty)

    def __setstate__(self, state: dict) -> None:
        difficulty = state.pop("_pickled_difficulty")
        self.__dict__.update(state)
        self.difficulty = difficulty


class OcrDataset(Dataset):
    """Base class. Subclasses implement ``__len__``, ``load(index) -> dict(image, text, key)``
    (raising :class:`BadSample` for an unusable sample) and ``describe() -> str``; optionally
    ``aspect_ratio(index)`` (evaluation batches grouped by width). docs/plugins.md, "Datasets".

    on_bad_sample: "skip" (log the key and the reason, count it, serve the next sample), "error",
    or "mark" (for evaluation, where serving another sample would count that one twice: serve a
    blank image under the bad sample's key with ``unreadable`` = the reason; the recognizer reads
    it as nothing and metrics count it as an error). Labels that fail the charset check are left
    out when the dataset is built, under every policy but "error", and reported then.
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
        self.skipped = SkipCounter()     # left out (at build, or skipped when read)
        self.unreadable = SkipCounter()  # marked (on_bad_sample="mark")
        self.removed = Counter()         # symbol -> labels it was dropped from (the charset's unknown="remove")

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
        if label.unknown and self.charset.unknown != "remove":
            raise BadSample(key, "symbols outside the charset", f"{text!r} has {list(label.unknown)}")
        self.removed.update(label.unknown)  # "remove" already dropped them from the label
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
                self.skipped.add(bad.reason, bad.key, bad.detail)
        skipped = self.skipped.total()
        (logger.warning if skipped else logger.info)(
            "%s: %d usable samples of %d%s", self.describe(), len(usable), total,
            f"; skipped {skipped}: {self.skipped.summary()}" if skipped else "")
        if self.removed:
            logger.warning("%s: symbols outside the charset removed from labels (unknown='remove'): %s",
                           self.describe(), ", ".join(f"{s!r} from {n}" for s, n in self.removed.most_common()))
        if not usable:
            raise ValueError(f"{self.describe()} has no usable sample out of {total}: {self.skipped.summary()}")
        return usable

    def skip(self, bad: BadSample) -> None:
        if self.on_bad_sample == "error":
            raise BadSample(bad.key, f"{bad.reason} in {self.describe()}",
                            f"{bad.detail}; on_bad_sample='skip' skips such samples") from None
        self.skipped.add(bad.reason, bad.key, bad.detail)
        logger.warning("%s: skipped %s (%d skipped in this process)", self.describe(), bad,
                       self.skipped.total())

    def sample_key(self, index: int) -> str:
        """The key of sample ``index`` without loading it, for error messages."""
        return f"#{index}"

    def sample_label(self, index: int) -> str:
        """The label of sample ``index`` without loading it ("" where unknown), for marked samples."""
        return ""

    def __getitem__(self, index: int) -> dict:
        # A sequence's bounds: `for s in dataset` and list(dataset) end. Only a sample skipped as
        # bad is replaced by the next one (wrapping to the start), never an index out of range.
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.describe()}: index {index} is out of range for {len(self)} samples")
        index %= len(self)
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
                if self.on_bad_sample == "mark":
                    self.unreadable.add(bad.reason, bad.key, bad.detail)
                    logger.warning("%s: %s, counted as an error", self.describe(), bad)
                    blank = Image.new("RGB", BLANK_SIZE, "white")
                    return self.pipeline(dict(image=blank, text=self.sample_label(i), key=bad.key,
                                              unreadable=bad.reason))
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
