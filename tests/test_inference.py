"""Reading with a trained model: the Reader (inputs, width buckets, decoders and lexicons chosen per
call, frame positions, bf16 with its fp32 recheck) and `ocrframe read`."""
from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import editdistance
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from conftest import READING_WORDS, _font, render_word, write_word_folder
from ocrframe import Prediction
from ocrframe.cli import main
from ocrframe.checkpoint import load_model
from ocrframe.data.batching import width_buckets
from ocrframe.decoders import build_decoder, ctc_alignment, find_decoder
from ocrframe.inference import Reader
from ocrframe.registry import DATASETS, SLOTS, ComponentError, Origin, registering_as

WORDS = ["open", "sesame", "a", "thirteen", "mile", "xq"]  # the last three hold letters the model never saw


@pytest.fixture(scope="module")
def reader(reading_checkpoint) -> Reader:
    """The small model trained to read words of READING_ALPHABET (conftest.py)."""
    return Reader.from_checkpoint(reading_checkpoint, precision="fp32", runtime="torch", batch_size=4,
                                  width_step=1)


def glyph_spans(word: str, size: int) -> list[tuple[float, float]]:
    """(left, right) pixel columns of each character of ``render_word(word, size=size)``, from the
    font's advances: where the characters really are, independent of the model."""
    font = _font(size)
    x0 = 4 - font.getbbox(word)[0]
    return [(x0 + font.getlength(word[:i]), x0 + font.getlength(word[:i + 1])) for i in range(len(word))]


def log_probs_of(reader: Reader, image: Image.Image) -> torch.Tensor:
    """(T, K) log-probabilities of one image, alone in its batch (no padding)."""
    return reader.log_probs(torch.from_numpy(reader.input_batches([image])[0]))[0]


def ctc_log_probability(log_probs: torch.Tensor, word: str, charset) -> float:
    """Reference: log p(word | frames), the CTC forward recursion written out over the
    blank-interleaved label (Graves et al. 2006), in float64."""
    y = log_probs.double().numpy()
    states = [charset.blank]
    for c in charset.encode(word):
        states += [c, charset.blank]
    alpha = np.full(len(states), -np.inf)
    alpha[0] = y[0, states[0]]
    if len(states) > 1:
        alpha[1] = y[0, states[1]]
    for t in range(1, len(y)):
        previous = alpha.copy()
        for s, c in enumerate(states):
            terms = [previous[s]] + ([previous[s - 1]] if s >= 1 else [])
            if s >= 2 and c != charset.blank and c != states[s - 2]:
                terms.append(previous[s - 2])
            alpha[s] = np.logaddexp.reduce(terms) + y[t, c]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(states) > 1 else alpha[-1])


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


@pytest.mark.parametrize("word", ["street", "mile", "lemon"])
def test_frames_and_pixel_positions_follow_the_characters(reader, word):
    # drawn twice as large as the model reads: the pipeline halves it, x must come back in these pixels
    image = render_word(word, height=64, size=48)
    (prediction,) = reader.read([image], frames=True)
    assert prediction.text == word
    frames, x = prediction.extras["frames"], prediction.extras["x"]
    assert len(frames) == len(x) == len(word)
    assert frames == sorted(set(frames))
    frame_width = image.width / len(log_probs_of(reader, image))  # original pixels per frame
    for char, px, (left, right) in zip(word, x, glyph_spans(word, 48)):
        assert left - frame_width <= px <= right + frame_width, f"{char!r} at x={px}, drawn at {left:.0f}-{right:.0f}"


def test_positions_map_back_through_a_step_that_crops(reader):
    """A pipeline step that crops says where (extras["crop"]): x stays in the pixels of the image as given."""
    word, margin = "street", 150
    drawn = render_word(word, height=64, size=48)
    page = Image.new(drawn.mode, (margin + drawn.width, drawn.height), "white")
    page.paste(drawn, (margin, 0))

    def crop_to_the_word(sample):
        box = [margin, 0, page.width, page.height]
        sample["image"] = sample["image"].crop(box)
        sample.setdefault("extras", {})["crop"] = box
        return sample

    cropping = Reader(reader.model, [crop_to_the_word, *reader.pipeline_config], precision="fp32", runtime="torch")
    (prediction,) = cropping.read([page], frames=True)
    assert prediction.text == word
    frame_width = 2 * 4  # drawn at twice the model's height; the backbone gives a frame per 4 columns
    for px, (left, right) in zip(prediction.extras["x"], glyph_spans(word, 48)):
        assert margin + left - frame_width <= px <= margin + right + frame_width, (px, margin + left, margin + right)


def test_bad_inputs_are_named(reader, tmp_path):
    with pytest.raises(Exception, match=r"missing\.png: missing image file"):
        reader.read([tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="image 1: arrays must be uint8"):
        reader.read([render_word("ok"), np.zeros((32, 40), np.float32)])
    with pytest.raises(ValueError, match="precision must be one of"):
        Reader(reader.model, [], precision="fp8")


def test_one_image_instead_of_a_list_is_an_error_that_shows_the_fix(reader, tmp_path):
    """A path would be read character by character, an HxWx3 array row by row."""
    render_word("open").save(tmp_path / "open.png")
    for one in (str(tmp_path / "open.png"), tmp_path / "open.png", render_word("open"),
                np.asarray(render_word("open").convert("RGB"))):
        with pytest.raises(TypeError, match=r"takes a list of images.*reader\.read\(\[image\]\)\[0\]"):
            reader.read(one)


def test_a_device_that_cannot_run_is_named(reading_checkpoint):
    with pytest.raises(ValueError, match="device 'gpu' is not a device torch knows"):
        Reader.from_checkpoint(reading_checkpoint, device="gpu", precision="fp32", runtime="torch")
    with pytest.raises(ValueError, match="device 'meta': the Reader runs on cpu or cuda"):
        Reader.from_checkpoint(reading_checkpoint, device="meta", precision="fp32", runtime="torch")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'.*no CUDA"):
            Reader.from_checkpoint(reading_checkpoint, device="cuda", precision="fp32", runtime="torch")


def on_a_wide_canvas(word: str, width: int) -> Image.Image:
    word_image = render_word(word)
    canvas = Image.new("L", (width, word_image.height), 255)
    canvas.paste(word_image, ((width - word_image.width) // 2, 0))
    return canvas


def test_a_wide_line_is_read_at_its_own_width_and_a_squeezed_one_is_reported(reader, caplog):
    """A word in the middle of a line 1,600 px wide: squeezed to 800 px (the clamp of old) its
    glyphs were half as wide; the aspect ratio is now kept up to 4096 px. Past the pipeline's
    max_width the image is squeezed, and the Reader says which."""
    words = ["street", "lemon"]
    with caplog.at_level("WARNING", logger="ocrframe.inference"):
        readings = reader.read([on_a_wide_canvas(w, 1600) for w in words])
    assert [p.text for p in readings] == words
    assert not [r for r in caplog.records if "squeezed" in r.getMessage()]
    assert all("squeezed_from" not in p.extras for p in readings)

    narrow = Reader(reader.model, [dict(step, max_width=400) if step["type"] == "Resize" else step
                                   for step in reader.pipeline_config], precision="fp32", runtime="torch")
    with caplog.at_level("WARNING", logger="ocrframe.inference"):
        readings = narrow.read([render_word("open"), on_a_wide_canvas("street", 1600)])
    assert "squeezed_from" not in readings[0].extras
    assert readings[1].extras["squeezed_from"] == 1600
    (warning,) = [r.getMessage() for r in caplog.records if "squeezed" in r.getMessage()]
    assert "1 of 2 images" in warning and "squeezed to 400 px" in warning
    assert "image 1: 1600 px" in warning and "max_width" in warning


def test_bf16_rechecks_close_frames_in_fp32(reader):
    # with a decoder that reads more than the best path, every image with a near tie is re-read
    beam = "BeamSearchDecoder"
    images = [render_word(w) for w in READING_WORDS]
    fp32 = reader.read(images, decoder=beam)
    assert [p.text for p in fp32] == READING_WORDS
    bf16 = Reader(reader.model, reader.pipeline.transforms, precision="bf16", recheck_margin=-math.inf, batch_size=1)
    alone = bf16.read(images, decoder=beam)
    assert bf16.rechecked == 0 and [p.score for p in alone] != [p.score for p in fp32]  # really computed in bf16
    # Each image's closest call in bf16: the smallest top-2 gap over its frames. With the margin
    # between the smallest and the largest, exactly the images below it are re-read in fp32.
    gaps = []
    for image in images:
        top2 = log_probs_of(bf16, image).topk(2, dim=-1).values
        gaps.append(float((top2[:, 0] - top2[:, 1]).min()))
    bf16.recheck_margin = sorted(gaps)[len(gaps) // 2]
    expected = [gap < bf16.recheck_margin for gap in gaps]
    reread = bf16.read(images, decoder=beam)
    assert 0 < bf16.rechecked == sum(expected) < len(images)
    for prediction, reference, bf16_alone, was_reread in zip(reread, fp32, alone, expected):
        assert prediction.score == pytest.approx((reference if was_reread else bf16_alone).score, rel=1e-5)
    bf16.recheck_margin, bf16.rechecked = math.inf, 0
    assert [p.score for p in bf16.read(images, decoder=beam)] == pytest.approx([p.score for p in fp32], rel=1e-5)
    assert bf16.rechecked == len(images)  # every image re-read in fp32
    bf16.recheck_margin = 1.0  # the default
    assert [p.text for p in bf16.read(images)] == READING_WORDS  # greedy


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
    # near neighbours of the words drawn; "mile" and "tide" themselves are missing
    words = ["open", "oven", "opens", "pen", "smile", "male", "mild", "lime", "tile", "tidy", "side", "ride"]
    (tmp_path / "words.txt").write_text("\n".join(words[:6]) + "\n" + " ".join(words[6:]) + "\n")
    drawn = ["open", "mile", "tide"]
    images = [render_word(w) for w in drawn]
    default = reader.read(images, lexicon=tmp_path / "words.txt")  # the CTC plugin's LexiconDecoder (delta 3)
    exhaustive = reader.read(images, decoder=dict(type="LexiconDecoder", mode="exhaustive"),
                             lexicon=tmp_path / "words.txt")
    per_image = reader.read(images, decoder="bestword", lexicon=tmp_path / "words.txt")  # decode(..., lexicons)
    for image, *predictions in zip(images, default, exhaustive, per_image):
        log_probs = log_probs_of(reader, image)
        scores = {w: ctc_log_probability(log_probs, w, reader.charset) for w in words}
        free = reader.read([image], decoder="greedy")[0].text
        within_3 = {w: p for w, p in scores.items() if editdistance.eval(w, free) <= 3}
        for prediction, candidates in zip(predictions, (within_3, scores, scores)):
            assert prediction.text == max(candidates, key=candidates.get)
            assert prediction.score == pytest.approx(candidates[prediction.text], abs=1e-3)
    assert default[0].text == "open"


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


def test_read_a_gt_folder_prints_a_line_per_image_and_the_accuracy(reading_checkpoint, tmp_path):
    folder = write_word_folder(tmp_path / "words", WORDS)
    result = ocrframe("read", reading_checkpoint, folder, "--precision", "fp32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [(r[0], r[3]) for r in rows] == [(str(folder / f"img_{i:03d}.png"), w) for i, w in enumerate(WORDS)]
    correct = sum(r[1] == r[3] for r in rows)
    assert [r[1] == r[3] for r in rows[:3]] == [True, True, True]  # the words of the letters it was trained on
    assert f"accuracy on {len(WORDS)} labelled images: word accuracy {correct / len(WORDS):.1%}" in result.stderr


def test_read_json_gives_frames_and_counts_unreadable_images(reading_checkpoint, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    render_word("street", height=64, size=48).save(folder / "a.png")
    (folder / "broken.png").write_bytes(b"not an image")
    result = ocrframe("read", reading_checkpoint, folder, "--json", "--frames", "--precision", "fp32", cwd=tmp_path)
    assert result.returncode == 1  # something was skipped
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["image"] == str(folder / "a.png")
    assert record["text"] == "street" and len(record["frames"]) == len(record["x"]) == 6
    frame_width = 2 * 4  # drawn at twice the model's height; the backbone gives a frame per 4 columns
    for px, (left, right) in zip(record["x"], glyph_spans("street", 48)):
        assert left - frame_width <= px <= right + frame_width
    assert "skipped 1 unreadable image(s): 1 undecodable image" in result.stderr
    assert "broken.png" in result.stderr


def read_rows(capsys) -> list[list[str]]:
    return [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]


def test_read_with_each_images_own_lexicon(reading_checkpoint, tmp_path, capsys):
    # "mile" is not in its image's lexicon: the most probable of the words offered is read instead
    lexicons = {0: ["open", "oven", "opal"], 1: ["smile", "mild", "male"], 2: ["street", "stress"]}
    words = ["open", "mile", "street"]
    folder = write_word_folder(tmp_path / "words", words, lexicons)
    assert main(["read", str(reading_checkpoint), str(folder), "--lexicon", "sample", "--precision", "fp32"]) == 0
    rows = read_rows(capsys)
    assert [r[1] in lexicons[i] for i, r in enumerate(rows)] == [True, True, True]
    assert [rows[0][1], rows[2][1]] == ["open", "street"]
    model, cfg = load_model(reading_checkpoint)
    reader = Reader(model, cfg.test_pipeline, precision="fp32")
    log_probs = log_probs_of(reader, render_word("mile"))
    scores = {w: ctc_log_probability(log_probs, w, reader.charset) for w in lexicons[1]}
    assert rows[1][1] == max(scores, key=scores.get)
    # an image without a lexicon of its own is named
    (folder / "gt.txt").write_text((folder / "gt.txt").read_text() + "img_000.png\topen\n")
    with pytest.raises(ValueError, match="--lexicon sample needs a lexicon .* 1 have none"):
        main(["read", str(reading_checkpoint), str(folder), "--lexicon", "sample"])


def test_read_with_a_decoder_chosen_by_name(reading_checkpoint, tmp_path, capsys):
    model, cfg = load_model(reading_checkpoint)
    reader = Reader(model, cfg.test_pipeline, precision="fp32")
    for word in READING_WORDS[:3]:
        render_word(word).save(tmp_path / f"{word}.png")
        # one image per command: the network sees it alone, as in the reference below
        assert main(["read", str(reading_checkpoint), str(tmp_path / f"{word}.png"), "--decoder", "beam", "--json",
                     "--precision", "fp32"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["text"] == word
        # beam search scores the text over the paths its beam kept: about log p(text), more than the
        # best path alone
        image = Image.open(tmp_path / f"{word}.png")
        assert record["score"] == pytest.approx(ctc_log_probability(log_probs_of(reader, image), word, reader.charset),
                                                abs=5e-3)
        assert record["score"] > reader.read([image])[0].score + 1e-3


def test_read_on_onnxruntime_gives_the_torch_readings(reading_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path / "cache"))
    folder = write_word_folder(tmp_path / "words", READING_WORDS)
    assert main(["read", str(reading_checkpoint), str(folder), "--precision", "fp32"]) == 0
    on_torch = read_rows(capsys)
    # fp32 forced: with precision "auto" the calibration may also time (and so export) int8, by the host's timings
    assert main(["read", str(reading_checkpoint), str(folder), "--runtime", "onnxruntime", "--precision", "fp32"]) == 0
    on_onnxruntime = read_rows(capsys)
    assert [r[1] for r in on_onnxruntime] == [r[1] for r in on_torch] == READING_WORDS
    assert [float(r[2]) for r in on_onnxruntime] == pytest.approx([float(r[2]) for r in on_torch], abs=2e-3)
    assert [p.name.rsplit("-", 1)[1] for p in (tmp_path / "cache" / "onnx").glob("*.onnx")] == ["fp32.onnx"]


def test_read_a_folder_without_images_is_an_error(reading_checkpoint, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"holds no images \(.*\.png.*\) and no gt\.txt"):
        main(["read", str(reading_checkpoint), str(tmp_path)])


def test_the_reader_reads_a_test_split_as_the_evaluation_does_in_batches_or_alone():
    """The released paper model on held-out synthetic words of many widths: the Reader's width
    buckets pad each batch a little, the evaluation's batches (sorted by rendered width) likewise,
    and batches in the dataset's order (an aspect ratio that tells nothing) a lot; the readings are
    those of each image alone. (Before the backbone took the widths, 6 of 300 such words read
    differently in a batch.)"""
    from ocrframe.evaluation import run_network

    class InOrder:  # every aspect ratio alike: batches of 64 in the dataset's order, much padding
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, index):
            return self.dataset[index]

        def aspect_ratio(self, index):
            return 0.0

    reader = Reader.from_pretrained("crnn-en", precision="fp32", runtime="torch")
    dataset = DATASETS.build(dict(type="SynthWordDataset", charset=reader.charset, pipeline=reader.pipeline_config,
                                  length=150, seed=2, assets="heldout"))
    images = [dataset.load(i)["image"] for i in range(len(dataset))]
    batched = [p.text for p in reader.read(images)]
    alone = [reader.read([image])[0].text for image in images]
    keys = [dataset.sample_key(i) for i in range(len(dataset))]
    for evaluated_set in (dataset, InOrder(dataset)):
        outputs = run_network(reader.model, evaluated_set, "words", batch_size=64)
        texts = [p.text for log_probs, lengths in outputs.batches
                 for p in reader.model.decoder.decode(log_probs, lengths)]
        by_key = dict(zip(outputs.keys, zip(texts, outputs.truths)))  # rows come in batch order: match by key
        assert [by_key[key][0] for key in keys] == alone
        assert sum(a == by_key[key][1] for a, key in zip(alone, keys)) > 0.7 * len(dataset)  # it does read them
    assert outputs.keys == keys  # the second set was read in its own order
    assert batched == alone
