"""CTC transcription: the loss is the paper's path sum, training on it fits labels, best-path
decoding matches a plain reference, and labels too long for the image are left out."""
from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmengine.config import Config
from ocrframe_ctc import CTCHead, GreedyDecoder

from conftest import CONFIG, render_word
from ocrframe import Charset
from ocrframe.data.transforms import Grayscale, Resize, ToTensor, pad_collate
from ocrframe.registry import MODELS


def collapse(path, blank):
    """The paper's B: remove repeats, then blanks."""
    return [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]


def reference_greedy(log_probs: torch.Tensor, lengths: list[int], charset: Charset) -> list[tuple[str, float]]:
    """Best path decoding written as plainly as possible, one sample and one frame at a time."""
    results = []
    for sample, length in zip(log_probs.tolist(), lengths):
        best, score = [], 0.0
        for frame in sample[:length]:
            top = max(range(len(frame)), key=lambda c: frame[c])
            best.append(top)
            score += frame[top]
        results.append((charset.decode(collapse(best, charset.blank)), score))
    return results


def random_log_probs(seed: int, n: int, frames: int, classes: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(n, frames, classes, generator=generator)).log_softmax(-1)


@given(data=st.data(), blank=st.sampled_from(["first", "last"]), n=st.integers(1, 4),
       frames=st.integers(1, 12), symbols=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_greedy_decoder_equals_a_per_sample_reference(data, blank, n, frames, symbols, seed):
    charset = Charset("abcde"[:symbols], blank=blank)
    log_probs = random_log_probs(seed, n, frames, charset.num_classes)
    lengths = data.draw(st.lists(st.integers(1, frames), min_size=n, max_size=n))
    predictions = GreedyDecoder(charset).decode(log_probs, torch.tensor(lengths))
    expected = reference_greedy(log_probs, lengths, charset)
    assert [p.text for p in predictions] == [text for text, _ in expected]
    assert [p.score for p in predictions] == pytest.approx([score for _, score in expected], abs=1e-4)


def test_greedy_decoder_collapses_repeats_but_keeps_repeats_split_by_blank():
    charset = Charset("lo", blank="first")  # blank 0, l 1, o 2
    path = [1, 1, 0, 1, 2, 2, 0]           # "ll-loo-": repeats merge, the blank keeps two l apart
    log_probs = torch.full((1, len(path), 3), -10.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = -0.1
    prediction = GreedyDecoder(charset).decode(log_probs, torch.tensor([len(path)]))[0]
    assert prediction.text == "llo"
    assert prediction.score == pytest.approx(-0.1 * len(path))


@given(blank=st.sampled_from(["first", "last"]), frames=st.integers(1, 4),
       label=st.lists(st.sampled_from("ab"), min_size=1, max_size=3), seed=st.integers(0, 2**31))
def test_ctc_loss_is_minus_log_of_the_sum_over_all_paths(blank, frames, label, seed):
    charset = Charset("ab", blank=blank)
    log_probs = random_log_probs(seed, 1, frames, charset.num_classes)
    target = charset.encode("".join(label))
    probability = sum(
        math.exp(sum(log_probs[0, t, c].item() for t, c in enumerate(path)))
        for path in itertools.product(range(charset.num_classes), repeat=frames)
        if collapse(list(path), charset.blank) == target
    )
    head = CTCHead(in_features=1, num_classes=charset.num_classes, blank=charset.blank, zero_infinity=False)
    loss = head.loss(log_probs, torch.tensor([frames]), torch.tensor(target), torch.tensor([len(target)]))
    if probability == 0:  # the label does not fit in the frames
        assert math.isinf(loss.item())
    else:
        assert loss.item() == pytest.approx(-math.log(probability), rel=1e-4, abs=1e-5)


def batch_of_words(words: list[str]) -> dict:
    pipeline = [Grayscale(), Resize(height=32, width=100), ToTensor()]
    samples = []
    for word in words:
        sample = dict(image=render_word(word), text=word, key=f"key-{word}")
        for transform in pipeline:
            sample = transform(sample)
        samples.append(sample)
    return pad_collate(samples)


def test_training_on_ctc_overfits_four_words_and_greedy_decoding_reads_them(tinyconv):
    torch.manual_seed(0)
    words = ["cat", "dog", "sun", "tree"]
    batch = batch_of_words(words)
    cfg = Config.fromfile(str(CONFIG)).model
    cfg.backbone = dict(type="TinyConv")  # the test plugin's small backbone keeps this to ~2 s
    cfg.sequence_encoder = dict(type="BiLSTM", hidden_size=64, num_layers=1)
    model = MODELS.build(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(500):  # 300 left 'sun' read as 'sn' on AVX-512 hosts (oneDNN's numerics differ from AVX2's)
        loss = model(batch["inputs"], batch["data_samples"], mode="loss")["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 100, (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():
        predictions = model(batch["inputs"], batch["data_samples"], mode="predict")
    assert [p["pred"] for p in predictions] == words
    assert [p["gt"] for p in predictions] == words
    assert all(p["score"] <= 0 for p in predictions)


@pytest.fixture(scope="module")
def paper_model():
    return MODELS.build(Config.fromfile(str(CONFIG)).model).eval()  # eval: per-sample results


def test_label_longer_than_the_frames_is_left_out_of_the_loss(paper_model, caplog):
    images = torch.randn(2, 1, 32, 100)  # 26 frames each
    too_long = "abcdefghijklmnopqrstuvwxyz0123"  # 30 symbols
    mixed = dict(texts=["ab", too_long], keys=["fits", "too-long"], widths=torch.tensor([100, 100]))
    alone = dict(texts=["ab"], keys=["fits"], widths=torch.tensor([100]))
    with caplog.at_level(logging.WARNING, logger="ocrframe.model"), torch.no_grad():
        loss = paper_model(images, mixed, mode="loss")["loss"]
        loss_of_fitting_sample = paper_model(images[:1], alone, mode="loss")["loss"]
    assert torch.isfinite(loss)
    # Left out of the mean, not counted as a zero: the batch loss is the fitting sample's loss.
    assert loss.item() == pytest.approx(loss_of_fitting_sample.item(), rel=1e-5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "too-long" in warnings[0] and "'fits'" not in warnings[0]


def test_repeated_symbols_need_a_blank_between_them_to_fit(paper_model, caplog):
    # "aaaaaaaaaaaaaa": 14 symbols but 27 frames needed (a blank between each pair), more than 26.
    texts = ["a" * 14, "ab" * 7]  # the second has 14 symbols and needs only 14 frames
    samples = dict(texts=texts, keys=["repeats", "alternating"], widths=torch.tensor([100, 100]))
    with caplog.at_level(logging.WARNING, logger="ocrframe.model"), torch.no_grad():
        loss = paper_model(torch.randn(2, 1, 32, 100), samples, mode="loss")["loss"]
    assert torch.isfinite(loss)
    assert any("repeats" in r.getMessage() and "alternating" not in r.getMessage() for r in caplog.records)
