"""CTC prefix beam search, batched across sequences in tensor operations.

A beam entry is a labelling prefix together with how its paths end: in a blank, or in the
prefix's last symbol. Keeping the two apart (the usual p_b / p_nb split) decides what the next
frame does: a repeated symbol extends a blank-ended prefix ("a-a" -> "aa") but collapses into a
symbol-ended one ("aa" -> "a"). Every frame, each entry is extended by every class; extensions
that land on the same (prefix, ending) are merged by adding their probabilities (log-sum-exp),
and the ``beam_width`` most probable entries are kept. At the end the two endings of each prefix
are added up and the most probable prefix wins.

Because an entry holds one ending only, a beam of width 1 follows the single best path: it is
exactly best path (greedy) decoding. A beam wide enough never to prune is the exact most
probable labelling.

Merging is exact, without hashing: an extension either stays on its own prefix (blank, or a
collapsed repeat), or lands on prefix + c, which is either another entry of the beam (found by
comparing prefixes) or new.
"""
from __future__ import annotations

import torch

from ocrframe import Charset, Prediction


class PrefixTrie:
    """Lexicon words as a trie over class indices: ``next[node, c]`` is the child or -1, and
    ``is_word[node]`` marks the ends of words. Node 0 is the root (the empty prefix)."""

    def __init__(self, encoded_words: list[list[int]], num_classes: int):
        children: list[dict[int, int]] = [{}]
        ends = {0} if any(len(w) == 0 for w in encoded_words) else set()
        for word in encoded_words:
            node = 0
            for c in word:
                if c not in children[node]:
                    children[node][c] = len(children)
                    children.append({})
                node = children[node][c]
            ends.add(node)
        self.next = torch.full((len(children), num_classes), -1, dtype=torch.long)
        for node, kids in enumerate(children):
            for c, child in kids.items():
                self.next[node, c] = child
        self.is_word = torch.zeros(len(children), dtype=torch.bool)
        self.is_word[list(ends)] = True


class BeamSearchDecoder:
    """CTC prefix beam search (see the module docstring); ``score`` is log p(text | frames)
    summed over the paths the beam kept.

    beam_width: entries kept per frame; 1 is best path decoding.
    lexicon: a list of words or a word file: only words of it (and their prefixes, while
        decoding) can be produced, through a prefix trie. When no complete word survives in the
        beam, the best prefix is returned with ``extras["in_lexicon"] = False``.
    """

    def __init__(self, charset: Charset, beam_width: int = 10, lexicon=None):
        if beam_width < 1:
            raise ValueError(f"beam_width must be at least 1, not {beam_width}")
        if charset.num_classes > 2**15 - 1:  # prefixes are held as int16 symbols
            raise ValueError(f"BeamSearchDecoder handles up to 32766 symbols; the charset has {len(charset)}")
        self.charset, self.beam_width = charset, beam_width
        self.trie = None
        if lexicon is not None:
            from ocrframe_ctc.lexicon import Lexicon

            words = Lexicon.load(lexicon, charset)
            self.trie = PrefixTrie([charset.encode(w) for w in words.words], charset.num_classes)

    @torch.no_grad()
    def decode(self, log_probs: torch.Tensor, frame_lengths: torch.Tensor) -> list[Prediction]:
        log_probs = log_probs.float().cpu()
        frame_lengths = frame_lengths.cpu()
        beam = _Beam(len(log_probs), self.beam_width, log_probs.shape[1], self.charset.blank, self.trie)
        for t in range(log_probs.shape[1]):
            active = t < frame_lengths
            if active.any():
                beam.step(log_probs[:, t], active)
        return beam.finish(self.charset)


class _Beam:
    """The state of N beams of B entries. Prefixes are rows of ``tokens`` padded with -1."""

    def __init__(self, n: int, width: int, max_len: int, blank: int, trie: PrefixTrie | None):
        self.n, self.width, self.blank, self.trie = n, width, blank, trie
        # int16 symbols, 4 to an int64 when prefixes are compared (see relations())
        self.tokens = torch.full((n, width, -(-(max_len + 1) // 4) * 4), -1, dtype=torch.int16)
        self.lengths = torch.zeros(n, width, dtype=torch.long)
        self.blank_ended = torch.ones(n, width, dtype=torch.bool)  # the empty prefix counts as blank-ended
        self.scores = torch.full((n, width), -torch.inf)
        self.scores[:, 0] = 0.0                                    # one live entry: the empty prefix
        self.nodes = torch.zeros(n, width, dtype=torch.long)       # trie node of each prefix

    def relations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, last, is_child): ``ids`` (N, B) the first entry holding the same prefix, so that
        equal prefixes share one id; ``last`` (N, B) each prefix's last symbol (-1 if empty);
        ``is_child`` (N, B, B) [n, j, i]: j's prefix is i's plus one symbol."""
        used = -(-(int(self.lengths.max()) + 1) // 4) * 4  # columns beyond are -1 everywhere
        tokens = self.tokens[:, :, :used]
        end = (self.lengths - 1).clamp(min=0)[..., None]
        last = tokens.gather(2, end)[..., 0].long()
        parents = tokens.scatter(2, end, -1)  # each prefix without its last symbol
        packed = torch.cat([tokens, parents], 1).contiguous().view(torch.int64)  # 4 symbols per number
        equal = (packed[:, :, None] == packed[:, None, : self.width]).all(-1)  # (N, 2B, B)
        ids = equal[:, : self.width].int().argmax(-1)
        is_child = equal[:, self.width:] & (self.lengths > 0)[..., None]
        return ids, last, is_child

    def step(self, frame: torch.Tensor, active: torch.Tensor) -> None:
        """Extend every entry by every class of ``frame`` (N, K); rows not ``active`` stay as they are."""
        n, width, classes = self.n, self.width, frame.shape[1]
        ids, last, is_child = self.relations()
        # Extending entry i by the last symbol of a child j of i lands on j's prefix.
        # child_of[n, i, c]: id of the entry holding prefix i + c, or -1.
        child_of = torch.full((n, width, classes), -1, dtype=torch.long)
        pairs = is_child.nonzero()
        if len(pairs):
            nn, j, i = pairs.unbind(1)
            child_of[nn, i, last[nn, j]] = ids[nn, j]
        new_key = width + ids[..., None] * classes + torch.arange(classes)       # i + c, not in the beam
        prefix_key = torch.where(child_of >= 0, child_of, new_key)               # (N, B, K)
        c = torch.arange(classes)
        is_blank = (c == self.blank).expand(n, width, classes)
        collapses = (c == last[..., None]) & ~self.blank_ended[..., None]        # a repeat: same prefix
        stays = is_blank | collapses
        prefix_key = torch.where(stays, ids[..., None].expand_as(prefix_key), prefix_key)
        scores = self.scores[..., None] + frame[:, None, :]
        if self.trie is not None:
            allowed = self.trie.next[self.nodes] >= 0                            # (N, B, K)
            scores = scores.masked_fill(~(stays | allowed), -torch.inf)
        keys = (prefix_key * 2 + is_blank).view(n, -1)                           # (prefix, ends in blank)
        merged = _merge_by_key(scores.view(n, -1), keys, 2 * width * (classes + 1))
        best, chosen = merged.topk(width, dim=1)
        key = keys.gather(1, chosen)
        ended_blank, prefix = key % 2 == 1, key // 2
        extended = prefix >= width
        source = torch.where(extended, (prefix - width) // classes, prefix)
        symbol = (prefix - width) % classes
        tokens = self.tokens.gather(1, source[..., None].expand(-1, -1, self.tokens.shape[2]))
        lengths = self.lengths.gather(1, source)
        rows = extended.nonzero()
        tokens[rows[:, 0], rows[:, 1], lengths[extended]] = symbol[extended].to(tokens.dtype)
        nodes = self.nodes.gather(1, source)
        if self.trie is not None:
            nodes = torch.where(extended, self.trie.next[nodes, symbol.clamp(min=0)].clamp(min=0), nodes)
        dead = best == -torch.inf  # fewer live candidates than the width: reset to the empty prefix
        if dead.any():
            tokens[dead], lengths[dead], nodes[dead] = -1, 0, 0
            extended &= ~dead
        lengths = lengths + extended
        if not active.all():
            keep = ~active[:, None]
            tokens = torch.where(keep[..., None], self.tokens, tokens)
            lengths, ended_blank = torch.where(keep, self.lengths, lengths), torch.where(keep, self.blank_ended, ended_blank)
            best, nodes = torch.where(keep, self.scores, best), torch.where(keep, self.nodes, nodes)
        self.tokens, self.lengths, self.blank_ended, self.scores, self.nodes = tokens, lengths, ended_blank, best, nodes

    def finish(self, charset: Charset) -> list[Prediction]:
        """Add up the two endings of each prefix and return the most probable prefix per row."""
        ids = self.relations()[0]
        totals = _merge_by_key(self.scores, ids, self.width)  # the two endings of a prefix added up
        in_lexicon = torch.ones_like(totals, dtype=torch.bool)
        if self.trie is not None:
            in_lexicon = self.trie.is_word[self.nodes]
            has_word = (in_lexicon & (totals > -torch.inf)).any(1, keepdim=True)
            totals = torch.where(in_lexicon | ~has_word, totals, -torch.inf)
        score, best = totals.max(1)
        predictions = []
        for row, entry in enumerate(best.tolist()):
            length = int(self.lengths[row, entry])
            text = charset.decode(self.tokens[row, entry, :length].tolist())
            extras = {} if self.trie is None else {"in_lexicon": bool(in_lexicon[row, entry])}
            predictions.append(Prediction(text, float(score[row]), extras))
        return predictions


def _merge_by_key(values: torch.Tensor, keys: torch.Tensor, num_keys: int) -> torch.Tensor:
    """(N, M): for each group of equal ``keys`` (integers below ``num_keys``) in a row, the
    log-sum-exp of the group's ``values`` at the group's first position, -inf elsewhere."""
    n, m = values.shape
    peak = torch.full((n, num_keys), -torch.inf).scatter_reduce(1, keys, values, "amax")
    shift = peak.gather(1, keys)
    finite_shift = torch.where(torch.isinf(shift), 0.0, shift)
    total = torch.zeros(n, num_keys).scatter_add_(1, keys, torch.exp(values - finite_shift))
    position = torch.arange(m).expand(n, m)
    first = torch.full((n, num_keys), m).scatter_reduce(1, keys, position, "amin")
    merged = finite_shift + total.gather(1, keys).log()
    return torch.where((first.gather(1, keys) == position) & ~torch.isinf(shift), merged, -torch.inf)
