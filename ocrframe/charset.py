"""The dictionary of output symbols, with an explicit blank, a case policy and an unknown policy."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNKNOWN_POLICIES = ("skip", "remove", "error")


class LabelError(ValueError):
    """A label cannot be expressed in the charset under the ``unknown='error'`` policy."""


@dataclass(frozen=True)
class CleanLabel:
    text: str                   # after case folding and, with unknown='remove', without unknown symbols
    unknown: tuple[str, ...]    # symbols outside the charset that were found


class Charset:
    """Maps labels to class indices and back.

    symbols:   a string of single characters ("0123456789abc..."), a list of tokens, or a path to
               a file with one symbol per line (multi-character tokens such as "C4" work; a file
               with any multi-character token gives space-separated labels).
    blank:     "first" (index 0, as in bgshih/crnn and crnn.pytorch) or "last" (as in MMOCR,
               docTR, pyctcdecode).
    case:      "lower" folds labels to lower case (the paper's 36-class setting), "upper", or
               "keep".
    unknown:   what to do with a label holding symbols outside the charset: "skip" the sample
               (counted and reported by the dataset), "remove" those symbols, or raise ("error").
    separator: between tokens in a label; "" for character-level charsets (the default when all
               symbols are single characters), " " for token vocabularies.
    """

    def __init__(self, symbols, blank: str = "first", case: str = "keep", unknown: str = "skip",
                 separator: str | None = None):
        if isinstance(symbols, Path) or (isinstance(symbols, str) and Path(symbols).suffix == ".txt"):
            path = Path(symbols)
            if not path.is_file():
                raise FileNotFoundError(f"charset file {path} does not exist (one symbol per line)")
            symbols = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
            symbols = [s for s in symbols if s != ""]
        tokens = list(symbols)
        if len(set(tokens)) != len(tokens):
            dupes = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ValueError(f"charset lists these symbols more than once: {dupes}")
        if blank not in ("first", "last"):
            raise ValueError(f"blank must be 'first' or 'last', not {blank!r}")
        if case not in ("lower", "upper", "keep"):
            raise ValueError(f"case must be 'lower', 'upper' or 'keep', not {case!r}")
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, not {unknown!r}")
        self.tokens = tokens
        self.case, self.unknown, self.blank_position = case, unknown, blank
        self.separator = separator if separator is not None else ("" if all(len(t) == 1 for t in tokens) else " ")
        offset = 1 if blank == "first" else 0
        self.blank = 0 if blank == "first" else len(tokens)
        self._index = {t: i + offset for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, cfg) -> "Charset":
        return cfg if isinstance(cfg, Charset) else cls(**cfg)

    @property
    def num_classes(self) -> int:
        """Symbols plus the blank."""
        return len(self.tokens) + 1

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def classes(self) -> list[str | None]:
        """The symbol of each class index; None for the blank."""
        classes: list[str | None] = list(self.tokens)
        classes.insert(self.blank, None)
        return classes

    def split(self, text: str) -> list[str]:
        return list(text) if self.separator == "" else [t for t in text.split(self.separator) if t]

    def clean(self, text: str) -> CleanLabel:
        """Apply the case policy and report symbols outside the charset."""
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        tokens = self.split(text)
        unknown = tuple(dict.fromkeys(t for t in tokens if t not in self._index))
        if unknown and self.unknown == "error":
            raise LabelError(f"label {text!r} has symbols outside the charset: {list(unknown)}")
        if unknown and self.unknown == "remove":
            tokens = [t for t in tokens if t in self._index]
        return CleanLabel(self.separator.join(tokens), unknown)

    def encode(self, text: str) -> list[int]:
        """Class indices of a clean label (see :meth:`clean`)."""
        try:
            return [self._index[t] for t in self.split(text)]
        except KeyError as exc:
            raise LabelError(f"label {text!r}: symbol {exc.args[0]!r} is not in the charset") from None

    def decode(self, indices) -> str:
        """Text of class indices (already collapsed: blanks are skipped, repeats kept)."""
        offset = 1 if self.blank_position == "first" else 0
        return self.separator.join(self.tokens[i - offset] for i in indices if i != self.blank)

    def __repr__(self) -> str:
        return (f"Charset({len(self.tokens)} symbols, blank={self.blank}, case={self.case!r}, "
                f"unknown={self.unknown!r}, separator={self.separator!r})")
