"""A decoder that says how sure it is of each character."""
from __future__ import annotations

import torch
from ocrframe_ctc import GreedyDecoder

from ocrframe import Prediction


class ConfidenceDecoder(GreedyDecoder):
    """Best path decoding (text and score as the greedy decoder gives them) plus, in
    ``extras["confidences"]``, each character's confidence: the highest probability among the
    frames that emitted it. Characters below ``min_confidence`` are listed (by position) in
    ``extras["uncertain"]``, e.g. to send those words to a person.
    """

    def __init__(self, charset, min_confidence: float = 0.5):
        super().__init__(charset)
        self.min_confidence = min_confidence

    def decode(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor) -> list[Prediction]:
        predictions = super().decode(log_probs, frame_lengths)
        best_log_prob, best = log_probs.max(-1)
        for prediction, path, probs, length in zip(predictions, best.tolist(), best_log_prob.exp().tolist(),
                                                   frame_lengths.tolist()):
            confidences = []
            for t in range(min(length, len(path))):
                if path[t] == self.charset.blank:
                    continue
                if t > 0 and path[t] == path[t - 1]:  # the same character, still being emitted
                    confidences[-1] = max(confidences[-1], probs[t])
                else:
                    confidences.append(probs[t])
            prediction.extras["confidences"] = [round(c, 4) for c in confidences]
            prediction.extras["uncertain"] = [i for i, c in enumerate(confidences) if c < self.min_confidence]
        return predictions
