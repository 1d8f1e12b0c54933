"""Lexicons for CTC decoding: words in the charset's form, and the search for the words within
edit distance delta of a query (the paper's N_delta(l'), section 2.3.3).

Two searches return the same candidates:
- :class:`BKTree`, the paper's method: a metric tree over edit distance (``editdistance``).
  Exact, but on a 50k-word English lexicon a radius of 3 still visits a large part of the tree.
- :class:`BandedIndex`, the default: only words whose length is within delta of the query's can
  be within delta, so each query is compared with those length bands only, in batches of
  queries of one length, by rapidfuzz's compiled Levenshtein kernel with a score cut-off.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import editdistance
import numpy as np

from ocrframe import Charset

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
        from ocrframe.inference import read_lexicon

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


class BandedIndex:
    """Words grouped by length; :meth:`search_many` compares a batch of queries with the words
    of lengths within ``radius`` of each query's, with rapidfuzz's Levenshtein distance."""

    def __init__(self, words: list[str], workers: int = 1):
        self.words = list(words)
        self.workers = workers
        lengths = np.fromiter((len(w) for w in self.words), dtype=np.int64, count=len(self.words))
        self.by_length = {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}

    def band(self, length: int, radius: int) -> np.ndarray:
        parts = [self.by_length[n] for n in range(max(length - radius, 0), length + radius + 1) if n in self.by_length]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def search_many(self, queries: list[str], radius: int) -> list[list[int]]:
        """For each query, the sorted indices of the words within ``radius``."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        results: list[list[int]] = [[] for _ in queries]
        by_length: dict[int, list[int]] = {}
        for q, query in enumerate(queries):
            by_length.setdefault(len(query), []).append(q)
        for length, members in by_length.items():
            band = self.band(length, radius)
            if len(band) == 0:
                continue
            distances = process.cdist([queries[q] for q in members], [self.words[i] for i in band],
                                      scorer=Levenshtein.distance, score_cutoff=radius, dtype=np.int32,
                                      workers=self.workers)
            rows, cols = np.nonzero(distances <= radius)
            for q in members:
                results[q] = []
            for row, col in zip(rows.tolist(), cols.tolist()):
                results[members[row]].append(int(band[col]))
        return [sorted(r) for r in results]

    def search(self, query: str, radius: int) -> list[int]:
        return self.search_many([query], radius)[0]

    def nearest(self, query: str) -> list[int]:
        """Indices of all words at the smallest edit distance from ``query``."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        distances = process.cdist([query], self.words, scorer=Levenshtein.distance, dtype=np.int32,
                                  workers=self.workers)[0]
        return np.flatnonzero(distances == distances.min()).tolist() if len(distances) else []


INDEXES = {"banded": BandedIndex, "bktree": BKTree}


class IndexCache:
    """The search structures of the last few lexicons, so that a lexicon met again (one per
    image, repeated across batches) is indexed once."""

    def __init__(self, kind: str, size: int = 64):
        if kind not in INDEXES:
            raise ValueError(f"index must be one of {sorted(INDEXES)}, not {kind!r}")
        self.kind, self.size = kind, size
        self.entries: OrderedDict[tuple[str, ...], object] = OrderedDict()

    def get(self, words: list[str]):
        key = tuple(words)
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        index = INDEXES[self.kind](words)
        self.entries[key] = index
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return index

