"""Lexicons for CTC decoding: words in the charset's form, and the search for the words within
edit distance delta of a query (the paper's N_delta(l'), section 2.3.3).

Two searches return the same candidates:
- :class:`BKTree`, the paper's method: a metric tree over edit distance (``editdistance``).
  Exact, but on a 50k-word English lexicon a radius of 3 still visits a large part of the tree.
- :class:`LevenshteinScan`, the default: every word against a batch of queries at once, by
  rapidfuzz's compiled Levenshtein kernel with a score cut-off.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import editdistance
import numpy as np

from ocrframe import Charset, ProcessLRU

logger = logging.getLogger("ocrframe.lexicon")


@dataclass
class Lexicon:
    """Unique words as the model can write them (case folded by the charset's policy, symbols
    outside the charset removed), in their first-seen order.

    ``adjusted``: (word as given, form used) for words that held symbols outside the charset;
    ``dropped``: words with no symbol of the charset at all, left out.
    """

    words: list[str]
    adjusted: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, source, charset: Charset, name: str = "lexicon", warn: bool = True) -> "Lexicon":
        """From a list of words or a word file (one word per line or whitespace-separated; a
        Hunspell ``.dic`` loses its count line and ``/FLAGS``)."""
        from ocrframe import read_lexicon

        raw = read_lexicon(source)
        words, adjusted, dropped, seen = [], [], [], set()
        for word in raw:
            clean = charset.clean(word)
            form = clean.text
            if clean.unknown:  # keep the word, without the symbols the model cannot write
                form = charset.separator.join(t for t in charset.split(form) if t not in clean.unknown)
                if not form:
                    dropped.append(word)
                    continue
                adjusted.append((word, form))
            if form not in seen:
                seen.add(form)
                words.append(form)
        lexicon = cls(words, adjusted, dropped)
        if warn and (adjusted or dropped):
            logger.warning("%s: %s", name if isinstance(source, (list, tuple)) else source, lexicon.charset_report())
        return lexicon

    def charset_report(self) -> str:
        parts = []
        if self.adjusted:
            parts.append(f"{len(self.adjusted)} word(s) hold symbols outside the charset and are matched without them "
                         f"(e.g. {', '.join(f'{a!r}->{b!r}' for a, b in self.adjusted[:5])})")
        if self.dropped:
            parts.append(f"{len(self.dropped)} word(s) have no symbol of the charset and are left out "
                         f"(e.g. {', '.join(map(repr, self.dropped[:5]))})")
        return "; ".join(parts) or "every word is in the charset"


class BKTree:
    """Burkhard-Keller tree over edit distance. ``search(query, radius)`` returns the indices of
    all words within ``radius``, using the triangle inequality to skip subtrees; ``visited``
    counts the distance computations of the last search."""

    def __init__(self, words: list[str]):
        self.words = list(words)
        self.visited = 0
        self.root = None
        for index, word in enumerate(self.words):
            if self.root is None:
                self.root = (index, {})
                continue
            node = self.root
            while True:
                distance = editdistance.eval(word, self.words[node[0]])
                if distance == 0:
                    break  # a duplicate: the first copy answers for it
                child = node[1].get(distance)
                if child is None:
                    node[1][distance] = (index, {})
                    break
                node = child

    def search(self, query: str, radius: int) -> list[int]:
        found, stack, visited = [], [self.root] if self.root else [], 0
        while stack:
            index, children = stack.pop()
            distance = editdistance.eval(query, self.words[index])
            visited += 1
            if distance <= radius:
                found.append(index)
            for edge, child in children.items():
                if distance - radius <= edge <= distance + radius:
                    stack.append(child)
        self.visited = visited
        return sorted(found)

    def search_many(self, queries: list[str], radius: int) -> list[list[int]]:
        return [self.search(q, radius) for q in queries]

    def nearest(self, query: str) -> list[int]:
        """Indices of all words at the smallest edit distance from ``query`` (a full scan)."""
        distances = np.array([editdistance.eval(query, w) for w in self.words])
        return np.flatnonzero(distances == distances.min()).tolist() if len(distances) else []


class LevenshteinScan:
    """Every word compared with a batch of queries by rapidfuzz's ``process.cdist`` (compiled
    Levenshtein, several short queries per word at once) on ``workers`` threads (-1: all cores).

    A plain scan on purpose: grouping the words by length, so that each query meets only the
    lengths within ``radius`` of its own, was measured no faster on either host kind
    (docs/benchmarks.md, "Words within edit distance")."""

    def __init__(self, words: list[str], workers: int = -1):
        self.words = list(words)
        self.workers = workers

    def distances(self, queries: list[str], cutoff: int | None = None) -> np.ndarray:
        """(queries x words) edit distances; above ``cutoff`` they read ``cutoff + 1``."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        # with a cut-off below 255 every distance fits in 8 bits
        dtype = np.uint8 if cutoff is not None and cutoff < 255 else np.int32
        return process.cdist(queries, self.words, scorer=Levenshtein.distance, score_cutoff=cutoff,
                             dtype=dtype, workers=self.workers)

    def search_many(self, queries: list[str], radius: int) -> list[list[int]]:
        """For each query, the sorted indices of the words within ``radius``."""
        if not queries or not self.words:
            return [[] for _ in queries]
        return [np.flatnonzero(row).tolist() for row in self.distances(queries, radius) <= radius]

    def search(self, query: str, radius: int) -> list[int]:
        return self.search_many([query], radius)[0]

    def nearest(self, query: str) -> list[int]:
        """Indices of all words at the smallest edit distance from ``query``."""
        if not self.words:
            return []
        distances = self.distances([query])[0]
        return np.flatnonzero(distances == distances.min()).tolist()


INDEXES = {"scan": LevenshteinScan, "bktree": BKTree}


class IndexCache:
    """The search structures of the last few lexicons, so that a lexicon met again (one per
    image, repeated across batches) is indexed once."""

    def __init__(self, kind: str, size: int = 64):
        if kind not in INDEXES:
            raise ValueError(f"index must be one of {sorted(INDEXES)}, not {kind!r}")
        self.kind, self.indexes = kind, ProcessLRU(size)

    def get(self, words: list[str]):
        return self.indexes.get(tuple(words), lambda: INDEXES[self.kind](words))

