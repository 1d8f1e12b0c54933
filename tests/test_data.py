"""Data: building and reading LMDBs, gt.txt folders, bad samples, workers, transforms, batching."""
from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

import lmdb
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmengine.config import Config
from ocrframe_vgg import VGG
from PIL import Image
from torch.utils.data import DataLoader

from conftest import CONFIG, REPO, create_lmdb, make_lmdb, random_words, render_word, run_tool, write_word_folder
from ocrframe.data.base import BadSample, SkipCounter
from ocrframe.data.gt_folder import GtFolderDataset
from ocrframe.data.lmdb_dataset import LMDBDataset, write_lmdb
from ocrframe.data.transforms import Resize, ToTensor, pad_collate
from ocrframe.registry import MODELS

ALNUM = dict(symbols="0123456789abcdefghijklmnopqrstuvwxyz", case="lower")
TRAIN_PIPELINE = [dict(type="Grayscale"), dict(type="Resize", height=32, width=100), dict(type="ToTensor")]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def raw_lmdb(path, items: dict[bytes, bytes]) -> None:
    """Write keys exactly as given with the plain lmdb API (no ocrframe code involved)."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key, value)
    env.close()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# -- tools/create_lmdb.py and reading back ---------------------------------------------------

@pytest.fixture
def messy_folder(tmp_path):
    """Three good images (one with a lexicon column), a corrupt file, a missing file, an empty label."""
    root = tmp_path / "messy"
    write_word_folder(root, ["alpha", "beta", "gamma"], lexicons={1: ["beta", "bets", "bet"]})
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    render_word("empty").save(root / "empty.png")
    with (root / "gt.txt").open("a", encoding="utf-8") as gt:
        gt.write("corrupt.png\tbroken\nnowhere.png\tmissing\nempty.png\t\n")
    return root


def test_a_skip_summary_counts_each_reason_and_says_why_its_first_sample_failed():
    skipped = SkipCounter()
    skipped.add("undecodable image", "a.png", "image file is truncated")
    skipped.add("undecodable image", "b.png", "cannot identify image file")
    skipped.add("empty label", "k7")
    assert skipped.summary() == ("2 undecodable image (e.g. a.png, b.png; a.png: image file is truncated); "
                                 "1 empty label (e.g. k7)")


def test_create_lmdb_counts_each_skip_reason(messy_folder, tmp_path, capsys):
    make_lmdb(messy_folder, tmp_path / "out")
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"wrote 3 samples .*; skipped 3:", summary), summary
    assert re.search(r"1 undecodable image \(e\.g\. corrupt\.png; corrupt\.png: not in an image format Pillow "
                     r"reads\)", summary)
    assert re.search(r"1 missing image file \(e\.g\. nowhere\.png\)", summary)
    assert re.search(r"1 empty label \(e\.g\. empty\.png\)", summary)


def test_create_lmdb_fails_when_nothing_is_usable(tmp_path):
    root = tmp_path / "nothing"
    root.mkdir()
    (root / "gt.txt").write_text("gone.png\tword\n")
    assert create_lmdb([str(root), str(tmp_path / "out")]) == 1


def test_lmdb_reads_back_the_same_labels_pixels_and_lexicon(messy_folder, tmp_path):
    dataset = LMDBDataset(make_lmdb(messy_folder, tmp_path / "out"), ALNUM)
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s["text"] for s in samples] == ["alpha", "beta", "gamma"]
    assert [s["key"] for s in samples] == [f"image-{i:09d}" for i in (1, 2, 3)]
    for sample, name in zip(samples, ["img_000.png", "img_001.png", "img_002.png"]):
        assert np.array_equal(pixels(sample["image"]), pixels(Image.open(messy_folder / name)))
    assert "lexicon" not in samples[0]
    assert samples[1]["lexicon"] == ["beta", "bets", "bet"]


def test_lmdb_label_outside_the_charset_is_skipped_and_counted_at_init(tmp_path, caplog):
    image = png_bytes(render_word("ab"))
    write_lmdb(tmp_path / "db", [("a", image, "good", None), ("b", image, "bad-label!", None),
                                 ("c", image, "fine", None)])
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        dataset = LMDBDataset(tmp_path / "db", ALNUM)
    assert len(dataset) == 2
    assert [dataset[i]["text"] for i in range(2)] == ["good", "fine"]
    assert dict(dataset.skipped.counts) == {"symbols outside the charset": 1}
    assert "image-000000002" in caplog.text


def test_lmdb_label_outside_the_charset_raises_naming_the_key_with_error_policy(tmp_path):
    image = png_bytes(render_word("ab"))
    write_lmdb(tmp_path / "db", [("a", image, "good", None), ("b", image, "bad-label!", None)])
    with pytest.raises(BadSample, match="image-000000002: symbols outside the charset"):
        LMDBDataset(tmp_path / "db", ALNUM, on_bad_sample="error")


def test_lmdb_charset_remove_policy_keeps_the_sample_without_the_unknown_symbols_and_says_so(tmp_path, caplog):
    image = png_bytes(render_word("ab"))
    write_lmdb(tmp_path / "db", [("a", image, "it's", None), ("b", image, "rock'n'roll!", None)])
    with caplog.at_level(logging.WARNING, logger="ocrframe"):
        dataset = LMDBDataset(tmp_path / "db", dict(ALNUM, unknown="remove"))
    assert len(dataset) == 2
    assert dataset[0]["text"] == "its" and dataset[1]["text"] == "rocknroll"
    assert "symbols outside the charset removed from labels (unknown='remove'): \"'\" from 2, '!' from 1" in caplog.text


@pytest.fixture
def lmdb_with_undecodable_image(tmp_path):
    path = tmp_path / "crafted"
    raw_lmdb(path, {b"num-samples": b"2",
                    b"image-000000001": png_bytes(render_word("ok")), b"label-000000001": b"ok",
                    b"image-000000002": b"\xff\xd8 truncated jpeg", b"label-000000002": b"bad"})
    return path


def test_lmdb_undecodable_image_is_skipped_at_read_time_with_its_key_logged(lmdb_with_undecodable_image, caplog):
    dataset = LMDBDataset(lmdb_with_undecodable_image, ALNUM)
    assert len(dataset) == 2  # images are only decoded when read
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        sample = dataset[1]
    assert sample["key"] == "image-000000001"  # the next usable sample is served instead
    assert "image-000000002" in caplog.text and "undecodable image" in caplog.text
    assert dict(dataset.skipped.counts) == {"undecodable image": 1}


def test_lmdb_undecodable_image_raises_naming_the_key_with_error_policy(lmdb_with_undecodable_image):
    dataset = LMDBDataset(lmdb_with_undecodable_image, ALNUM, on_bad_sample="error")
    assert dataset[0]["text"] == "ok"
    with pytest.raises(BadSample, match="image-000000002: undecodable image"):
        dataset[1]


def test_missing_lmdb_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"LMDB .*no_such_lmdb does not exist.*create_lmdb"):
        LMDBDataset(tmp_path / "no_such_lmdb", ALNUM)


def test_directory_that_is_not_an_lmdb_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png_bytes(render_word("a")))
    with pytest.raises(OSError, match=r"cannot open .*images as an LMDB"):
        LMDBDataset(tmp_path / "images", ALNUM)


def test_lmdb_without_num_samples_is_a_clear_error(tmp_path):
    raw_lmdb(tmp_path / "other", {b"some-key": b"value"})
    with pytest.raises(ValueError, match="no 'num-samples' key"):
        LMDBDataset(tmp_path / "other", ALNUM)


def test_lmdb_written_by_hand_in_the_crnn_pytorch_layout_is_read(tmp_path):
    # What crnn.pytorch's and deep-text-recognition-benchmark's create_dataset.py write.
    cache = {b"num-samples": str(2).encode()}
    for cnt, word in enumerate(["hello", "world"], 1):
        cache[b"image-%09d" % cnt] = png_bytes(render_word(word))
        cache[b"label-%09d" % cnt] = word.encode()
    raw_lmdb(tmp_path / "dtrb", cache)
    dataset = LMDBDataset(tmp_path / "dtrb", ALNUM, pipeline=TRAIN_PIPELINE)
    samples = [dataset[0], dataset[1]]
    assert [s["text"] for s in samples] == ["hello", "world"]
    assert all(tuple(s["image"].shape) == (1, 32, 100) for s in samples)


def test_lmdb_dataset_reads_the_same_samples_with_two_workers(train_lmdb):
    dataset = LMDBDataset(train_lmdb, ALNUM, pipeline=TRAIN_PIPELINE, max_samples=24)
    direct = pad_collate([dataset[i] for i in range(len(dataset))])  # opens the LMDB in this process first
    loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=pad_collate)
    batches = list(loader)
    assert [k for b in batches for k in b["data_samples"]["keys"]] == direct["data_samples"]["keys"]
    assert [t for b in batches for t in b["data_samples"]["texts"]] == direct["data_samples"]["texts"]
    assert torch.equal(torch.cat([b["inputs"] for b in batches]), direct["inputs"])
    assert dict(dataset.skipped.counts) == {}


# -- gt.txt folders --------------------------------------------------------------------------

def test_gt_folder_reads_images_labels_and_lexicon(tmp_path):
    root = write_word_folder(tmp_path / "f", ["Left", "right"], lexicons={0: ["left", "loft"]})
    dataset = GtFolderDataset(str(root), ALNUM)
    assert len(dataset) == 2
    first, second = dataset[0], dataset[1]
    assert (first["text"], first["key"], first["lexicon"]) == ("left", "img_000.png", ["left", "loft"])
    assert second["text"] == "right" and "lexicon" not in second
    assert np.array_equal(pixels(second["image"]), pixels(Image.open(root / "img_001.png")))


def test_gt_folder_skips_a_missing_image_file_when_read(tmp_path, caplog):
    root = write_word_folder(tmp_path / "f", ["one", "two"])
    (root / "img_000.png").unlink()
    dataset = GtFolderDataset(str(root), ALNUM)
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        assert dataset[0]["key"] == "img_001.png"
    assert dict(dataset.skipped.counts) == {"missing image file": 1}
    assert "img_000.png" in caplog.text


def test_gt_folder_missing_image_raises_naming_it_with_error_policy(tmp_path):
    root = write_word_folder(tmp_path / "f", ["one", "two"])
    (root / "img_001.png").unlink()
    dataset = GtFolderDataset(str(root), ALNUM, on_bad_sample="error")
    with pytest.raises(BadSample, match="img_001.png: missing image file"):
        dataset[1]


def test_gt_folder_counts_empty_labels_at_init(tmp_path):
    root = write_word_folder(tmp_path / "f", ["one", "two"])
    with (root / "gt.txt").open("a") as gt:
        gt.write("img_000.png\t\n")
    dataset = GtFolderDataset(str(root), ALNUM)
    assert len(dataset) == 2
    assert dict(dataset.skipped.counts) == {"empty label": 1}


def test_gt_folder_malformed_line_names_file_and_line(tmp_path):
    root = write_word_folder(tmp_path / "f", ["one"])
    with (root / "gt.txt").open("a") as gt:
        gt.write("img_001.png label-without-a-tab\n")
    with pytest.raises(ValueError, match=r"gt\.txt:2: expected"):
        GtFolderDataset(str(root), ALNUM)


def test_gt_folder_without_gt_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="gt.txt does not exist"):
        GtFolderDataset(str(tmp_path), ALNUM)


# -- transforms and batching -----------------------------------------------------------------

def resized(size: tuple[int, int], **options) -> tuple[int, int]:
    return Resize(**options)(dict(image=Image.new("L", size)))["image"].size


def test_resize_to_a_fixed_size():
    assert resized((37, 80), height=32, width=100) == (100, 32)


def test_resize_keeping_the_aspect_ratio():
    assert resized((256, 64), width=None) == (128, 32)


def test_resize_keeping_the_aspect_ratio_respects_min_and_max_width():
    assert resized((40, 32), width=None, min_width=100) == (100, 32)
    assert resized((4000, 32), width=None, max_width=800) == (800, 32)
    assert resized((4000, 32), width=None) == (4000, 32)  # a line of ~100 characters keeps its shape
    assert resized((5000, 32), width=None) == (4096, 32)


def test_resize_says_when_it_squeezes_an_image_to_max_width():
    wide = Resize(height=32, width=None, max_width=800)(dict(image=Image.new("L", (2000, 64))))
    assert wide["image"].size == (800, 32) and wide["extras"]["squeezed_from"] == 1000
    assert "extras" not in Resize(height=32, width=None, max_width=800)(dict(image=Image.new("L", (1600, 64))))
    assert "extras" not in Resize(height=32, width=100)(dict(image=Image.new("L", (2000, 64))))  # training: meant


def test_to_tensor_maps_black_and_white_to_minus_one_and_one():
    image = Image.new("L", (50, 32), 255)
    image.paste(0, (0, 0, 10, 32))
    sample = ToTensor()(dict(image=image))
    assert tuple(sample["image"].shape) == (1, 32, 50)
    assert sample["image"].dtype == torch.float32
    assert sample["width"] == 50
    assert sample["image"].min().item() == -1.0 and sample["image"].max().item() == 1.0
    assert torch.all(sample["image"][:, :, :10] == -1.0)


def test_to_tensor_of_an_rgb_image_is_channels_first():
    assert tuple(ToTensor()(dict(image=Image.new("RGB", (20, 32))))["image"].shape) == (3, 32, 20)


def sample_of_width(width: int, value: float, key: str, **extra) -> dict:
    return dict(image=torch.full((1, 32, width), value), text=key, key=key, width=width, **extra)


def test_pad_collate_pads_to_the_widest_and_keeps_true_widths():
    batch = pad_collate([sample_of_width(100, 1.0, "a"), sample_of_width(140, 2.0, "b"),
                         sample_of_width(120, 3.0, "c")])
    inputs = batch["inputs"]
    assert tuple(inputs.shape) == (3, 1, 32, 140)
    assert batch["data_samples"]["widths"].tolist() == [100, 140, 120]
    assert batch["data_samples"]["keys"] == ["a", "b", "c"]
    assert torch.all(inputs[0, :, :, :100] == 1.0) and torch.all(inputs[0, :, :, 100:] == 0)
    assert torch.all(inputs[1] == 2.0)
    assert torch.all(inputs[2, :, :, :120] == 3.0) and torch.all(inputs[2, :, :, 120:] == 0)
    assert "lexicons" not in batch["data_samples"]


def test_pad_collate_passes_lexicons_on():
    batch = pad_collate([sample_of_width(10, 0, "a", lexicon=["x"]), sample_of_width(10, 0, "b")])
    assert batch["data_samples"]["lexicons"] == [["x"], None]


@torch.no_grad()
def test_recognizer_uses_each_images_own_frames_in_a_padded_batch():
    model = MODELS.build(Config.fromfile(str(CONFIG)).model).eval()
    widths = [100, 163, 64]
    batch = pad_collate([sample_of_width(w, 0.5, f"w{w}") for w in widths])
    lengths = model.frame_lengths(batch["data_samples"]["widths"])
    assert lengths.tolist() == [VGG.num_frames(w) for w in widths] == [26, 41, 17]
    log_probs = model(batch["inputs"], dict(widths=batch["data_samples"]["widths"]))  # tensor mode, padding known
    assert log_probs.shape[1] == 41
    predictions = model(batch["inputs"], batch["data_samples"], mode="predict")
    for prediction, log_prob, length in zip(predictions, log_probs, lengths):
        # the best path's score sums the image's own frames, not the padding's
        assert prediction["score"] == pytest.approx(log_prob[:length].max(-1).values.sum().item(), rel=1e-5)


# -- width-bucketed batches --------------------------------------------------------------------

class KnownRatios:
    """A dataset that is only its images' aspect ratios (width / height)."""

    def __init__(self, ratios):
        self.ratios = list(ratios)

    def __len__(self) -> int:
        return len(self.ratios)

    def aspect_ratio(self, index: int) -> float:
        return self.ratios[index]


@given(ratios=st.lists(st.floats(0.2, 20), min_size=1, max_size=50), batch_size=st.integers(1, 9),
       drop_last=st.booleans(), seed=st.integers(0, 1000))
def test_width_buckets_batch_every_index_once_narrowest_first(ratios, batch_size, drop_last, seed):
    from mmengine.dataset import DefaultSampler

    from ocrframe.data.sampler import WidthBucketBatchSampler

    dataset = KnownRatios(ratios)
    batches = list(WidthBucketBatchSampler(DefaultSampler(dataset, shuffle=True, seed=seed), batch_size, drop_last))
    seen = [i for batch in batches for i in batch]
    assert len(seen) == len(set(seen))  # no index twice
    if drop_last:
        assert all(len(batch) == batch_size for batch in batches)
        assert len(seen) == len(ratios) // batch_size * batch_size  # only the incomplete last batch is left out
        left_out = set(range(len(ratios))) - set(seen)
        assert all(ratios[i] >= max(ratios[j] for j in seen) for i in left_out if seen)  # the widest ones
    else:
        assert sorted(seen) == list(range(len(ratios)))
        assert [len(b) for b in batches] == [batch_size] * (len(ratios) // batch_size) + (
            [len(ratios) % batch_size] if len(ratios) % batch_size else [])
    assert [ratios[i] for i in seen] == sorted(ratios[i] for i in seen)  # similar widths share a batch


def test_width_buckets_of_an_lmdb_follow_its_images_widths(train_lmdb):
    from mmengine.dataset import DefaultSampler

    from ocrframe.data.sampler import WidthBucketBatchSampler

    dataset = LMDBDataset(str(train_lmdb), charset=ALNUM)
    batches = list(WidthBucketBatchSampler(DefaultSampler(dataset, shuffle=False), 8))
    sizes = [render_word(word).size for word in random_words(64, seed=1)]  # the images conftest.train_lmdb drew
    ratios = [w / h for w, h in sizes]
    assert len(set(ratios)) > 8
    order = [i for batch in batches for i in batch]
    assert sorted(order) == list(range(64)) and [ratios[i] for i in order] == sorted(ratios)


def test_width_buckets_without_aspect_ratios_keep_the_samplers_order_and_say_so_once(caplog):
    from ocrframe.data import sampler
    from ocrframe.data.sampler import WidthBucketBatchSampler

    class Plain(list):
        """A dataset without aspect ratios."""

    class Ordered(list):
        dataset = Plain([0] * 5)

    sampler._TOLD.discard("Plain")
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        for _ in range(2):
            assert list(WidthBucketBatchSampler(Ordered([4, 0, 3, 1, 2]), batch_size=2)) == [[4, 0], [3, 1], [2]]
    (record,) = [r for r in caplog.records if "aspect_ratio" in r.getMessage()]
    assert "Plain has no aspect_ratio(index)" in record.getMessage()
    Ordered.dataset = KnownRatios([5, 4, 3, 2, 1])  # with ratios: narrowest first
    assert list(WidthBucketBatchSampler(Ordered([4, 0, 3, 1, 2]), batch_size=2)) == [[4, 3], [2, 1], [0]]


# -- tools/create_lmdb.py as a command --------------------------------------------------------

def test_create_lmdb_tool_writes_images_labels_and_lexicons_that_read_back(tmp_path, capsys):
    words = ["harbour", "open24", "b52"]
    folder = write_word_folder(tmp_path / "words", words)
    (tmp_path / "lexicons.txt").write_text("harbour harbor\nopen24 open\nb52 b25 b5\n")
    result = subprocess.run([sys.executable, str(REPO / "tools" / "create_lmdb.py"), str(folder), str(tmp_path / "out"),
                             "--lexicon-file", str(tmp_path / "lexicons.txt")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote 3 samples to {tmp_path / 'out'}; skipped 0" in result.stdout
    dataset = LMDBDataset(str(tmp_path / "out"), charset=ALNUM)
    for i, word in enumerate(words):
        sample = dataset.load(i)
        assert sample["text"] == word
        assert list(sample["lexicon"]) == (tmp_path / "lexicons.txt").read_text().splitlines()[i].split()
        with Image.open(folder / f"img_{i:03d}.png") as source:
            assert np.array_equal(pixels(sample["image"]), pixels(source))
    (tmp_path / "lexicons.txt").write_text("harbour\n")
    status = run_tool("create_lmdb", folder, tmp_path / "again", "--lexicon-file", tmp_path / "lexicons.txt")
    assert status != 0 and "has 1 lines but gt.txt has 3 samples" in capsys.readouterr().err


def test_create_lmdb_tool_reports_a_users_mistake_in_one_line_and_reads_a_bom(tmp_path, capsys):
    folder = write_word_folder(tmp_path / "words", ["harbour", "open24"])
    (tmp_path / "lexicons.txt").write_text("harbour harbor\nopen24 open\n", encoding="utf-8-sig")  # a BOM first
    assert run_tool("create_lmdb", folder, tmp_path / "out", "--lexicon-file", tmp_path / "lexicons.txt") == 0
    capsys.readouterr()
    for args, said in [((folder, tmp_path / "out"), "--overwrite"),             # the LMDB exists
                       ((tmp_path / "nowhere", tmp_path / "new"), "gt.txt"),  # no such folder
                       ((folder, tmp_path / "new", "--lexicon-file", tmp_path / "none.txt"), "none.txt")]:
        status, stderr = run_tool("create_lmdb", *args), capsys.readouterr().err
        assert status == 2, stderr[-2000:]
        assert said in stderr and stderr.startswith("create_lmdb.py: error: ") and len(stderr.splitlines()) == 1
    assert not (tmp_path / "new").exists()
    # read last: an LMDB open in this process cannot be opened again by the tool run in it
    assert list(LMDBDataset(str(tmp_path / "out"), charset=ALNUM).load(0)["lexicon"]) == ["harbour", "harbor"]


# -- the training order ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 3)])
def test_the_lazy_sampler_draws_mmengines_order(shuffle, rank, world_size):
    """LazyInfiniteSampler yields what mmengine's InfiniteSampler yields, epoch after epoch, per rank."""
    import itertools

    from mmengine.dataset import InfiniteSampler

    from ocrframe.data.sampler import LazyInfiniteSampler

    def first(cls, n):
        sampler = cls(list(range(17)), shuffle=shuffle, seed=5)
        sampler.rank, sampler.world_size = rank, world_size
        sampler.indices = sampler._indices_of_rank()
        return list(itertools.islice(iter(sampler), n))

    assert first(LazyInfiniteSampler, 60) == first(InfiniteSampler, 60)


def test_the_lazy_sampler_does_not_list_an_epoch_before_the_first_sample():
    """mmengine's InfiniteSampler turns a whole epoch into Python ints before yielding one (the
    synthetic words' 100M indices: seconds and gigabytes); the lazy one a slice at a time."""
    import itertools
    import tracemalloc

    from mmengine.dataset import InfiniteSampler

    from ocrframe.data.sampler import LazyInfiniteSampler

    class Sized:
        def __len__(self):
            return 2_000_000

    def python_memory_for_ten_indices(cls):
        sampler = cls(Sized(), shuffle=True, seed=0)
        tracemalloc.start()
        try:
            list(itertools.islice(iter(sampler), 10))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert python_memory_for_ten_indices(InfiniteSampler) > 40e6  # the control: an epoch of ints
    assert python_memory_for_ten_indices(LazyInfiniteSampler) < 10e6
