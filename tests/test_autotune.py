"""Choosing the inference path: the recheck rule, the calibration and its cache, forced paths, and
every path reading as eager fp32 does."""
from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import READING_ALPHABET, READING_WORDS, random_words, render_word
from ocrframe import autotune
from ocrframe.cli import main
from ocrframe.checkpoint import load_model
from ocrframe.export import onnx_model_for
from ocrframe.inference import Reader


def collapse(path: list[int], blank: int) -> list[int]:
    out, previous = [], None
    for symbol in path:
        if symbol != blank and symbol != previous:
            out.append(symbol)
        previous = symbol
    return out


@settings(max_examples=100, deadline=None)
@given(data=st.data(), frames=st.integers(1, 6), classes=st.integers(2, 3), blank=st.integers(0, 1),
       margin=st.sampled_from([0.0, 0.3, 1.0, 2.0]))
def test_the_labelling_rule_selects_exactly_the_images_some_choice_of_near_classes_changes(data, frames, classes,
                                                                                           blank, margin):
    # log-probabilities on a coarse grid: exact ties and gaps equal to the margin occur
    values = data.draw(st.lists(st.integers(-8, 0), min_size=frames * classes, max_size=frames * classes))
    length = data.draw(st.integers(0, frames))
    log_probs = torch.tensor(values, dtype=torch.float32).reshape(1, frames, classes) / 2
    best = log_probs[0].argmax(-1).tolist()[:length]
    near = [[c for c in range(classes) if log_probs[0, t].max() - log_probs[0, t, c] < margin or c == best[t]]
            for t in range(length)]
    changes = any(collapse(list(p), blank) != collapse(best, blank) for p in itertools.product(*near))
    rule = autotune.labelling_may_change(log_probs, torch.tensor([length]), margin, blank)
    assert bool(rule[0]) == changes


def test_the_labelling_rule_needs_fewer_rechecks_than_near_ties():
    blank, a, b = 0, 1, 2
    # a run's edges: "a a -" or "a - -", "- - a" or "- a a": the same text either way
    edges = torch.log_softmax(torch.tensor([[[0., 5, 0], [5, 5, 0], [5, 0, 0], [5, 0, 0], [5, 5, 0], [0, 5, 0]]]), -1)
    # "a - a" against "a a a": one letter or two
    split = torch.log_softmax(torch.tensor([[[0., 5, 0], [5, 5, 0], [0, 5, 0]]]), -1)
    # "a b" against "a a": which letter
    letter = torch.log_softmax(torch.tensor([[[0., 5, 0], [0, 5, 5]]]), -1)
    for log_probs, changes in ((edges, False), (split, True), (letter, True)):
        lengths = torch.tensor([log_probs.shape[1]])
        assert autotune.near_ties(log_probs, lengths, 1.0).tolist() == [True]
        assert autotune.labelling_may_change(log_probs, lengths, 1.0, blank).tolist() == [changes]
    assert [a, b] == collapse([a, a, 0, b], blank)


@pytest.fixture(scope="module")
def onnx_files(reading_checkpoint, tmp_path_factory):
    """The reading model's ONNX files, fp32 and int8 (calibrated on its words), in a cache of their own."""
    import os

    cache = tmp_path_factory.mktemp("cache")
    before = os.environ.get("OCRFRAME_CACHE")
    os.environ["OCRFRAME_CACHE"] = str(cache)
    try:
        model, cfg = load_model(reading_checkpoint)
        words = [render_word(w) for w in random_words(32, seed=5, letters=READING_ALPHABET)]
        files = dict(fp32=onnx_model_for(reading_checkpoint, model, cfg),
                     int8=onnx_model_for(reading_checkpoint, model, cfg, int8=True, calibration=words,
                                         scratch=cache))
    finally:
        if before is None:
            del os.environ["OCRFRAME_CACHE"]
        else:
            os.environ["OCRFRAME_CACHE"] = before
    return files


@pytest.fixture(scope="module")
def words():
    return [render_word(w) for w in READING_WORDS + random_words(24, seed=7, letters=READING_ALPHABET)]


@pytest.fixture(scope="module")
def eager_texts(reading_checkpoint, words):
    """What the model reads in plain eager fp32: its own predict path, one image at a time."""
    model, cfg = load_model(reading_checkpoint)
    reader = Reader(model, cfg.test_pipeline, precision="fp32", runtime="torch")
    texts = []
    for image in words:
        sample = reader.pipeline(dict(image=image.convert("RGB"), text="", key="0"))
        with torch.inference_mode():
            texts.append(model(sample["image"][None], mode="predict")[0]["pred"])
    return texts


@pytest.mark.parametrize("path", autotune.PATHS)
def test_every_path_reads_as_eager_fp32(reading_checkpoint, onnx_files, words, eager_texts, path):
    model, cfg = load_model(reading_checkpoint)
    runtime, precision = path.split()
    reader = Reader(model, cfg.test_pipeline, precision=precision, runtime=runtime, batch_size=8,
                    onnx_model=onnx_files.get(precision))
    assert reader.paths == [path]
    calls = []
    run_path = reader.run_path
    reader.run_path = lambda p, *args: calls.append(p) or run_path(p, *args)
    assert [p.text for p in reader.read(words)] == eager_texts
    assert calls[0] == path and set(calls) <= {path, autotune.REFERENCE}  # forced: that path, and fp32 rechecks
    assert eager_texts[:len(READING_WORDS)] == READING_WORDS  # the model does read


def test_the_chosen_path_is_cached_and_reused(reading_checkpoint, onnx_files, words, eager_texts, tmp_path,
                                              monkeypatch):
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path))
    for name, value in dict(TIMING_IMAGES=16, SINGLE_IMAGES=2, ROUNDS=1).items():  # a quick calibration
        monkeypatch.setattr(autotune, name, value)
    model, cfg = load_model(reading_checkpoint)

    def auto(**kwargs):
        return Reader(model, cfg.test_pipeline, onnx_model=dict(onnx_files), **dict(dict(batch_size=8), **kwargs))

    reader = auto()
    assert {"torch fp32", "onnxruntime fp32", "onnxruntime int8"} <= set(reader.paths)
    assert [p.text for p in reader.read(words)] == eager_texts  # timed on the first images read
    (plan_file,) = (tmp_path / "onnx").glob("*-plan-*.json")
    plan = json.loads(plan_file.read_text())
    assert set(plan["classes"]) == {"single", "batch"}
    for entry in plan["classes"].values():
        assert set(entry["paths"]) == set(reader.paths) and entry["path"] in reader.paths
        assert entry["paths"][entry["path"]]["exact"]
        fastest = min((f["ms_per_image"], p) for p, f in entry["paths"].items() if f["exact"])[1]
        assert entry["path"] == fastest
    explained = reader.explain()
    assert all(f"{e['path']} (fastest exact path" in explained for e in plan["classes"].values())

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(autotune, "calibrate", no_timing)
    again = auto()
    assert [p.text for p in again.read(words[:3])] == eager_texts[:3]
    assert again.plan == plan  # read from the cache
    for entry in plan["classes"].values():  # and followed
        assert again.path_for(1 if entry is plan["classes"]["single"] else 8)[0] == entry["path"]
    with pytest.raises(AssertionError, match="timed again"):
        auto(batch_size=16).read(words[:3])  # another batch size is timed on its own
    with pytest.raises(AssertionError, match="timed again"):
        Reader(model, cfg.test_pipeline, batch_size=8, onnx_model=dict(onnx_files), width_step=4).calibrate(
            words, again=True)


def test_a_forced_precision_is_honoured(reading_checkpoint, onnx_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path))
    model, cfg = load_model(reading_checkpoint)
    files = dict(onnx_files)
    assert Reader(model, cfg.test_pipeline, precision="bf16", onnx_model=files).paths == ["torch bf16"]
    assert Reader(model, cfg.test_pipeline, precision="int8", onnx_model=files).paths == ["onnxruntime int8"]
    assert Reader(model, cfg.test_pipeline, precision="fp32", runtime="torch").paths == ["torch fp32"]
    assert Reader(model, cfg.test_pipeline, precision="fp32", onnx_model=files).paths == ["torch fp32",
                                                                                          "onnxruntime fp32"]
    assert Reader(model, cfg.test_pipeline, runtime="onnxruntime", onnx_model=files).paths == [
        "onnxruntime fp32", "onnxruntime int8"]
    reader = Reader(model, cfg.test_pipeline, precision="bf16")
    assert reader.path_for(1) == reader.path_for(64) == ("torch bf16", reader.recheck_margin)
    assert "torch bf16 for every batch" in reader.explain()
    assert not list(tmp_path.glob("*plan*"))  # nothing was timed


class AnyPathDecoder:
    """The greedy decoder's results from a decoder that does not say it reads the best path only."""

    def __init__(self, greedy):
        self.decode = greedy.decode


def test_the_recheck_rereads_exactly_the_images_its_rule_selects(reading_checkpoint, onnx_files, words,
                                                                monkeypatch):
    model, cfg = load_model(reading_checkpoint)
    int8 = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=onnx_files["int8"], batch_size=1)
    words = words[:16]
    inputs = [torch.from_numpy(int8.input_batches([w])[0]) for w in words]  # one image each: no padding
    raw = [int8.run_path("onnxruntime int8", x) for x in inputs]
    fp32 = [int8.run_path("torch fp32", x) for x in inputs]
    rules = {"labelling": lambda lp, m: autotune.labelling_may_change(lp, torch.tensor([lp.shape[1]]), m, 0),
             "near ties": lambda lp, m: autotune.near_ties(lp, torch.tensor([lp.shape[1]]), m)}
    assert model.charset.blank == 0
    for rule, select in rules.items():
        def selected(margin):
            return [bool(select(r, margin)[0]) for r in raw]

        # a margin at which the rule selects some images but not all
        margin = next(m for m in (0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 4, 8) if 0 < sum(selected(m)) < len(words))
        expected = selected(margin)
        int8.rechecked = 0
        got = [int8.log_probs(x, path="onnxruntime int8", margin=margin, rule=rule) for x in inputs]
        assert int8.rechecked == sum(expected), rule
        for out, alone, reference, reread in zip(got, raw, fp32, expected):
            assert torch.allclose(out, reference if reread else alone, atol=1e-5), rule
        # read(): the labelling rule with the greedy decoder, near ties with a decoder reading more
        for entry in int8.plan["classes"].values():
            entry["margin"] = margin
        used = []
        monkeypatch.setattr(autotune, "labelling_may_change",
                            lambda *a, f=autotune.labelling_may_change: used.append("labelling") or f(*a))
        monkeypatch.setattr(autotune, "near_ties", lambda *a, f=autotune.near_ties: used.append("near ties") or f(*a))
        int8.rechecked = 0
        int8.read(words, decoder=None if rule == "labelling" else AnyPathDecoder(model.decoder))
        assert set(used) == {rule} and int8.rechecked == sum(expected)
        monkeypatch.undo()


def test_read_explain_says_which_path_reads_and_why(reading_checkpoint, tmp_path, capsys, monkeypatch):
    from conftest import write_word_folder

    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path / "cache"))
    folder = write_word_folder(tmp_path / "words", READING_WORDS)
    assert main(["read", str(reading_checkpoint), str(folder), "--precision", "fp32", "--runtime", "torch",
                 "--explain"]) == 0
    err = capsys.readouterr().err
    assert "inference path: torch fp32 for every batch" in err


def test_the_batch_is_timed_on_one_width_bucket_as_reading_batches_it(reading_checkpoint, onnx_files, words,
                                                                       tmp_path, monkeypatch):
    """Timed on one batch of all widths padded to the widest, paths that skip padding (onnxruntime
    runs each width on its own) looked faster than on the nearly unpadded batches a read makes."""
    monkeypatch.setenv("OCRFRAME_CACHE", str(tmp_path))
    model, cfg = load_model(reading_checkpoint)
    reader = Reader(model, cfg.test_pipeline, onnx_model=dict(onnx_files), batch_size=8, width_step=8)
    words = [render_word(READING_ALPHABET[:k] * 2) for k in (5, 7, 9)] + words  # wider than the rest
    seen = {}
    monkeypatch.setattr(autotune, "calibrate", lambda r, batches, paths: seen.update(batches) or dict(classes={}))
    monkeypatch.setattr(autotune, "save_plan", lambda path, plan: None)
    reader.calibrate(words)
    ((images, widths),) = seen["batch"]
    assert len(images) == 8
    assert len({-(-w // 8) for w in widths.tolist()}) == 1  # one bucket
    buckets = Counter(-(-reader.pipeline(dict(image=image.convert("RGB"), text="", key="0"))["width"] // 8)
                      for image in words)
    assert -(-int(widths[0]) // 8) == buckets.most_common(1)[0][0]  # the commonest
    assert len(set(w.size for w in words)) > 1 and len(buckets) > 1  # the words do differ
