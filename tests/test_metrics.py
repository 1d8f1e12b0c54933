"""Recognition metrics on pairs whose values are worked out by hand below."""
from __future__ import annotations

import pytest

from ocrframe.metrics import WordMetric, benchmark_form, score_pairs

# (prediction, ground truth)
PAIRS = [
    ("Hello!", "hello"),  # benchmark-correct, not exact; edits: H->h, delete "!" = 2, longer length 6
    ("wrld", "world"),    # wrong; edits: insert "o" = 1, longer length 5
    ("abc", "abc"),       # exact; 0 edits
]


def test_benchmark_protocol_ignores_case_and_punctuation():
    assert benchmark_form("Hello, World-2!") == "helloworld2"


def test_word_accuracy_under_the_benchmark_protocol():
    assert score_pairs(PAIRS)["word_acc"] == pytest.approx(2 / 3)  # "Hello!" and "abc"


def test_exact_word_accuracy():
    assert score_pairs(PAIRS)["word_acc_exact"] == pytest.approx(1 / 3)  # only "abc"


def test_one_minus_normalised_edit_distance():
    ned = (2 / 6 + 1 / 5 + 0 / 3) / 3
    assert score_pairs(PAIRS)["one_minus_ned"] == pytest.approx(1 - ned)


def test_character_error_rate():
    assert score_pairs(PAIRS)["cer"] == pytest.approx((2 + 1 + 0) / (5 + 5 + 3))


def test_empty_prediction_has_full_error():
    assert score_pairs([("", "abc")]) == pytest.approx(
        dict(word_acc=0.0, word_acc_exact=0.0, one_minus_ned=0.0, cer=1.0))


def test_word_metric_scores_what_the_model_predicted():
    metric = WordMetric()
    metric.process({}, [dict(pred="Hello!", gt="hello", score=-1.0, key="a")])
    metric.process({}, [dict(pred=p, gt=g, score=-1.0, key="k") for p, g in PAIRS[1:]])
    assert metric.compute_metrics(metric.results) == pytest.approx(score_pairs(PAIRS))
