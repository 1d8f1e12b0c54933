"""CTC decoders: log-probabilities (N, T, K) and frame lengths (N,) -> one Prediction per sample."""
from __future__ import annotations

import torch

from ocrframe import Charset, Prediction


class GreedyDecoder:
    """Best path decoding (the paper's lexicon-free mode): argmax per frame, then collapse
    repeats and drop blanks. Batched: no Python loop over frames.

    ``score`` is the log-probability of the best path, i.e. the sum of the per-frame maxima.
    """

    def __init__(self, charset: Charset):
        self.charset = charset

    def decode(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor) -> list[Prediction]:
        best_log_prob, best = log_probs.max(-1)                                 # (N, T)
        frames = torch.arange(best.shape[1], device=best.device)
        valid = frames[None, :] < frame_lengths.to(best.device)[:, None]        # padding frames
        changed = torch.ones_like(valid)
        changed[:, 1:] = best[:, 1:] != best[:, :-1]
        emit = valid & changed & (best != self.charset.blank)
        scores = (best_log_prob * valid).sum(1).tolist()
        per_sample = torch.split(best[emit], emit.sum(1).tolist())
        return [Prediction(self.charset.decode(s.tolist()), score) for s, score in zip(per_sample, scores)]
