"""Recognition metrics, logged at every validation.

word_acc      word accuracy under the benchmark protocol: case-insensitive, alphanumerics only
word_acc_exact  the strings must be equal
one_minus_ned 1 - mean normalised edit distance (distance / longer length)
cer           character error rate: total edits / total ground-truth characters
"""
from __future__ import annotations

import logging
import re

import editdistance
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def benchmark_form(text: str) -> str:
    """The usual scene-text protocol: lower case, alphanumeric characters only."""
    return _NOT_ALNUM.sub("", text.lower())


def normalised_edit_distance(prediction: str, truth: str, distance: int | None = None) -> float:
    """Edit distance over the longer length: 0 for equal strings, 1 for nothing in common
    (``distance``: their edit distance, where the caller has it already)."""
    if distance is None:
        distance = editdistance.eval(prediction, truth)
    return distance / max(len(prediction), len(truth), 1)


def score_pairs(pairs: list[tuple[str, str]], unreadable: list | None = None) -> dict[str, float]:
    """Metrics over (prediction, ground truth) pairs, as fractions in [0, 1]. Pairs whose
    ``unreadable`` entry is true (the image could not be decoded) count as errors."""
    n = max(len(pairs), 1)
    readable = [not bad for bad in unreadable] if unreadable is not None else [True] * len(pairs)
    exact = sum(ok and p == g for ok, (p, g) in zip(readable, pairs))
    benchmark = sum(ok and benchmark_form(p) == benchmark_form(g) for ok, (p, g) in zip(readable, pairs))
    distances = [editdistance.eval(p, g) for p, g in pairs]
    ned = sum(normalised_edit_distance(p, g, d) for d, (p, g) in zip(distances, pairs))
    chars = sum(len(g) for _, g in pairs)
    return dict(word_acc=benchmark / n, word_acc_exact=exact / n, one_minus_ned=1 - ned / n,
                cer=sum(distances) / max(chars, 1))


class WordMetric(BaseMetric):
    """The metrics above over every sample of the set; an unreadable image (see the datasets'
    ``on_bad_sample="mark"``) stays in the denominator as an error, and the log says how many."""

    default_prefix = ""

    def process(self, data_batch, data_samples: list[dict]) -> None:
        self.results.extend((s["pred"], s["gt"], s.get("unreadable"), s.get("key")) for s in data_samples)

    def compute_metrics(self, results: list[tuple]) -> dict[str, float]:
        unreadable = [key for _, _, bad, key in results if bad]
        if unreadable:
            print_log(f"{len(unreadable)} of {len(results)} images were unreadable and count as errors "
                      f"(e.g. {', '.join(map(str, unreadable[:5]))})", logger="current", level=logging.WARNING)
        return score_pairs([(p, g) for p, g, _, _ in results], [bool(bad) for _, _, bad, _ in results])
