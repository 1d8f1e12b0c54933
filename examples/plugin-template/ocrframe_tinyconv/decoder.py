"""A decoder that says how sure it is of each character."""
from __future__ import annotations

import math

import torch

from ocrframe import Charset, Prediction


class ConfidenceDecoder:
    """Best path decoding, written out per sample: the most probable class of each frame, repeats
    collapsed, blanks dropped; ``score`` is the log-probability of that path (the sum of the
    per-frame maxima), as ocrframe-ctc's GreedyDecoder gives it. In addition,
    ``extras["confidences"]`` holds each character's confidence: the highest probability among the
    frames that emitted it. Characters below ``min_confidence`` are listed (by position) in
    ``extras["uncertain"]``, e.g. to send those words to a person.

    A decoder is any class built with the charset (and its own settings) whose ``decode(log_probs,
    frame_lengths)`` turns (N, T, K) log-probabilities and (N,) frame counts into one Prediction
    per sample.
    """

    best_path_only = True  # the text is the per-frame argmax's (the decoder slot's options, docs/plugins.md)

    def __init__(self, charset: Charset, min_confidence: float = 0.5):
        self.charset = charset
        self.min_confidence = min_confidence

    def decode(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor) -> list[Prediction]:
        best_log_prob, best = log_probs.float().max(-1)
        predictions = []
        for path, frame_scores, length in zip(best.tolist(), best_log_prob.tolist(), frame_lengths.tolist()):
            length = min(int(length), len(path))
            symbols, confidences, previous = [], [], None
            for t in range(length):
                c = path[t]
                if c != self.charset.blank and c == previous:  # the same character, still being emitted
                    confidences[-1] = max(confidences[-1], frame_scores[t])
                elif c != self.charset.blank:
                    symbols.append(c)
                    confidences.append(frame_scores[t])
                previous = c
            confidences = [round(math.exp(c), 4) for c in confidences]
            extras = dict(confidences=confidences,
                          uncertain=[i for i, c in enumerate(confidences) if c < self.min_confidence])
            predictions.append(Prediction(self.charset.decode(symbols), float(sum(frame_scores[:length])), extras))
        return predictions
