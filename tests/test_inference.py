"""Reading with a trained model: the Reader (inputs, width buckets, decoders and lexicons chosen per
call, frame positions, bf16 with its fp32 recheck) and `ocrframe read`."""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from conftest import render_word, write_word_folder
from ocrframe import Prediction
from ocrframe.inference import Reader, build_decoder, ctc_alignment, find_decoder, width_buckets
from ocrframe.registry import SLOTS, ComponentError, Origin, registering_as

WORDS = ["open", "sesame", "a", "thirteen", "mile", "xq"]


@pytest.fixture(scope="module")
def reader(checkpoint) -> Reader:
    return Reader.from_checkpoint(checkpoint, precision="fp32", batch_size=4, width_step=1)


def single_image_prediction(reader: Reader, image: Image.Image) -> dict:
    """The recognizer's own predict path on one image, no batching."""
    sample = reader.pipeline(dict(image=image.convert("RGB"), text="", key="0"))
    with torch.inference_mode():
        return reader.model(sample["image"][None], mode="predict")[0]


# -- width buckets -----------------------------------------------------------------------------

@given(widths=st.lists(st.integers(100, 800), min_size=1, max_size=60), batch_size=st.integers(1, 16),
       step=st.integers(1, 64))
def test_width_buckets_hold_every_image_once_in_batches_of_one_rounded_width(widths, batch_size, step):
    batches = width_buckets(widths, batch_size, step)
    assert sorted(i for b in batches for i in b) == list(range(len(widths)))
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len({math.ceil(widths[i] / step) for i in batch}) == 1
    # narrowest first; a batch is cut only when full or when the next image is in another bucket
    flat = [widths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    for batch, following in zip(batches, batches[1:]):
        assert len(batch) == batch_size or math.ceil(widths[batch[0]] / step) != math.ceil(widths[following[0]] / step)


# -- frame positions ---------------------------------------------------------------------------

def collapse(path, blank):
    return [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]


def brute_force_alignment(log_probs: np.ndarray, tokens: list[int], blank: int) -> list[int]:
    best, best_path = -np.inf, None
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        if collapse(path, blank) == tokens:
            score = sum(log_probs[t, c] for t, c in enumerate(path))
            if score > best:
                best, best_path = score, path
    starts = [t for t, c in enumerate(best_path) if c != blank and (t == 0 or c != best_path[t - 1])]
    return starts


@given(data=st.data(), frames=st.integers(1, 6), classes=st.integers(2, 3), blank=st.sampled_from(["first", "last"]))
def test_ctc_alignment_finds_the_start_frames_of_the_best_path_that_spells_the_tokens(data, frames, classes, blank):
    blank_index = 0 if blank == "first" else classes - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    log_probs = np.log(rng.dirichlet(np.ones(classes), size=frames))
    some_path = data.draw(st.lists(st.integers(0, classes - 1), min_size=frames, max_size=frames))
    tokens = collapse(some_path, blank_index)  # spelled by at least one path, so alignable
    assert ctc_alignment(log_probs, tokens, blank_index) == brute_force_alignment(log_probs, tokens, blank_index)


def test_ctc_alignment_of_too_many_tokens_is_an_error():
    with pytest.raises(ValueError, match="cannot be aligned"):
        ctc_alignment(np.log(np.full((2, 3), 1 / 3)), [1, 1], 0)  # "aa" needs 3 frames


# -- the Reader --------------------------------------------------------------------------------

def test_paths_pil_images_and_arrays_read_alike(reader, tmp_path):
    image = render_word("sesame")
    image.save(tmp_path / "sesame.png")
    array = np.asarray(image)
    by_path, by_pil, by_array, by_gray = reader.read([tmp_path / "sesame.png", image, array, array[..., 0]])
    assert by_path.text == by_pil.text == by_array.text == by_gray.text
    assert by_path.score == pytest.approx(by_pil.score) == pytest.approx(by_array.score)


def test_batched_reading_gives_each_image_its_own_unbatched_result(reader):
    images = [render_word(w) for w in WORDS[:4]] + [render_word("wide" * 4)]
    predictions = reader.read(images)  # widths differ: several buckets, reordered by width
    assert len(predictions) == len(images)
    for image, prediction in zip(images, predictions):
        alone = single_image_prediction(reader, image)
        assert prediction.text == alone["pred"]
        assert prediction.score == pytest.approx(alone["score"], rel=1e-4)


def test_frames_and_pixel_positions_follow_the_characters(reader):
    image = render_word("thirteen")
    (prediction,) = reader.read([image], frames=True)
    frames, x = prediction.extras["frames"], prediction.extras["x"]
    assert len(frames) == len(x) == len(prediction.text)
    assert frames == sorted(frames) and all(0 <= px <= image.width for px in x)
    resized_width = reader.pipeline(dict(image=image, text="", key="0"))["width"]
    num_frames = reader.model.backbone.num_frames(resized_width)
    assert x == [round((f + 0.5) * image.width / num_frames, 1) for f in frames]


def test_bad_inputs_are_named(reader, tmp_path):
    with pytest.raises(Exception, match=r"missing\.png: missing image file"):
        reader.read([tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="image 1: arrays must be uint8"):
        reader.read([render_word("ok"), np.zeros((32, 40), np.float32)])
    with pytest.raises(ValueError, match="precision must be one of"):
        Reader(reader.model, [], precision="fp8")


def test_bf16_rechecks_close_frames_in_fp32(reader):
    images = [render_word(w) for w in WORDS[:3]]
    fp32 = reader.read(images)
    bf16 = Reader(reader.model, reader.pipeline.transforms, precision="bf16", recheck_margin=math.inf)
    assert [p.score for p in bf16.read(images)] == pytest.approx([p.score for p in fp32], rel=1e-6)
    assert bf16.rechecked == len(images)  # every image re-read in fp32
    bf16.recheck_margin, bf16.rechecked = -1.0, 0
    assert [p.score for p in bf16.read(images)] != [p.score for p in fp32]  # really computed in bf16
    assert bf16.rechecked == 0
    bf16.recheck_margin = 1.0  # the default
    assert [p.text for p in bf16.read(images)] == [p.text for p in fp32]


# -- decoders and lexicons chosen per call -----------------------------------------------------

class BestWordDecoder:
    """Scores every word of each image's lexicon with CTC and returns the most probable."""

    def __init__(self, charset):
        self.charset = charset

    def decode(self, log_probs, frame_lengths, lexicons=None) -> list[Prediction]:
        results = []
        for row, length, words in zip(log_probs, frame_lengths, lexicons):
            targets = [torch.tensor(self.charset.encode(w)) for w in words]
            nll = [torch.nn.functional.ctc_loss(row[:length, None], t[None], length[None], torch.tensor([len(t)]),
                                                blank=self.charset.blank, reduction="sum") for t in targets]
            best = int(torch.stack(nll).argmin())
            results.append(Prediction(words[best], -float(nll[best])))
        return results


class GlobalLexiconDecoder(BestWordDecoder):
    """The same with one lexicon given at construction."""

    def __init__(self, charset, lexicon=()):
        super().__init__(charset)
        self.lexicon = list(lexicon)

    def decode(self, log_probs, frame_lengths) -> list[Prediction]:
        return super().decode(log_probs, frame_lengths, [self.lexicon] * len(log_probs))


@pytest.fixture
def lexicon_decoders():
    origin = Origin("test-lexicon-decoders", "tests", "-")
    with registering_as(origin):
        SLOTS.decoder.register_module(module=BestWordDecoder)
    yield
    SLOTS.unregister(origin)


def test_decoders_are_found_by_a_unique_part_of_their_name(reader):
    assert find_decoder("greedy") == find_decoder("GREEDYDECODER") == "GreedyDecoder"
    with pytest.raises(ComponentError, match="'GreedyDecodr' is not a registered decoder.*Did you mean: 'GreedyDecoder'"):
        find_decoder("GreedyDecodr")
    assert type(build_decoder("greedy", reader.charset)).__name__ == "GreedyDecoder"


def test_ambiguous_decoder_part_lists_the_candidates(lexicon_decoders):
    with pytest.raises(ComponentError, match="'decoder' is ambiguous: it matches BeamSearchDecoder, BestWordDecoder, GreedyDecoder, LexiconDecoder"):
        find_decoder("decoder")


def test_per_image_lexicons_follow_their_images_through_the_width_buckets(reader, lexicon_decoders):
    images = [render_word(w) for w in WORDS]
    lexicons = [[w] for w in WORDS]  # one word each: the result can only be that word
    predictions = reader.read(images, lexicon=lexicons)  # the CTC plugin's LexiconDecoder is chosen by itself
    assert [p.text for p in predictions] == WORDS


def test_a_lexicon_decoder_picks_the_most_probable_word_of_a_lexicon_file(reader, lexicon_decoders, tmp_path):
    (tmp_path / "words.txt").write_text("open\nsesame mile\n")
    images = [render_word(w) for w in WORDS[:3]]
    predictions = reader.read(images, decoder="bestword", lexicon=tmp_path / "words.txt")
    for image, prediction in zip(images, predictions):
        scores = {w: p.score for w in ("open", "sesame", "mile")
                  for p in reader.read([image], decoder="bestword", lexicon=[[w]])}
        assert prediction.text == max(scores, key=scores.get)
        assert prediction.score == pytest.approx(scores[prediction.text], rel=1e-4)


def test_a_global_lexicon_goes_to_the_constructor_of_a_decoder_that_takes_one(reader):
    origin = Origin("test-global", "tests", "-")
    with registering_as(origin):
        SLOTS.decoder.register_module(module=GlobalLexiconDecoder)
    try:
        predictions = reader.read([render_word("mile")], decoder="GlobalLexiconDecoder", lexicon=["xq"])
        assert predictions[0].text == "xq"
    finally:
        SLOTS.unregister(origin)


def test_a_lexicon_with_a_decoder_that_ignores_lexicons_is_an_error(reader, lexicon_decoders):
    with pytest.raises(ValueError, match="GreedyDecoder does not use a lexicon; decoders that do: BeamSearchDecoder, BestWordDecoder, LexiconDecoder"):
        reader.read([render_word("open")], decoder="greedy", lexicon=["open"])
    with pytest.raises(ValueError, match="2 per-image lexicons for 1 images"):
        reader.read([render_word("open")], lexicon=[["open"], ["mile"]])


# -- ocrframe read -----------------------------------------------------------------------------

def ocrframe(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocrframe.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_read_a_gt_folder_prints_a_line_per_image_and_the_accuracy(checkpoint, tmp_path):
    folder = write_word_folder(tmp_path / "words", WORDS)
    result = ocrframe("read", checkpoint, folder, "--precision", "fp32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [(r[0], r[3]) for r in rows] == [(str(folder / f"img_{i:03d}.png"), w) for i, w in enumerate(WORDS)]
    correct = sum(r[1] == r[3] for r in rows)
    assert f"accuracy on {len(WORDS)} labelled images: word accuracy {correct / len(WORDS):.1%}" in result.stderr


def test_read_json_gives_frames_and_counts_unreadable_images(checkpoint, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    render_word("open").save(folder / "a.png")
    (folder / "broken.png").write_bytes(b"not an image")
    result = ocrframe("read", checkpoint, folder, "--json", "--frames", "--precision", "fp32", cwd=tmp_path)
    assert result.returncode == 1  # something was skipped
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["image"] == str(folder / "a.png")
    assert len(record["frames"]) == len(record["x"]) == len(record["text"])
    assert "skipped 1 unreadable image(s): 1 undecodable image" in result.stderr
    assert "broken.png" in result.stderr
