"""CTC decoders: log-probabilities (N, T, K) and frame lengths (N,) -> one Prediction per sample.

Best path (greedy) and lexicon-based transcription; the prefix beam search is in beam.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ocrframe import Charset, Prediction, SkipCounter


class GreedyDecoder:
    """Best path decoding (the paper's lexicon-free mode): argmax per frame, then collapse
    repeats and drop blanks. Batched: no Python loop over frames.

    ``score`` is the log-probability of the best path, i.e. the sum of the per-frame maxima.
    """

    best_path_only = True  # the text depends on the per-frame argmax alone (the Reader's recheck uses it)

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


def ctc_log_likelihoods(log_probs: torch.Tensor, frame_lengths: torch.Tensor, rows: list[int],
                        labels: list[list[int]], blank: int, chunk: int = 4096) -> torch.Tensor:
    """log p(label | frames of sample ``rows[i]``) for each pair, by torch's CTC loss in batches;
    -inf for a label that cannot fit in its frames."""
    scores, device = [], log_probs.device
    frame_lengths = frame_lengths.to(device)
    for start in range(0, len(rows), chunk):
        part_rows = torch.tensor(rows[start:start + chunk], dtype=torch.long, device=device)
        part_labels = labels[start:start + chunk]
        targets = torch.tensor([c for label in part_labels for c in label], dtype=torch.long, device=device)
        loss = F.ctc_loss(log_probs[part_rows].transpose(0, 1), targets, frame_lengths[part_rows],
                          torch.tensor([len(label) for label in part_labels], device=device), blank=blank,
                          reduction="none", zero_infinity=False)
        scores.append(-loss)
    return torch.cat(scores) if scores else torch.zeros(0, device=device)


class LexiconDecoder:
    """Lexicon-based transcription (the paper's section 2.3.3): the most probable lexicon word,
    l* = argmax p(l | frames), with p computed by CTC.

    mode: "bktree" (the paper's): only the words within edit distance ``delta`` of the
        lexicon-free (greedy) reading l' are scored; "exhaustive": every word is scored (what the
        authors' code does; fine for the 50-word and 1k-word per-image lexicons).
    no_candidate: when no word is within ``delta`` (bktree mode), "nearest" scores the words at
        the smallest edit distance from l' instead, "free" keeps l'.
    index: how the words within ``delta`` are found; both give the same candidates.
        "scan" (default): rapidfuzz's compiled distance to every word, batched over the
        queries; "bktree": the BK-tree of the paper, in Python (slower).
    lexicon: one lexicon for every image (a list of words or a word file, e.g. a Hunspell
        ``.dic``); ``decode(..., lexicons=[...])`` gives one per image instead (IIIT5k style).

    Words are brought to the charset's form (its case policy; symbols outside the charset are
    removed, and counted in ``self.charset_report``); the returned text is that form.
    ``extras``: ``free`` (l'), ``candidates`` (words scored), ``fallback`` (what happened when
    no word was within ``delta``).
    """

    MODES = ("bktree", "exhaustive")
    NO_CANDIDATE = ("nearest", "free")
    for_lexicons = True  # the decoder a lexicon given without one gets (the decoder slot's interface)

    def __init__(self, charset: Charset, lexicon=None, delta: int = 3, mode: str = "bktree",
                 no_candidate: str = "nearest", index: str = "scan"):
        from ocrframe_ctc.lexicon import IndexCache

        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, not {mode!r}")
        if no_candidate not in self.NO_CANDIDATE:
            raise ValueError(f"no_candidate must be one of {self.NO_CANDIDATE}, not {no_candidate!r}")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, not {delta}")
        self.charset, self.delta, self.mode, self.no_candidate = charset, delta, mode, no_candidate
        self.greedy = GreedyDecoder(charset)
        self.indexes = IndexCache(index)
        self.charset_report = SkipCounter()  # lexicon words changed or left out, over all decodes
        self.lexicon = None if lexicon is None else self._lexicon(lexicon, warn=True)

    def _lexicon(self, words, warn: bool = False):
        from ocrframe_ctc.lexicon import Lexicon

        lexicon = Lexicon.load(words, self.charset, warn=warn)
        for original, form in lexicon.adjusted:
            self.charset_report.add("matched without symbols outside the charset", f"{original}->{form}")
        for word in lexicon.dropped:
            self.charset_report.add("left out: no symbol in the charset", word)
        return lexicon

    @torch.no_grad()
    def decode(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor,
               lexicons: list[list[str]] | None = None) -> list[Prediction]:
        log_probs, frame_lengths = log_probs.float().cpu(), frame_lengths.cpu()
        free = self.greedy.decode(log_probs, frame_lengths)
        if lexicons is None:
            if self.lexicon is None:
                raise ValueError("LexiconDecoder has no lexicon: give one (lexicon=words or a file) or pass "
                                 "decode(..., lexicons=[one word list per image])")
            groups = {0: (self.lexicon, list(range(len(free))))}
        else:
            if len(lexicons) != len(free):
                raise ValueError(f"got {len(lexicons)} lexicons for {len(free)} images")
            groups = {}
            for row, words in enumerate(lexicons):
                if words is None:
                    raise ValueError(f"image {row} of the batch has no lexicon (None)")
                key = tuple(words)
                if key not in groups:
                    groups[key] = (self._lexicon(list(words)), [])
                groups[key][1].append(row)
        candidates: list[list[str]] = [[] for _ in free]
        fallback: list[str | None] = [None] * len(free)
        for lexicon, rows in groups.values():
            self._find_candidates(lexicon, rows, [free[r].text for r in rows], candidates, fallback)
        return self._best(log_probs, frame_lengths, free, candidates, fallback)

    def _find_candidates(self, lexicon, rows, queries, candidates, fallback) -> None:
        if self.mode == "exhaustive":
            for row in rows:
                candidates[row] = lexicon.words
            return
        index = self.indexes.get(lexicon.words)
        for row, query, found in zip(rows, queries, index.search_many(queries, self.delta)):
            if not found and self.no_candidate == "nearest":
                found = index.nearest(query)
                fallback[row] = "nearest"
            elif not found:
                fallback[row] = "free"
            candidates[row] = [lexicon.words[i] for i in found]

    def _best(self, log_probs, frame_lengths, free, candidates, fallback) -> list[Prediction]:
        rows = [row for row, words in enumerate(candidates) for _ in words]
        labels = [self.charset.encode(w) for words in candidates for w in words]
        scores = ctc_log_likelihoods(log_probs, frame_lengths, rows, labels, self.charset.blank).tolist()
        predictions, start = [], 0
        for row, words in enumerate(candidates):
            extras = dict(free=free[row].text, candidates=len(words))
            if fallback[row]:
                extras["fallback"] = fallback[row]
            if not words:
                predictions.append(Prediction(free[row].text, free[row].score, extras))
                continue
            part = scores[start:start + len(words)]
            best = max(range(len(words)), key=part.__getitem__)
            predictions.append(Prediction(words[best], part[best], extras))
            start += len(words)
        return predictions
