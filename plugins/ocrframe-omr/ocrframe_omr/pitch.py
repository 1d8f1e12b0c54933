"""Pitch tokens: scientific pitch notation (``C4`` = middle C), their Humdrum **kern spelling, and
the conversion of PrIMuS semantic encodings into pitch labels.

A label is the space-separated sequence of the notes' pitches, e.g. ``"C4 E4 G4 C5"``; the model's
charset is the list of pitch tokens (:data:`TREBLE_RANGE`), one class per pitch.
"""
from __future__ import annotations

import re

LETTERS = "CDEFGAB"
_PITCH = re.compile(r"([A-G])(#{1,2}|b{1,2}|n)?(-?\d)")
ACCIDENTAL_POLICIES = ("skip", "natural", "keep", "error")


def parse_pitch(token: str) -> tuple[str, str, int]:
    """``"F#5"`` -> ("F", "#", 5). Accidentals: "#", "##", "b", "bb", "n" (natural) or ""."""
    match = _PITCH.fullmatch(token)
    if not match:
        raise ValueError(f"{token!r} is not a pitch in scientific notation "
                         "(letter, accidental, octave: 'C4', 'F#5', 'Bb3')")
    letter, accidental, octave = match.groups()
    return letter, accidental or "", int(octave)


def diatonic_index(token: str) -> int:
    """Staff steps from C0: C4 -> 28, D4 -> 29, ... (accidentals do not move a note on the staff)."""
    letter, _, octave = parse_pitch(token)
    return octave * 7 + LETTERS.index(letter)


def from_diatonic_index(index: int) -> str:
    return f"{LETTERS[index % 7]}{index // 7}"


def pitch_range(low: str, high: str) -> list[str]:
    """The natural pitches from ``low`` to ``high`` inclusive: pitch_range("A3", "C4") == ["A3", "B3", "C4"]."""
    lo, hi = diatonic_index(low), diatonic_index(high)
    if lo > hi:
        raise ValueError(f"empty pitch range {low}..{high}")
    return [from_diatonic_index(i) for i in range(lo, hi + 1)]


# The treble staff with two ledger lines below (A3) and above (C6): the synthetic scores' range.
TREBLE_RANGE = pitch_range("A3", "C6")

_KERN_ACCIDENTALS = {"": "", "#": "#", "##": "##", "b": "-", "bb": "--", "n": "n"}


def to_kern(token: str) -> str:
    """Humdrum **kern spelling: C4 -> "c", C5 -> "cc", C6 -> "ccc", B3 -> "B", A3 -> "A", C3 -> "C",
    F#4 -> "f#", Bb3 -> "B-"."""
    letter, accidental, octave = parse_pitch(token)
    name = letter.lower() * (octave - 3) if octave >= 4 else letter * (4 - octave)
    return name + _KERN_ACCIDENTALS[accidental]


_KERN_PITCH = re.compile(r"([a-g]+|[A-G]+)(#{1,3}|-{1,3}|n)?")


def from_kern(spelling: str) -> str:
    """The inverse of :func:`to_kern`: "cc" -> C5, "A" -> A3, "b-" -> Bb4."""
    match = _KERN_PITCH.fullmatch(spelling)
    if not match or len(set(match.group(1))) != 1:
        raise ValueError(f"{spelling!r} is not a **kern pitch (repeated letter, lower case from C4 up: 'c', 'cc', 'A')")
    letters, accidental = match.group(1), match.group(2) or ""
    octave = 3 + len(letters) if letters.islower() else 4 - len(letters)
    accidental = {"": "", "#": "#", "##": "##", "-": "b", "--": "bb", "n": "n"}.get(accidental)
    if accidental is None:
        raise ValueError(f"{spelling!r}: triple accidentals are outside this notation")
    return f"{letters[0].upper()}{accidental}{octave}"


class SemanticError(ValueError):
    """A PrIMuS semantic encoding that cannot be turned into a pitch label; ``reason`` is the
    category the dataset counts skipped samples by."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


_IGNORED = ("clef-", "keySignature-", "timeSignature-", "rest-", "multirest-", "barline", "tie", "fermata")


def semantic_to_pitches(semantic: str, accidentals: str = "skip", clefs=None) -> list[str]:
    """The pitches of a PrIMuS ``.semantic`` encoding, in order.

    Notes (``note-F#5_eighth.``, ``gracenote-C5_sixteenth``) give their pitch; clefs, key and time
    signatures, rests, multi-measure rests, barlines and ties are dropped. A pitch with a sharp or a
    flat is outside C major, handled by ``accidentals``: "skip" raises :class:`SemanticError` (the
    dataset skips and counts the sample), "natural" keeps the letter and octave (the staff position
    a C-major reader sees), "keep" keeps the token as it is (then the charset decides), "error"
    raises ``ValueError`` at once. ``clefs`` (e.g. ``("G2",)``): only these clefs are accepted, a
    sample with another clef raises :class:`SemanticError`.
    """
    if accidentals not in ACCIDENTAL_POLICIES:
        raise ValueError(f"accidentals must be one of {ACCIDENTAL_POLICIES}, not {accidentals!r}")
    pitches = []
    for token in semantic.split():
        if token.startswith("clef-"):
            if clefs is not None and token[5:] not in clefs:
                raise SemanticError("clef not read by this model", f"{token} (accepted: {', '.join(clefs)})")
            continue
        if token.startswith(("note-", "gracenote-")):
            pitch = token.split("-", 1)[1].split("_", 1)[0]
            try:
                letter, accidental, octave = parse_pitch(pitch)
            except ValueError as exc:
                raise SemanticError("unreadable note", f"{token}: {exc}") from None
            if accidental in ("", "n"):
                pitches.append(f"{letter}{octave}")
            elif accidentals == "natural":
                pitches.append(f"{letter}{octave}")
            elif accidentals == "keep":
                pitches.append(pitch)
            elif accidentals == "skip":
                raise SemanticError("accidental outside C major", token)
            else:
                raise ValueError(f"{token} has an accidental outside C major; accidentals='skip' skips such "
                                 "samples, 'natural' reads the staff position")
            continue
        if not token.startswith(_IGNORED):
            raise SemanticError("unknown semantic token", token)
    return pitches
