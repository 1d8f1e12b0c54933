"""Engraved music: random C-major melodies written as Humdrum **kern, engraved by verovio (SVG) and
rasterised by resvg.

An engraved *line* is one staff of melody in a music font; fragments of 3 to 20 notes are cut from
it between two notes, the way the paper's fragments were cut from sheets (the first fragment of a
line starts with its clef). The positions of staff lines and notes come from verovio's SVG, so the
cuts never split a note and every pitch of the label is on the image.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from ocrframe_omr.pitch import TREBLE_RANGE, from_diatonic_index, diatonic_index, to_kern

METERS = ((4, 4), (3, 4), (2, 4), (2, 2), (6, 8), (3, 8))
# Note and rest lengths in sixteenths, with how often melodies use them.
DURATIONS = {16: 0.04, 12: 0.04, 8: 0.14, 6: 0.07, 4: 0.3, 3: 0.05, 2: 0.26, 1: 0.1}
_KERN_DURATION = {16: "1", 12: "2.", 8: "2", 6: "4.", 4: "4", 3: "8.", 2: "8", 1: "16"}
REST_PROBABILITY = 0.08


@dataclass(frozen=True)
class Event:
    pitch: str | None  # None for a rest
    sixteenths: int
    beam: str = ""  # **kern beam marks: "L" opens a beam, "J" closes it (doubled for sixteenths)


def random_melody(rng: np.random.Generator, notes: int, meter: tuple[int, int] = (4, 4),
                  pitches=TREBLE_RANGE) -> list[Event]:
    """``notes`` notes (plus a few rests) of a melody: mostly steps and small leaps, sometimes a jump
    anywhere in ``pitches``; durations never cross a barline; eighths and sixteenths of one beat
    are beamed."""
    lo, hi = diatonic_index(pitches[0]), diatonic_index(pitches[-1])
    measure = 16 * meter[0] // meter[1]
    beat = 6 if meter[1] == 8 else 4
    lengths, weights = zip(*DURATIONS.items())
    weights = np.array(weights) / sum(weights)
    events: list[Event] = []
    position, current, count = 0, int(rng.integers(lo, hi + 1)), 0
    while count < notes:
        room = measure - position % measure
        fits = [i for i, n in enumerate(lengths) if n <= room]
        p = weights[fits] / weights[fits].sum()
        length = lengths[fits[int(rng.choice(len(fits), p=p))]]
        if events and events[-1].pitch is not None and rng.random() < REST_PROBABILITY:
            events.append(Event(None, length))
        else:
            kind = rng.random()
            if kind < 0.1:
                current = int(rng.integers(lo, hi + 1))
            else:
                step = int(rng.choice([0, 1, 2, 3, 4, 5], p=[0.1, 0.45, 0.22, 0.12, 0.07, 0.04]))
                current += step if rng.random() < 0.5 else -step
                current = 2 * lo - current if current < lo else 2 * hi - current if current > hi else current
                current = min(max(current, lo), hi)  # reflected off the range's ends
            events.append(Event(from_diatonic_index(current), length))
            count += 1
        position += length
    return _beam(events, beat)


def _beam(events: list[Event], beat: int) -> list[Event]:
    """Beam runs of two or more equal eighths / sixteenths inside one beat."""
    out, position, i = list(events), 0, 0
    starts = []
    for e in events:
        starts.append(position)
        position += e.sixteenths
    while i < len(out):
        e = out[i]
        j = i
        if e.pitch is not None and e.sixteenths in (1, 2):
            while (j + 1 < len(out) and out[j + 1].pitch is not None and out[j + 1].sixteenths == e.sixteenths
                   and starts[j + 1] // beat == starts[i] // beat):
                j += 1
        if j > i:
            mark = "L" if e.sixteenths == 2 else "LL"
            out[i] = Event(e.pitch, e.sixteenths, mark)
            out[j] = Event(out[j].pitch, out[j].sixteenths, mark.replace("L", "J"))
        i = j + 1
    return out


def to_humdrum(events: list[Event], meter: tuple[int, int] = (4, 4), show_meter: bool = True,
               final_barline: bool = False) -> str:
    """A **kern spine in treble clef, C major, with a barline at every full measure (and a final
    double barline with ``final_barline``)."""
    measure = 16 * meter[0] // meter[1]
    lines = ["**kern", "*clefG2", "*k[]"]
    if show_meter:
        lines.append(f"*M{meter[0]}/{meter[1]}")
    position = 0
    for e in events:
        if position and position % measure == 0:
            lines.append("=")
        name = "r" if e.pitch is None else to_kern(e.pitch)
        lines.append(f"{_KERN_DURATION[e.sixteenths]}{name}{e.beam}")
        position += e.sixteenths
    if final_barline:
        lines.append("==")
    lines.append("*-")
    return "\n".join(lines) + "\n"


_PRIMUS_DURATION = {16: ("whole", 0), 12: ("half", 1), 8: ("half", 0), 6: ("quarter", 1), 4: ("quarter", 0),
                    3: ("eighth", 1), 2: ("eighth", 0), 1: ("sixteenth", 0)}  # (name, dots)


def _bars(events: list[Event], meter: tuple[int, int]):
    """(event, a barline comes before it) for each event, barlines at every full measure."""
    measure, position = 16 * meter[0] // meter[1], 0
    for e in events:
        yield e, bool(position and position % measure == 0)
        position += e.sixteenths


def to_semantic(events: list[Event], meter: tuple[int, int] = (4, 4)) -> str:
    """The melody in PrIMuS' semantic encoding, as the corpus writes it (tab-separated, trailing
    tab): ``clef-G2  keySignature-CM  timeSignature-3/4  note-C4_quarter  barline  rest-eighth ...``."""
    tokens = ["clef-G2", "keySignature-CM", f"timeSignature-{meter[0]}/{meter[1]}"]
    for e, bar in _bars(events, meter):
        if bar:
            tokens.append("barline")
        name, dots = _PRIMUS_DURATION[e.sixteenths]
        tokens.append(f"rest-{name}{'.' * dots}" if e.pitch is None else f"note-{e.pitch}_{name}{'.' * dots}")
    tokens.append("barline")
    return "\t".join(tokens) + "\t"


def to_agnostic(events: list[Event], meter: tuple[int, int] = (4, 4)) -> str:
    """The melody in PrIMuS' agnostic encoding: symbols at staff positions ("L1" the bottom line,
    "S1" the space above it), beamed notes named by their beams as the corpus does."""
    bottom = diatonic_index("E4")

    def position(pitch: str) -> str:
        steps = diatonic_index(pitch) - bottom
        return f"{'S' if steps % 2 else 'L'}{steps // 2 + 1}"

    tokens = ["clef.G-L2", f"digit.{meter[0]}-L4", f"digit.{meter[1]}-L2"]
    in_beam = False
    for e, bar in _bars(events, meter):
        if bar:
            tokens.append("barline-L1")
        name, dots = _PRIMUS_DURATION[e.sixteenths]
        if e.pitch is None:
            tokens.append(f"rest.{name}-L3")
        else:
            beams = "2" if e.sixteenths == 1 else "1"
            if e.beam.startswith("L"):
                name, in_beam = f"beamedRight{beams}", True
            elif e.beam.startswith("J"):
                name, in_beam = f"beamedLeft{beams}", False
            elif in_beam:
                name = f"beamedBoth{beams}"
            tokens.append(f"note.{name}-{position(e.pitch)}")
        # A dot sits in the space of its note, or the space above its line ("L3" -> "S3").
        tokens += [f"dot-S{3 if e.pitch is None else position(e.pitch)[1:]}"] * dots
    tokens.append("barline-L1")
    return "\t".join(tokens) + "\t"


# ----------------------------------------------------------------------------------------------
# Engraving
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngravedLine:
    """A rasterised staff line. ``ink``: uint8 (h, w), 255 where the engraving is black.
    Coordinates are in pixels of ``ink``: ``staff`` the y of the top and bottom staff lines,
    ``notes`` the (left, right, y) extent of each note head (with its dot and flag) in order."""

    ink: np.ndarray
    staff: tuple[float, float]
    notes: tuple[tuple[float, float, float], ...]
    pitches: tuple[str, ...]

    @property
    def space(self) -> float:
        """Distance between two staff lines, in pixels."""
        return (self.staff[1] - self.staff[0]) / 4


_SVG = "{http://www.w3.org/2000/svg}"
_HREF = "{http://www.w3.org/1999/xlink}href"
_TRANSLATE = re.compile(r"translate\((-?[\d.]+),\s*(-?[\d.]+)\)")
_LINE = re.compile(r"M(-?[\d.]+) (-?[\d.]+) L(-?[\d.]+) (-?[\d.]+)")
_NOTEHEAD_WIDTH = 1.3  # staff spaces from a glyph's origin to its right edge, with some room
_FLAG_WIDTH = 1.1


def _classes(element) -> list[str]:
    return element.get("class", "").split()


def note_boxes(svg: str) -> tuple[tuple[float, float], list[tuple[float, float, float]], float]:
    """From verovio's SVG: the y of the top and bottom staff line, and per note (in order) the
    (left, right, head y), in viewBox units; and the factor from viewBox units to SVG pixels."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(svg)
    inner = next((g for g in root.iter(f"{_SVG}svg") if "definition-scale" in _classes(g)), None)
    if inner is None:
        raise ValueError("not an SVG of verovio's layout (no definition-scale viewBox)")
    to_px = float(root.get("width").removesuffix("px")) / float(inner.get("viewBox").split()[2])
    margin = next(g for g in inner.iter(f"{_SVG}g") if "page-margin" in _classes(g))
    dx, dy = map(float, _TRANSLATE.search(margin.get("transform")).groups())
    staff = next(g for g in root.iter(f"{_SVG}g") if "staff" in _classes(g))
    lines = sorted(float(m.group(2)) for path in staff.findall(f"{_SVG}path")
                   if (m := _LINE.fullmatch(path.get("d", ""))) and m.group(2) == m.group(4))
    space = (lines[4] - lines[0]) / 4
    boxes = []
    for note in (g for g in root.iter(f"{_SVG}g") if "note" in _classes(g)):
        glyphs = []  # (SMuFL code point, x, y) of the note's glyphs: head, flag
        for use in note.iter(f"{_SVG}use"):
            x, y = map(float, _TRANSLATE.search(use.get("transform")).groups())
            glyphs.append((use.get(_HREF)[1:5], x + dx, y + dy))
        head = next(g for g in glyphs if g[0].startswith("E0A"))  # noteheads are U+E0A0..U+E0A4
        right = max(x + (_FLAG_WIDTH if code.startswith("E2") else _NOTEHEAD_WIDTH) * space for code, x, _ in glyphs)
        for dot in note.iter(f"{_SVG}ellipse"):
            right = max(right, float(dot.get("cx")) + float(dot.get("rx")) + dx)
        boxes.append((head[1], right, head[2]))
    return (lines[0] + dy, lines[4] + dy), boxes, to_px


def rasterise_alpha(svg: str) -> np.ndarray:
    """The SVG's alpha channel (uint8, h x w) as resvg draws it on a transparent background: the ink.

    resvg (Rust) draws a line ~5x faster than cairosvg (pure Python over cairo) did, with the same
    geometry; their anti-aliased edges differ by ~1/255 on average. It keeps no threads, so it is
    safe in DataLoader workers forked after the parent drew (libvips' SVG loader is not)."""
    import resvg_py
    from PIL import Image

    png = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True)  # verovio draws glyphs as paths
    return np.asarray(Image.open(io.BytesIO(png)).getchannel("A"))


class Engraver:
    """Engraves **kern with verovio and rasterises with resvg. One verovio toolkit per process,
    made on first use (verovio is not shared across the fork of a DataLoader worker)."""

    def __init__(self):
        self._toolkit = None
        self._pid = None

    @property
    def toolkit(self):
        import os

        if self._toolkit is None or self._pid != os.getpid():
            import verovio

            verovio.enableLog(verovio.LOG_OFF)
            self._toolkit, self._pid = verovio.toolkit(), os.getpid()
        return self._toolkit

    def svg(self, humdrum: str, *, font: str = "Leipzig", space_px: float = 7.0, spacing_linear: float = 0.25,
            spacing_non_linear: float = 0.6, staff_line_width: float = 0.15, stem_width: float = 0.2) -> str:
        tk = self.toolkit
        tk.setOptions({
            "font": font, "scale": round(space_px / 0.18),  # 100 % scale: 18 px per staff space
            "breaks": "none", "adjustPageWidth": True, "adjustPageHeight": True,
            "pageMarginLeft": 50, "pageMarginRight": 50, "pageMarginTop": 150, "pageMarginBottom": 150,
            "header": "none", "footer": "none", "spacingLinear": spacing_linear,
            "spacingNonLinear": spacing_non_linear, "staffLineWidth": staff_line_width, "stemWidth": stem_width,
        })
        if not tk.loadData(humdrum):
            raise ValueError(f"verovio could not read this **kern:\n{humdrum}")
        return tk.renderToSVG(1)

    def engrave(self, events: list[Event], meter=(4, 4), show_meter: bool = True, final_barline: bool = False,
                **style) -> EngravedLine:
        svg = self.svg(to_humdrum(events, meter, show_meter, final_barline), **style)
        staff, boxes, to_px = note_boxes(svg)
        pitches = tuple(e.pitch for e in events if e.pitch is not None)
        if len(boxes) != len(pitches):
            raise RuntimeError(f"verovio engraved {len(boxes)} notes for a melody of {len(pitches)}")
        ink = rasterise_alpha(svg)
        # Keep 4.5 staff spaces above and below the staff, all the ink there is: a line stays small in
        # memory, and crops reaching further read zeros (no ink).
        top, bottom = staff[0] * to_px, staff[1] * to_px  # resvg draws one pixel per SVG pixel
        keep = 4.5 * (bottom - top) / 4
        y0 = max(0, int(top - keep))
        ink = ink[y0:int(bottom + keep) + 1]
        return EngravedLine(ink=ink, staff=(top - y0, bottom - y0),
                            notes=tuple((l * to_px, r * to_px, y * to_px - y0) for l, r, y in boxes), pitches=pitches)
