"""LMDBs are rebuilt from scratch, never merged with what was there, and their metadata is checked
against the keys they hold before anything is read."""
from __future__ import annotations

import time

import lmdb
import pytest

from conftest import create_lmdb, write_word_folder
from ocrframe.data.lmdb_dataset import LMDBDataset

CHARSET = dict(symbols="abcdefghijklmnopqrstuvwxyz")


def keys_of(path) -> set[str]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {key.decode() for key, _ in txn.cursor()}
    finally:
        env.close()


def test_create_lmdb_refuses_an_existing_lmdb_and_overwrite_starts_empty(tmp_path):
    old = write_word_folder(tmp_path / "old", ["alpha", "beta", "gamma"], {i: ["alpha", "beta"] for i in range(3)})
    new = write_word_folder(tmp_path / "new", ["delta", "echo"])
    out = tmp_path / "db"
    assert create_lmdb([str(old), str(out)]) == 0
    # main() raises; run as a script, the same error is one line (tests/test_data.py)
    with pytest.raises(FileExistsError, match=r"db already holds an LMDB \(10 keys\).*--overwrite"):
        create_lmdb([str(new), str(out)])
    assert len(keys_of(out)) == 10  # untouched: 3 images, 3 labels, 3 lexicons, num-samples
    assert create_lmdb([str(new), str(out), "--overwrite"]) == 0
    assert keys_of(out) == {"num-samples", "image-000000001", "label-000000001", "image-000000002", "label-000000002"}
    dataset = LMDBDataset(str(out), CHARSET)
    assert [dataset.load(i)["text"] for i in range(len(dataset))] == ["delta", "echo"]
    assert not any("lexicon" in dataset.load(i) for i in range(len(dataset)))


def set_num_samples(path, value: bytes) -> None:
    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b"num-samples", value)
    env.close()


@pytest.mark.parametrize("value, message", [
    (b"abc", r"LMDB .*db: 'num-samples' is 'abc', not a count of samples"),
    (b"-3", r"LMDB .*db: 'num-samples' is '-3', not a count"),
    (str(10**9).encode(), r"LMDB .*db: 'num-samples' says 1000000000 samples, but it holds only 5 keys"),
    (b"3", r"LMDB .*db: 'num-samples' says 3 samples, but it holds only 5 keys"),
])
def test_lmdb_metadata_is_checked_quickly_and_errors_name_the_lmdb(tmp_path, value, message):
    out = tmp_path / "db"
    assert create_lmdb([str(write_word_folder(tmp_path / "words", ["delta", "echo"])), str(out)]) == 0
    set_num_samples(out, value)
    started = time.monotonic()
    with pytest.raises(ValueError, match=message):
        LMDBDataset(str(out), CHARSET)
    assert time.monotonic() - started < 5  # not a scan of the keys num-samples promises
