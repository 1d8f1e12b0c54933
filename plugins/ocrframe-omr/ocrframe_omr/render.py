"""Score snippets as the recognizer sees them: a fragment cut from an engraved line, then put on
paper or a photograph and degraded like a scan or a phone picture.

Styles, named after the paper's test sets (section 3.4):
  clean        black engraving on white, no distortion (the paper's "Clean")
  synthesized  the paper's augmentation -- rotation, scaling, noise corruption, textured and natural
               backgrounds -- plus milder camera effects; training data and the "Synthesized" split
  camera       a phone picture of a printed page (stand-in for "Real-World"): perspective, uneven
               light, blur, JPEG, on background photographs that training never uses

Engraving settings come in two disjoint sets (:data:`ENGRAVINGS`): "train" for every split the
config trains, validates and tests on, "heldout" for an independent split that training never
samples -- whole incipits as PrIMuS ships them (clef, time signature, barlines, rests, a final
barline, the white margins of a page, tight to generous) in a music font, scale, spacing and
staff-line width the training engraving never uses.

The effects are the shared ones of ``ocrframe.data.effects``; every draw comes from the Generator
passed in, so a snippet is a pure function of its seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ocrframe import discover_backgrounds, effects
from ocrframe_omr.engrave import METERS, EngravedLine, Engraver, Event, random_melody, to_agnostic, to_semantic

STYLES = ("clean", "synthesized", "camera")
ASSETS = ("train", "heldout")
MIN_NOTES, MAX_NOTES = 3, 20
LINE_NOTES = (24, 36)  # notes per engraved line, fragments are cut from
# Staff spaces kept above / below the staff: room for C6 and A3 with ledger lines; StaffNormalize crops
# images read later to the middle of this range.
MARGIN_SPACES = (2.75, 3.75)
# C6's and A3's heads are centred 2 spaces beyond the staff: a narrower margin cuts them off.
MIN_MARGIN_SPACES = 2.0
# A snippet's height in staff spaces once normalised (staff + 3.25 above and below): effects are sized
# for it at 32 pixels whatever margins the image has.
NORMALISED_SPACES = 10.5
# A note head's centre, in staff spaces right of its glyph's origin (SMuFL's black and half note
# heads are 1.18 spaces wide).
HEAD_CENTRE_SPACES = 0.6
# Held-out incipits: white margins around the ink, in staff spaces (vertical, horizontal).
INCIPIT_MARGIN_SPACES = ((0.3, 8.0), (0.3, 5.0))


@dataclass(frozen=True)
class Engraving:
    """The ranges an engraving's settings are drawn from (see ``Engraver.svg``)."""

    fonts: tuple[str, ...]
    space_px: tuple[float, float]
    spacing_linear: tuple[float, float]
    spacing_non_linear: tuple[float, float]
    staff_line_width: tuple[float, float]
    stem_width: tuple[float, float]

    def draw(self, rng: np.random.Generator) -> dict:
        return dict(font=self.fonts[int(rng.integers(len(self.fonts)))],
                    **{name: float(rng.uniform(*getattr(self, name)))
                       for name in ("space_px", "spacing_linear", "spacing_non_linear", "staff_line_width",
                                    "stem_width")})


# Disjoint: no held-out setting falls in a training range (tests/test_omr.py checks it). Leland is
# verovio's fifth SMuFL font; the held-out scale is PrIMuS-like (verovio's 100 % is 18 px a space).
ENGRAVINGS = {
    "train": Engraving(fonts=("Leipzig", "Bravura", "Gootville", "Petaluma"), space_px=(6.0, 8.0),
                       spacing_linear=(0.15, 0.3), spacing_non_linear=(0.5, 0.65), staff_line_width=(0.1, 0.22),
                       stem_width=(0.15, 0.25)),
    "heldout": Engraving(fonts=("Leland",), space_px=(9.0, 14.0), spacing_linear=(0.31, 0.36),
                         spacing_non_linear=(0.66, 0.72), staff_line_width=(0.23, 0.3), stem_width=(0.26, 0.32)),
}


@dataclass(frozen=True)
class Augmentation:
    """Probabilities and strengths of the effects of one style."""

    rotation_deg: float = 0.0        # standard deviation, clipped at 2.5 sigma
    perspective: float = 0.0         # probability of a perspective warp
    perspective_spaces: float = 0.0  # corner displacement, in staff spaces
    stretch: tuple[float, float] = (1.0, 1.0)  # horizontal scaling
    background: float = 0.0          # probability of a textured / photographic background
    photo_share: float = 0.0         # of those, photographs
    uneven_light: float = 0.0
    speckle: float = 0.0             # salt-and-pepper noise
    low_resolution: float = 0.0      # taken small, upsampled
    degradation: effects.Degradation = effects.Degradation(blur=0, motion_blur=0, noise=0, jpeg=0)


AUGMENTATIONS = {
    "clean": Augmentation(),
    "synthesized": Augmentation(
        rotation_deg=1.0, perspective=0.3, perspective_spaces=0.4, stretch=(0.85, 1.2), background=0.85,
        photo_share=0.4, uneven_light=0.3, speckle=0.2, low_resolution=0.1,
        degradation=effects.Degradation(blur=0.3, blur_sigma=(0.2, 0.6), motion_blur=0.05, noise=0.5,
                                        noise_sigma=(3, 15), jpeg=0.3, jpeg_quality=(35, 90))),
    "camera": Augmentation(
        rotation_deg=1.2, perspective=1.0, perspective_spaces=0.8, stretch=(0.85, 1.2), background=1.0,
        photo_share=0.6, uneven_light=0.8, speckle=0.0, low_resolution=0.2,
        degradation=effects.Degradation(blur=0.6, blur_sigma=(0.3, 0.7), motion_blur=0.2, noise=0.6,
                                        noise_sigma=(3, 12), jpeg=0.8, jpeg_quality=(30, 80))),
}


@dataclass(frozen=True)
class Incipit:
    """A whole engraved incipit: its ink (255 = black) with its margins, the staff space in pixels,
    and what was engraved."""

    ink: Image.Image
    space: float
    staff: tuple[float, float]  # y of the top and bottom staff lines in ``ink``
    events: tuple[Event, ...]
    meter: tuple[int, int]
    pitches: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(self.pitches)

    @property
    def semantic(self) -> str:
        return to_semantic(list(self.events), self.meter)

    @property
    def agnostic(self) -> str:
        return to_agnostic(list(self.events), self.meter)


def check_margins(margins) -> tuple[float, float]:
    """``margins`` as a (low, high) range of staff spaces, or a ValueError saying what is wrong."""
    if len(margins) != 2 or not MIN_MARGIN_SPACES <= margins[0] <= margins[1]:
        raise ValueError(f"margins must be (low, high) staff spaces with {MIN_MARGIN_SPACES} <= low <= high "
                         f"(room for C6 and A3 with their ledger lines), not {margins!r}")
    return float(margins[0]), float(margins[1])


class MusicRenderer:
    """Engraves random lines (:meth:`line`) and cuts augmented snippets from them (:meth:`snippet`).

    Args:
        style: "clean", "synthesized" or "camera" (see the module docstring).
        backgrounds: "train" or "heldout" background photographs (the camera style uses held-out
            ones by default).
        margins: the range of staff spaces a snippet keeps above and below its staff (each drawn
            on its own).
    """

    def __init__(self, style: str = "synthesized", backgrounds: str | None = None, assets: str = "train",
                 margins: tuple[float, float] = MARGIN_SPACES):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        if assets not in ASSETS:
            raise ValueError(f"assets must be one of {ASSETS}, not {assets!r}")
        self.margins = check_margins(margins)
        self.style, self.augmentation, self.engraving = style, AUGMENTATIONS[style], ENGRAVINGS[assets]
        split = backgrounds or ("heldout" if style == "camera" or assets == "heldout" else "train")
        self.photos = discover_backgrounds(split) if self.augmentation.photo_share else ()
        self.engraver = Engraver()

    def line(self, rng: np.random.Generator) -> EngravedLine:
        """A random melody engraved with random settings of this renderer's engraving."""
        meter = METERS[int(rng.integers(len(METERS)))]
        events = random_melody(rng, int(rng.integers(LINE_NOTES[0], LINE_NOTES[1] + 1)), meter)
        return self.engraver.engrave(events, meter, show_meter=bool(rng.random() < 0.6),
                                     final_barline=bool(rng.random() < 0.5), **self.engraving.draw(rng))

    def incipit(self, rng: np.random.Generator, count: int | None = None) -> Incipit:
        """A whole incipit of ``count`` (default: 3 to 20, uniformly) notes as PrIMuS ships them:
        clef, time signature, the melody with its rests and barlines, a final barline, and white
        margins around the ink of 0.3 to 8 staff spaces above and below, 0.3 to 5 at the sides."""
        if count is None:
            count = int(rng.integers(MIN_NOTES, MAX_NOTES + 1))
        meter = METERS[int(rng.integers(len(METERS)))]
        events = random_melody(rng, count, meter)
        (above, below), (left, right) = (rng.uniform(*r, 2) for r in INCIPIT_MARGIN_SPACES)
        line = self.engraver.engrave(events, meter, show_meter=True, final_barline=True, **self.engraving.draw(rng))
        rows, columns = np.flatnonzero(line.ink.max(1) > 25), np.flatnonzero(line.ink.max(0) > 25)
        space = line.space
        box = (columns[0] - left * space, rows[0] - above * space, columns[-1] + 1 + right * space,
               rows[-1] + 1 + below * space)
        ink = Image.fromarray(line.ink).crop(tuple(int(round(v)) for v in box))  # zero (no ink) outside the line
        top = int(round(box[1]))
        return Incipit(ink, space, (line.staff[0] - top, line.staff[1] - top), tuple(events), meter, line.pitches)

    def finish(self, ink: Image.Image, space: float, rng: np.random.Generator) -> Image.Image:
        """The RGB image of an engraving's ink (255 = black) in this renderer's style."""
        return self._augment(ink, space, rng, np.empty((0, 2)))[0]

    def snippet(self, line: EngravedLine, rng: np.random.Generator,
                count: int | None = None, augment: bool = True) -> tuple[Image.Image, str]:
        """An RGB image of ``count`` (default: 3 to 20, uniformly) consecutive notes of ``line`` and
        its label, the notes' pitches; ``augment=False`` draws it clean whatever the style."""
        return self.snippet_aligned(line, rng, count, augment)[:2]

    def snippet_aligned(self, line: EngravedLine, rng: np.random.Generator, count: int | None = None,
                        augment: bool = True) -> tuple[Image.Image, str, list[float]]:
        """:meth:`snippet` (the same image for the same generator state), plus where each note is
        drawn: its head's centre, through the augmentation's geometry, as a fraction of the image
        width (for the recognizer's alignment loss)."""
        box, start, end = self.cut(line, rng, count, self.margins)
        ink = Image.fromarray(line.ink).crop(box)  # zero (no ink) outside the line
        heads = np.array([(left + HEAD_CENTRE_SPACES * line.space - box[0], y - box[1])
                          for left, _, y in line.notes[start:end]], float).reshape(-1, 2)
        if augment:
            image, heads = self._augment(ink, line.space, rng, heads)
        else:
            image = _clean(ink)
        return image, " ".join(line.pitches[start:end]), np.clip(heads[:, 0] / image.width, 0, 1).tolist()

    @staticmethod
    def cut(line: EngravedLine, rng: np.random.Generator, count: int | None = None,
            margins: tuple[float, float] = MARGIN_SPACES):
        """Where to cut a snippet: (box (left, top, right, bottom) in pixels, first note, end note).
        30 % of snippets start at the line's start, with the clef; the others between two notes,
        midway from a note's right edge (dot, flag) to the next head; ``margins`` staff spaces above
        and below the staff."""
        notes = line.notes
        if count is None:
            count = int(rng.integers(MIN_NOTES, MAX_NOTES + 1))
        count = min(count, len(notes))
        start = 0 if rng.random() < 0.3 else int(rng.integers(0, len(notes) - count + 1))
        end = start + count

        def between(left_note: int) -> float:
            return (notes[left_note][1] + notes[left_note + 1][0]) / 2

        x0 = 0.0 if start == 0 else between(start - 1)
        x1 = between(end - 1) if end < len(notes) else float(np.flatnonzero(line.ink.max(0) > 25)[-1] + line.space)
        top = line.staff[0] - rng.uniform(*margins) * line.space
        bottom = line.staff[1] + rng.uniform(*margins) * line.space
        return tuple(int(round(v)) for v in (x0, top, x1, bottom)), start, end

    def _augment(self, ink: Image.Image, space: float, rng: np.random.Generator,
                 points: np.ndarray) -> tuple[Image.Image, np.ndarray]:
        """The styled image, and ``points`` (n x 2, pixels of ``ink``) where they are drawn in it."""
        aug = self.augmentation
        if self.style == "clean":
            return _clean(ink), points
        # Geometry: scaling, perspective and rotation in one homography onto a canvas that keeps it all.
        w, h = ink.size
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        dst = src * [rng.uniform(*aug.stretch), 1]
        if rng.random() < aug.perspective:
            dst = dst + rng.normal(0, aug.perspective_spaces * space, (4, 2))
        angle = np.radians(np.clip(rng.normal(0, aug.rotation_deg), -2.5 * aug.rotation_deg, 2.5 * aug.rotation_deg))
        c, s = np.cos(angle), np.sin(angle)
        dst = (dst - dst.mean(0)) @ np.array([[c, s], [-s, c]])
        dst -= dst.min(0)
        size = tuple(int(v) + 1 for v in dst.max(0))
        ink = ink.transform(size, Image.PERSPECTIVE, effects.homography(src, dst), Image.BILINEAR)
        points = effects.apply_homography(effects.homography(dst, src), points)  # from the ink onto the canvas
        alpha = np.asarray(ink, np.float32)[..., None] / 255
        h, w = alpha.shape[:2]

        if rng.random() < aug.background:
            bg = effects.background(self.photos, h, w, rng, photo_share=aug.photo_share)
        else:
            bg = np.broadcast_to(1 - rng.random(3).astype(np.float32) * 0.1, (h, w, 3))
        bg_lum = float(effects.luminance(bg).mean())
        dark = np.full(3, rng.uniform(0, 0.25), np.float32)  # printed music: near-black ink
        color = effects.contrasting(dark, bg_lum, rng, 0.4 + min(float(effects.luminance(bg).std()), 0.2))
        alpha = alpha * rng.uniform(0.85, 1.0)
        img = bg * (1 - alpha) + color * alpha
        if rng.random() < aug.uneven_light:
            img = effects.uneven_light(img, rng)
        if rng.random() < aug.speckle:
            density = rng.uniform(0.002, 0.01)
            flip = rng.random((h, w)) < density
            img = np.where(flip[..., None], rng.random((h, w, 1)).round().astype(np.float32), img)
        out = effects.to_image(img)
        if rng.random() < aug.low_resolution:
            factor = rng.uniform(0.4, 0.7)
            small = out.resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.BILINEAR)
            out = small.resize((w, h), Image.BILINEAR)
        # Blur and noise are sized for the 32-pixel-high input the recognizer sees once the staff is normalised.
        return aug.degradation(out, rng, scale=NORMALISED_SPACES * space / 32), points


def _clean(ink: Image.Image) -> Image.Image:
    """Black ink on white, nothing else."""
    return effects.to_image(np.repeat(1 - np.asarray(ink, np.float32)[..., None] / 255, 3, -1))
