"""LMDB datasets in the common layout of bgshih/crnn, crnn.pytorch, deep-text-recognition-benchmark
and MMOCR: ``num-samples``, then ``image-%09d`` (encoded image bytes), ``label-%09d`` (UTF-8) and
optionally ``lexicon-%09d`` (space-separated words), keys counted from 1."""
from __future__ import annotations

import os
from pathlib import Path

import lmdb
import numpy as np

from ocrframe.data.base import BadSample, OcrDataset, SkipCounter, decode_image, image_aspect_ratio


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


_READERS: dict[str, lmdb.Environment] = {}


def shared_reader(path: str) -> lmdb.Environment:
    """One read-only handle per LMDB and process: LMDB refuses to open an environment twice in
    a process (train and validation sets may share a file)."""
    key = str(Path(path).resolve())
    if key not in _READERS:
        _READERS[key] = open_lmdb(path)
    return _READERS[key]


def _drop_inherited_readers() -> None:
    # A forked DataLoader worker must not use its parent's handles (LMDB forbids it), and cannot
    # open the same file again while they count as open: close the copies, then reopen lazily.
    for env in _READERS.values():
        env.close()
    _READERS.clear()


os.register_at_fork(after_in_child=_drop_inherited_readers)


class LMDBDataset(OcrDataset):
    """Reads an LMDB as it is. Labels are checked against the charset once, when the dataset is
    built (the skipped ones are counted by reason and logged with example keys); images are
    decoded when read, and an undecodable one is handled by ``on_bad_sample``.

    The LMDB handle is opened per process (:func:`shared_reader`), so workers never share one.
    The usable samples are kept as two numpy arrays and one bytes object (sample numbers, label
    offsets, the cleaned labels), not a list of Python objects: forked DataLoader workers share
    them, where millions of objects would be copied into each worker as their reference counts change.
    """

    labels_cleaned = True

    def __init__(self, path: str, charset, pipeline=(), on_bad_sample: str = "skip", max_samples: int | None = None):
        super().__init__(charset, pipeline, on_bad_sample)
        self.path = str(path)
        self._env, self._env_pid = None, None
        env = shared_reader(self.path)
        with env.begin() as txn:
            total = checked_count(self.path, txn.get(b"num-samples"), env.stat()["entries"])
            if max_samples is not None:
                total = min(total, max_samples)

            def label(i: int) -> str | None:
                raw = txn.get(f"label-{i:09d}".encode())
                return None if raw is None else raw.decode("utf-8", "replace")

            usable = self.scan_labels(((i, f"image-{i:09d}", label(i)) for i in range(1, total + 1)), total)
        self.numbers = np.fromiter((number for number, _ in usable), dtype=np.int64, count=len(usable))
        encoded = [text.encode("utf-8") for _, text in usable]
        self.label_ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
        self.labels = b"".join(encoded)

    def describe(self) -> str:
        return f"LMDB {self.path}"

    def __len__(self) -> int:
        return len(self.numbers)

    def sample_key(self, index: int) -> str:
        return f"image-{self.numbers[index]:09d}"

    def label(self, index: int) -> str:
        """Sample ``index``'s label, as cleaned when the dataset was built."""
        start = int(self.label_ends[index - 1]) if index > 0 else 0
        return self.labels[start:int(self.label_ends[index])].decode("utf-8")

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _env=None, _env_pid=None)  # an LMDB handle never crosses processes

    def _reader(self) -> lmdb.Environment:
        if self._env_pid != os.getpid():  # one lookup per process, not per sample
            self._env, self._env_pid = shared_reader(self.path), os.getpid()
        return self._env

    def sample_label(self, index: int) -> str:
        return self.label(index)

    def aspect_ratio(self, index: int) -> float:
        with self._reader().begin() as txn:
            return image_aspect_ratio(txn.get(self.sample_key(index).encode()) or b"")

    def load(self, index: int) -> dict:
        number = int(self.numbers[index])
        key = f"image-{number:09d}"
        with self._reader().begin() as txn:
            data = txn.get(key.encode())
            lexicon = txn.get(f"lexicon-{number:09d}".encode())
        if data is None:
            raise BadSample(key, "missing image")
        sample = dict(image=decode_image(data, key, self.decode_mode), text=self.label(index), key=key)
        if lexicon is not None:
            sample["lexicon"] = lexicon.decode("utf-8").split()
        return sample


def checked_count(path: str, raw: bytes | None, entries: int) -> int:
    """``num-samples`` as a count, checked against the keys the LMDB holds (``entries``, which
    LMDB keeps in its header): each sample has an image and a label key. Errors name the LMDB."""
    if raw is None:
        raise ValueError(f"{path} is not an LMDB in the common OCR layout: it has no 'num-samples' key")
    text = raw.decode("utf-8", "replace").strip()
    if not text.isdigit():
        raise ValueError(f"LMDB {path}: 'num-samples' is {text[:40]!r}, not a count of samples; rebuild it with "
                         "tools/create_lmdb.py")
    count = int(text)
    if 2 * count + 1 > entries:
        raise ValueError(f"LMDB {path}: 'num-samples' says {count} samples, but it holds only {entries} keys "
                         f"(a sample has an image and a label key): a damaged or partly written LMDB; rebuild it "
                         "with tools/create_lmdb.py --overwrite")
    return count


def write_lmdb(path: str | Path, samples, total: int | None = None, overwrite: bool = False) -> tuple[int, SkipCounter]:
    """Write ``(key, image_bytes, label, lexicon_or_None)`` samples in the common layout.

    Images are checked to decode and labels to be non-empty; failures are skipped and counted
    by reason. Returns (samples written, skip counter). Commits in chunks so memory stays flat.
    An LMDB that already holds keys is an error unless ``overwrite``, which empties it first: old
    keys (lexicons, samples beyond the new count) would otherwise be read as part of the new one.
    """
    from mmengine.utils import ProgressBar

    env = open_lmdb(path, write=True)
    held = env.stat()["entries"]
    if held and not overwrite:
        env.close()
        raise FileExistsError(f"{path} already holds an LMDB ({held} keys); choose a new path, or overwrite it "
                              "(--overwrite; write_lmdb(..., overwrite=True)), which deletes its keys first")
    if held:
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(), delete=False)
    skipped, written, pending = SkipCounter(), 0, {}
    progress = ProgressBar(total) if total else None
    step = max(1, (total or 1) // 100)  # ~100 bar updates, so a log file stays readable
    for count, (key, data, label, lexicon) in enumerate(samples, 1):
        if progress and (count % step == 0 or count == total):
            progress.update(step if count % step == 0 else count % step)
        try:
            if not label or not label.strip():
                raise BadSample(key, "empty label")
            if data is None:
                raise BadSample(key, "missing image file")
            decode_image(data, key)
        except BadSample as bad:
            skipped.add(bad.reason, bad.key, bad.detail)
            continue
        written += 1
        pending[f"image-{written:09d}"] = data
        pending[f"label-{written:09d}"] = label.encode("utf-8")
        if lexicon:
            pending[f"lexicon-{written:09d}"] = " ".join(lexicon).encode("utf-8")
        if len(pending) >= 3000:
            _put(env, pending)
    pending["num-samples"] = str(written).encode()
    _put(env, pending)
    env.close()
    if progress:
        print()
    return written, skipped


def encoded_samples(dataset: OcrDataset, count: int):
    """``(key, PNG bytes, label, None)`` for ``dataset.load(i)``, i < count: what a synthetic dataset
    renders, before any pipeline, in the form :func:`write_lmdb` takes."""
    import io

    for index in range(count):
        sample = dataset.load(index)
        buffer = io.BytesIO()
        sample["image"].save(buffer, format="PNG")
        yield sample["key"], buffer.getvalue(), sample["text"], sample.get("lexicon")


def _put(env: lmdb.Environment, items: dict) -> None:
    with env.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key.encode(), value)
    items.clear()
