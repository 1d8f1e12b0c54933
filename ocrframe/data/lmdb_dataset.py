"""LMDB datasets in the common layout of bgshih/crnn, crnn.pytorch, deep-text-recognition-benchmark
and MMOCR: ``num-samples``, then ``image-%09d`` (encoded image bytes), ``label-%09d`` (UTF-8) and
optionally ``lexicon-%09d`` (space-separated words), keys counted from 1."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import lmdb
from PIL import Image, UnidentifiedImageError

from ocrframe.data.base import BadSample, OcrDataset

logger = logging.getLogger("ocrframe.data")


def open_lmdb(path: str | Path, write: bool = False, map_size: int = 1 << 40) -> lmdb.Environment:
    """Open an LMDB directory (or single-file LMDB); read-only unless ``write``."""
    path = Path(path)
    if not write and not path.exists():
        raise FileNotFoundError(f"LMDB {path} does not exist; build one from a gt.txt with tools/create_lmdb.py")
    try:
        if write:
            return lmdb.open(str(path), map_size=map_size, subdir=not path.suffix == ".mdb")
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False,
                         subdir=path.is_dir(), max_readers=256)
    except lmdb.Error as exc:
        raise OSError(f"cannot open {path} as an LMDB: {exc}") from None


class LMDBDataset(OcrDataset):
    """Reads an LMDB as it is. Labels are checked against the charset once, when the dataset is
    built (the skipped ones are counted by reason and logged with example keys); images are
    decoded when read, and an undecodable one is handled by ``on_bad_sample``.

    The LMDB handle is opened per process, so DataLoader workers never share one.
    """

    def __init__(self, path: str, charset, pipeline=(), on_bad_sample: str = "skip", max_samples: int | None = None):
        super().__init__(charset, pipeline, on_bad_sample)
        self.path = str(path)
        env = open_lmdb(self.path)
        with env.begin() as txn:
            raw = txn.get(b"num-samples")
            if raw is None:
                raise ValueError(f"{self.path} is not an LMDB in the common OCR layout: it has no 'num-samples' key")
            total = int(raw)
            if max_samples is not None:
                total = min(total, max_samples)
            self.samples: list[tuple[int, str]] = []
            for index in range(1, total + 1):
                key = f"image-{index:09d}"
                label = txn.get(f"label-{index:09d}".encode())
                try:
                    if label is None:
                        raise BadSample(key, "missing label")
                    self.samples.append((index, self.clean_label(label.decode("utf-8", "replace"), key)))
                except BadSample as bad:
                    if self.on_bad_sample == "error":
                        self.skip(bad)
                    self.skipped.add(bad.reason, bad.key)
        env.close()
        skipped = self.skipped.total()
        (logger.warning if skipped else logger.info)(
            "%s: %d usable samples of %d%s", self.describe(), len(self.samples), total,
            f"; skipped {skipped}: {self.skipped.summary()}" if skipped else "")
        if not self.samples:
            raise ValueError(f"{self.describe()} has no usable sample out of {total}: {self.skipped.summary()}")
        self._env, self._pid = None, None

    def describe(self) -> str:
        return f"LMDB {self.path}"

    def __len__(self) -> int:
        return len(self.samples)

    def _txn(self):
        if self._env is None or self._pid != os.getpid():  # a forked worker opens its own handle
            self._env, self._pid = open_lmdb(self.path), os.getpid()
        return self._env.begin()

    def load(self, index: int) -> dict:
        number, text = self.samples[index]
        key = f"image-{number:09d}"
        with self._txn() as txn:
            data = txn.get(key.encode())
            lexicon = txn.get(f"lexicon-{number:09d}".encode())
        if data is None:
            raise BadSample(key, "missing image")
        try:
            image = Image.open(io.BytesIO(data))
            image = image.convert("RGB")  # forces the decode, so truncated files fail here
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise BadSample(key, "undecodable image", str(exc)) from None
        sample = dict(image=image, text=text, key=key)
        if lexicon is not None:
            sample["lexicon"] = lexicon.decode("utf-8").split()
        return sample

    def __getstate__(self):  # an open LMDB handle cannot cross a process boundary
        state = dict(self.__dict__)
        state["_env"] = None
        return state
