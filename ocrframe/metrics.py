"""Recognition metrics, logged at every validation.

word_acc      word accuracy under the benchmark protocol: case-insensitive, alphanumerics only
word_acc_exact  the strings must be equal
one_minus_ned 1 - mean normalised edit distance (distance / longer length)
cer           character error rate: total edits / total ground-truth characters
"""
from __future__ import annotations

import re

import editdistance
from mmengine.evaluator import BaseMetric

_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def benchmark_form(text: str) -> str:
    """The usual scene-text protocol: lower case, alphanumeric characters only."""
    return _NOT_ALNUM.sub("", text.lower())


def score_pairs(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Metrics over (prediction, ground truth) pairs, as fractions in [0, 1]."""
    n = max(len(pairs), 1)
    exact = sum(p == g for p, g in pairs)
    benchmark = sum(benchmark_form(p) == benchmark_form(g) for p, g in pairs)
    distances = [editdistance.eval(p, g) for p, g in pairs]
    ned = sum(d / max(len(p), len(g), 1) for d, (p, g) in zip(distances, pairs))
    chars = sum(len(g) for _, g in pairs)
    return dict(word_acc=benchmark / n, word_acc_exact=exact / n, one_minus_ned=1 - ned / n,
                cer=sum(distances) / max(chars, 1))


class WordMetric(BaseMetric):
    default_prefix = ""

    def process(self, data_batch, data_samples: list[dict]) -> None:
        self.results.extend((s["pred"], s["gt"]) for s in data_samples)

    def compute_metrics(self, results: list[tuple[str, str]]) -> dict[str, float]:
        return score_pairs(results)
