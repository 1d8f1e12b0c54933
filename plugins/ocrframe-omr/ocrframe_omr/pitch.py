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


class SemanticError(ValueError):
    """A PrIMuS semantic encoding that cannot be turned into a pitch label; ``reason`` is the
    category the dataset counts skipped samples by."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


_IGNORED = ("clef-", "keySignature-", "timeSignature-", "rest-", "multirest-", "barline", "tie", "fermata")


def semantic_to_pitches(semantic: str, accidentals: str = "skip", clefs=None, keys=None) -> list[str]:
    """The pitches of a PrIMuS ``.semantic`` encoding, in order.

    Notes (``note-F#5_eighth.``, ``gracenote-C5_sixteenth``) give their pitch; clefs, key and time
    signatures, rests, multi-measure rests, barlines and ties are dropped. A pitch with a sharp or a
    flat is outside C major, handled by ``accidentals``: "skip" raises :class:`SemanticError` (the
    dataset skips and counts the sample), "natural" keeps the letter and octave (the staff position
    a C-major reader sees), "keep" keeps the token as it is (then the charset decides), "error"
    raises ``ValueError`` at once. ``clefs`` (e.g. ``("G2",)``): only these clefs are accepted, a
    sample with another clef raises :class:`SemanticError`; ``keys`` (e.g. ``("CM",)``) likewise for
    key signatures (their accidentals do not move a note head, so by default every key is read).
    """
    if accidentals not in ACCIDENTAL_POLICIES:
        raise ValueError(f"accidentals must be one of {ACCIDENTAL_POLICIES}, not {accidentals!r}")
    pitches = []
    for token in semantic.split():
        if token.startswith("clef-"):
            check_clef(token[5:], clefs, token)
            continue
        if token.startswith("keySignature-"):
            check_key(token[13:], keys, token)
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


def check_clef(clef: str, clefs, token: str) -> None:
    """Raise :class:`SemanticError` for a clef outside ``clefs`` (None: any). The reason names
    the clef, so a folder's skipped samples are counted per clef."""
    if clefs is not None and clef not in clefs:
        raise SemanticError(f"clef {clef} not read by this model",
                            f"{token} (the model reads clef {', '.join(clefs)}; clefs=None reads every clef)")


def check_key(key: str, keys, token: str) -> None:
    if keys is not None and key not in keys:
        raise SemanticError(f"key {key} not accepted", f"{token} (accepted: {', '.join(keys)}; keys=None reads "
                                                       "every key signature)")


# PrIMuS agnostic encoding: symbols with their vertical position on the staff, "L1".."L5" the lines
# from the bottom and "S1".."S4" the spaces above them (L0, S0, L-1, S5, L6, ... on ledger lines).
_POSITION = re.compile(r"([LS])(-?\d+)")
_AGNOSTIC = re.compile(r"(.+?)-([LS]-?\d+)")  # symbol-position; positions below the staff are negative
_CLEF_PITCH = {"G": "G4", "F": "F3", "C": "C4"}  # the pitch on a clef's line
_AGNOSTIC_IGNORED = ("clef.", "digit.", "metersign.", "rest.", "multirest", "barline", "dot", "slur.", "fermata.",
                     "tie", "custos", "verticalLine")


def staff_steps(position: str) -> int:
    """Steps above the bottom line: "L1" -> 0, "S1" -> 1, "L2" -> 2, "L0" -> -2, "S-1" -> -3."""
    match = _POSITION.fullmatch(position)
    if not match:
        raise ValueError(f"{position!r} is not a staff position ('L1'..'L5' lines, 'S0'..'S5' spaces, ledger "
                         "positions beyond)")
    kind, number = match.group(1), int(match.group(2))
    return 2 * (number - 1) + (kind == "S")


def agnostic_to_pitches(agnostic: str, accidentals: str = "skip", clefs=None) -> list[str]:
    """The pitches of a PrIMuS ``.agnostic`` encoding: each note's staff position read in the
    clef before it (``clef.G-L2``: the bottom line is E4), as natural pitches -- the encoding does
    not interpret accidentals. Any ``accidental.*`` symbol (a key signature's or a note's) follows
    ``accidentals`` as in :func:`semantic_to_pitches`: "skip" raises :class:`SemanticError`,
    "natural" and "keep" read the staff position, "error" raises ``ValueError``.
    """
    if accidentals not in ACCIDENTAL_POLICIES:
        raise ValueError(f"accidentals must be one of {ACCIDENTAL_POLICIES}, not {accidentals!r}")
    pitches, bottom_line = [], None
    for token in agnostic.split():
        match = _AGNOSTIC.fullmatch(token)
        symbol, position = match.groups() if match else (token, "")
        if token.startswith("clef."):
            letter = symbol[5:]
            if letter not in _CLEF_PITCH:
                raise SemanticError("unknown agnostic symbol", token)
            check_clef(f"{letter}{position[1:]}", clefs, token)
            bottom_line = diatonic_index(_CLEF_PITCH[letter]) - staff_steps(position)
        elif token.startswith("accidental."):
            if accidentals == "skip":
                raise SemanticError("accidental outside C major", token)
            if accidentals == "error":
                raise ValueError(f"{token}: an accidental outside C major; accidentals='skip' skips such samples, "
                                 "'natural' reads the staff position")
        elif token.startswith(("note.", "gracenote.")):
            if bottom_line is None:
                raise SemanticError("note before any clef", token)
            try:
                pitches.append(from_diatonic_index(bottom_line + staff_steps(position)))
            except ValueError as exc:
                raise SemanticError("unreadable note", f"{token}: {exc}") from None
        elif not token.startswith(_AGNOSTIC_IGNORED):
            raise SemanticError("unknown agnostic symbol", token)
    return pitches
