"""CTC decoders of the CTC plugin: prefix beam search against best path and against an exhaustive
search over all paths, the lexicon search against a brute-force scan, and the lexicon decoder's
choice against CTC probabilities."""
from __future__ import annotations

import itertools
import math

import editdistance
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ocrframe_ctc import BeamSearchDecoder, GreedyDecoder, LexiconDecoder
from ocrframe_ctc.lexicon import BKTree, IndexCache, LevenshteinScan, Lexicon

from ocrframe import Charset
from ocrframe.decoders import read_lexicon
from ocrframe.registry import DECODERS


def collapse(path, blank):
    """The paper's B: remove repeats, then blanks."""
    return [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]


def labelling_probabilities(log_probs: torch.Tensor, length: int, charset: Charset) -> dict[str, float]:
    """p(l | frames) of every labelling l, by summing over all K**T paths."""
    probabilities: dict[str, float] = {}
    for path in itertools.product(range(charset.num_classes), repeat=length):
        text = charset.decode(collapse(list(path), charset.blank))
        p = math.exp(sum(log_probs[t, c].item() for t, c in enumerate(path)))
        probabilities[text] = probabilities.get(text, 0.0) + p
    return probabilities


def random_log_probs(seed: int, n: int, frames: int, classes: int, peak: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (peak * torch.randn(n, frames, classes, generator=generator)).log_softmax(-1)


# -- prefix beam search -------------------------------------------------------------------------

@settings(max_examples=60)
@given(data=st.data(), blank=st.sampled_from(["first", "last"]), n=st.integers(1, 4), frames=st.integers(1, 10),
       symbols=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_beam_of_width_one_is_greedy_decoding(data, blank, n, frames, symbols, seed):
    charset = Charset("abcde"[:symbols], blank=blank)
    log_probs = random_log_probs(seed, n, frames, charset.num_classes)
    lengths = torch.tensor(data.draw(st.lists(st.integers(1, frames), min_size=n, max_size=n)))
    beam = BeamSearchDecoder(charset, beam_width=1).decode(log_probs, lengths)
    greedy = GreedyDecoder(charset).decode(log_probs, lengths)
    assert [p.text for p in beam] == [p.text for p in greedy]
    assert [p.score for p in beam] == pytest.approx([p.score for p in greedy], abs=1e-4)


@settings(max_examples=40)
@given(blank=st.sampled_from(["first", "last"]), frames=st.integers(1, 5), symbols=st.integers(1, 2),
       seed=st.integers(0, 2**31), peak=st.sampled_from([0.5, 2.0, 5.0]))
def test_a_beam_that_never_prunes_finds_the_most_probable_labelling(blank, frames, symbols, seed, peak):
    charset = Charset("ab"[:symbols], blank=blank)
    log_probs = random_log_probs(seed, 2, frames, charset.num_classes, peak)
    lengths = torch.tensor([frames, max(frames - 2, 1)])  # the second row ends early (padding frames)
    # (prefix, ending) pairs never exceed 2 * K**T: a beam that wide keeps everything
    wide = BeamSearchDecoder(charset, beam_width=2 * charset.num_classes ** frames).decode(log_probs, lengths)
    for row, prediction in enumerate(wide):
        probabilities = labelling_probabilities(log_probs[row], int(lengths[row]), charset)
        best = max(probabilities.values())
        assert prediction.score == pytest.approx(math.log(best), abs=1e-4)
        assert probabilities[prediction.text] == pytest.approx(best, rel=1e-5)  # the text, up to ties


def reference_beam(log_probs: torch.Tensor, length: int, blank: int, width: int) -> tuple[tuple[int, ...], float]:
    """Prefix beam search written plainly, as the module docstring of beam.py states it: entries
    are (prefix, ends in blank); every frame each entry is extended by every class, extensions
    landing on the same entry are added up, the ``width`` most probable entries are kept; at the
    end the two endings of each prefix are added up and the most probable prefix wins."""
    beam = {((), True): 0.0}
    for t in range(length):
        extended: dict[tuple, float] = {}
        for (prefix, blank_ended), score in beam.items():
            for c in range(log_probs.shape[1]):
                if c == blank:
                    key = (prefix, True)
                elif prefix and c == prefix[-1] and not blank_ended:
                    key = (prefix, False)  # a repeat without a blank between: the same symbol
                else:
                    key = (prefix + (c,), False)
                extended[key] = float(np.logaddexp(extended.get(key, -np.inf), score + float(log_probs[t, c])))
        beam = dict(sorted(extended.items(), key=lambda item: -item[1])[:width])
    totals: dict[tuple, float] = {}
    for (prefix, _), score in beam.items():
        totals[prefix] = float(np.logaddexp(totals.get(prefix, -np.inf), score))
    return max(totals.items(), key=lambda item: item[1])


@settings(max_examples=40)
@given(data=st.data(), blank=st.sampled_from(["first", "last"]), width=st.integers(2, 6), frames=st.integers(1, 12),
       symbols=st.integers(2, 4), seed=st.integers(0, 2**31), peak=st.sampled_from([0.5, 2.0]))
def test_a_pruning_beam_keeps_what_a_plain_prefix_beam_search_keeps(data, blank, width, frames, symbols, seed, peak):
    charset = Charset("abcd"[:symbols], blank=blank)
    log_probs = random_log_probs(seed, 3, frames, charset.num_classes, peak)
    lengths = data.draw(st.lists(st.integers(1, frames), min_size=3, max_size=3))
    predictions = BeamSearchDecoder(charset, beam_width=width).decode(log_probs, torch.tensor(lengths))
    for row, (prediction, length) in enumerate(zip(predictions, lengths)):
        prefix, score = reference_beam(log_probs[row], length, charset.blank, width)
        assert prediction.score == pytest.approx(score, abs=1e-4)
        assert prediction.text == charset.decode(list(prefix))


def test_beam_search_finds_the_labelling_whose_paths_add_up_where_best_path_does_not():
    # Best path is "--" (p=0.36) -> "", but "a" collects a-, -a and aa: 0.24 + 0.24 + 0.16 = 0.64.
    charset = Charset("a", blank="first")
    frame = torch.tensor([0.6, 0.4]).log()
    log_probs = torch.stack([frame, frame])[None]
    lengths = torch.tensor([2])
    assert GreedyDecoder(charset).decode(log_probs, lengths)[0].text == ""
    prediction = BeamSearchDecoder(charset, beam_width=4).decode(log_probs, lengths)[0]
    assert prediction.text == "a" and prediction.score == pytest.approx(math.log(0.64), abs=1e-6)


def test_beam_with_a_lexicon_only_writes_lexicon_words():
    charset = Charset("abc", blank="first")
    log_probs = random_log_probs(3, 8, 6, charset.num_classes)
    words = ["ab", "cab", "ba"]
    # 8 prefixes of the trie, two endings each: a beam of 16 never prunes, so the search is exact
    predictions = BeamSearchDecoder(charset, beam_width=16, lexicon=words).decode(log_probs, torch.full((8,), 6))
    assert all(p.text in words and p.extras["in_lexicon"] for p in predictions)
    for row, prediction in enumerate(predictions):  # the most probable of the three, as scored by CTC
        probabilities = labelling_probabilities(log_probs[row], 6, charset)
        assert probabilities[prediction.text] == pytest.approx(max(probabilities.get(w, 0) for w in words), rel=1e-4)


def test_decoders_are_registered_under_their_names():
    charset = Charset("ab")
    beam = DECODERS.build(dict(type="BeamSearchDecoder", beam_width=3, lexicon=["ab"]), default_args=dict(charset=charset))
    lexicon = DECODERS.build(dict(type="LexiconDecoder", lexicon=["ab"], delta=2, mode="exhaustive", no_candidate="free"),
                             default_args=dict(charset=charset))
    assert isinstance(beam, BeamSearchDecoder) and beam.beam_width == 3
    assert isinstance(lexicon, LexiconDecoder) and (lexicon.delta, lexicon.mode) == (2, "exhaustive")
    with pytest.raises(ValueError, match="mode must be one of"):
        LexiconDecoder(charset, ["ab"], mode="tree")


# -- lexicon search ---------------------------------------------------------------------------------

words_strategy = st.lists(st.text("abcd", min_size=0, max_size=7), min_size=1, max_size=40)


@settings(max_examples=80)
@given(words=words_strategy, queries=st.lists(st.text("abcde", max_size=8), min_size=1, max_size=6),
       radius=st.integers(0, 4))
def test_bk_tree_and_levenshtein_scan_find_exactly_the_words_a_brute_force_scan_finds(words, queries, radius):
    tree, scan = BKTree(words), LevenshteinScan(words)
    for query, found in zip(queries, scan.search_many(queries, radius)):
        brute = [i for i, w in enumerate(words) if editdistance.eval(query, w) <= radius]
        # the tree keeps the first copy of a duplicated word; the scan keeps them all
        first_copies = [i for i in brute if words.index(words[i]) == i]
        assert tree.search(query, radius) == first_copies
        assert found == brute
        nearest = min(editdistance.eval(query, w) for w in words)
        assert scan.nearest(query) == [i for i, w in enumerate(words) if editdistance.eval(query, w) == nearest]


def test_levenshtein_scan_answers_a_large_batch_of_queries_of_many_lengths_on_one_and_all_threads():
    """Distances above the radius come back capped in 8 bits: none may pass for a candidate."""
    rng = np.random.default_rng(0)
    letters = list("abcdef")
    words = ["".join(rng.choice(letters, rng.integers(1, 12))) for _ in range(400)]
    queries = ["".join(rng.choice(letters, rng.integers(0, 14))) for _ in range(400)]
    one, every = LevenshteinScan(words, workers=1), LevenshteinScan(words, workers=-1)
    for radius in (0, 1, 2, 3, 300):
        found = one.search_many(queries, radius)
        assert found == [[i for i, w in enumerate(words) if editdistance.eval(q, w) <= radius] for q in queries]
        assert every.search_many(queries, radius) == found
    assert len({len(q) for q in queries}) > 10
    assert LevenshteinScan([]).search_many(["ab"], 2) == [[]] and LevenshteinScan([]).nearest("ab") == []
    assert one.search_many([], 2) == []


def test_lexicon_words_are_case_folded_and_symbols_outside_the_charset_are_reported(caplog):
    charset = Charset("abcdefghijklmnopqrstuvwxyz'", case="lower")
    lexicon = Lexicon.load(["Don't", "don't", "café", "---", "Cab"], Charset("abcdefghijklmnopqrstuvwxyz", case="lower"))
    assert lexicon.words == ["dont", "caf", "cab"]
    assert lexicon.adjusted == [("Don't", "dont"), ("don't", "dont"), ("café", "caf")]
    assert lexicon.dropped == ["---"]
    assert "3 word(s) hold symbols outside the charset" in caplog.text and "1 word(s) have no symbol" in caplog.text
    assert Lexicon.load(["Don't"], charset).words == ["don't"]


def test_hunspell_dictionaries_lose_their_count_line_and_affix_flags(tmp_path):
    (tmp_path / "en.dic").write_text("3\nhello/MS\nworld\nit's/S\n", encoding="utf-8")
    assert read_lexicon(tmp_path / "en.dic") == ["hello", "world", "it's"]


# -- lexicon decoder --------------------------------------------------------------------------------

def log_probs_of_paths(charset: Charset, paths: list[list[int]], sure: float = 0.9) -> torch.Tensor:
    """(N, T, K): frame t of row n gives ``sure`` to class paths[n][t] and shares the rest."""
    frames = max(map(len, paths))
    probs = torch.full((len(paths), frames, charset.num_classes), (1 - sure) / (charset.num_classes - 1))
    for n, path in enumerate(paths):
        for t, c in enumerate(path):
            probs[n, t] = (1 - sure) / (charset.num_classes - 1)
            probs[n, t, c] = sure
    return probs.log()


def test_lexicon_decoder_picks_the_most_probable_candidate_not_the_nearest_word():
    charset = Charset("abcx", blank="first")  # blank 0, a 1, b 2, c 3, x 4
    rest = 0.04 / 3
    probs = torch.full((1, 4, 5), rest)
    probs[0, 0, 1] = probs[0, 1, 2] = 0.96 - rest  # a, b
    probs[0, 2, 4], probs[0, 2, 3] = 0.5, 0.46     # x, or nearly as likely c
    probs[0, 3, 0], probs[0, 3, 3] = 0.5, 0.46     # blank, or nearly as likely c
    probs[0, :2] /= probs[0, :2].sum(-1, keepdim=True)
    log_probs, lengths = probs.log(), torch.tensor([4])
    # Greedy reads "abx" (in the lexicon: distance 0), but "abc" gathers c-c, c-blank and c-c paths.
    probabilities = labelling_probabilities(log_probs[0], 4, charset)
    assert probabilities["abc"] > probabilities["abx"]
    prediction = LexiconDecoder(charset, lexicon=["abx", "abc", "cccc"], delta=1).decode(log_probs, lengths)[0]
    assert prediction.extras["free"] == "abx" and prediction.extras["candidates"] == 2  # not "cccc"
    assert prediction.text == "abc"
    assert prediction.score == pytest.approx(math.log(probabilities["abc"]), abs=1e-4)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31), delta=st.integers(0, 3), index=st.sampled_from(["scan", "bktree"]),
       words=st.lists(st.text("abc", min_size=1, max_size=4), min_size=1, max_size=12, unique=True))
def test_lexicon_decoder_returns_the_ctc_best_word_among_those_within_delta(seed, delta, index, words):
    charset = Charset("abc", blank="last")
    log_probs = random_log_probs(seed, 3, 5, charset.num_classes)
    lengths = torch.tensor([5, 4, 5])
    free = GreedyDecoder(charset).decode(log_probs, lengths)
    predictions = LexiconDecoder(charset, words, delta=delta, index=index).decode(log_probs, lengths)
    exhaustive = LexiconDecoder(charset, words, mode="exhaustive").decode(log_probs, lengths)
    for row, (prediction, whole) in enumerate(zip(predictions, exhaustive)):
        probabilities = labelling_probabilities(log_probs[row], int(lengths[row]), charset)
        within = [w for w in words if editdistance.eval(w, free[row].text) <= delta]
        if not within:  # fallback "nearest": the words at the smallest distance
            nearest = min(editdistance.eval(w, free[row].text) for w in words)
            within = [w for w in words if editdistance.eval(w, free[row].text) == nearest]
            assert prediction.extras["fallback"] == "nearest"
        best = max(probabilities.get(w, 0.0) for w in within)
        assert probabilities.get(prediction.text, 0.0) == pytest.approx(best, rel=1e-4, abs=1e-12)
        assert probabilities.get(whole.text, 0.0) == pytest.approx(max(probabilities.get(w, 0.0) for w in words),
                                                                   rel=1e-4, abs=1e-12)


def test_no_candidate_free_keeps_the_lexicon_free_reading():
    charset = Charset("ab", blank="first")
    log_probs = log_probs_of_paths(charset, [[1, 1, 0, 1]])  # "aa"
    decoder = LexiconDecoder(charset, ["bbbbbb"], delta=1, no_candidate="free")
    prediction = decoder.decode(log_probs, torch.tensor([4]))[0]
    assert (prediction.text, prediction.extras["fallback"]) == ("aa", "free")
    nearest = LexiconDecoder(charset, ["bbbbbb", "b"], delta=1).decode(log_probs, torch.tensor([4]))[0]
    assert (nearest.text, nearest.extras["fallback"]) == ("b", "nearest")


def test_per_image_lexicons_override_the_global_one_and_must_match_the_batch():
    charset = Charset("ab", blank="first")
    log_probs = log_probs_of_paths(charset, [[1, 0, 2, 0], [2, 0, 1, 0]])  # "ab", "ba"
    decoder = LexiconDecoder(charset, ["aa"], mode="exhaustive")
    assert [p.text for p in decoder.decode(log_probs, torch.tensor([4, 4]))] == ["aa", "aa"]
    per_image = decoder.decode(log_probs, torch.tensor([4, 4]), lexicons=[["ab", "bb"], ["ab", "ba"]])
    assert [p.text for p in per_image] == ["ab", "ba"]
    with pytest.raises(ValueError, match="got 1 lexicons for 2 images"):
        decoder.decode(log_probs, torch.tensor([4, 4]), lexicons=[["ab"]])
    with pytest.raises(ValueError, match="has no lexicon"):
        LexiconDecoder(charset).decode(log_probs, torch.tensor([4, 4]))


def test_a_lexicon_met_again_is_indexed_once_and_the_oldest_is_dropped():
    cache = IndexCache("bktree", size=2)
    first = cache.get(["apple", "apply"])
    assert isinstance(first, BKTree)
    assert cache.get(["apple", "apply"]) is first
    cache.get(["pear"]), cache.get(["plum"])  # two newer lexicons push the first out
    assert cache.get(["apple", "apply"]) is not first
    with pytest.raises(ValueError, match="index must be one of"):
        IndexCache("hash")
