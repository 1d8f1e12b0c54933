"""Finding the staff of a single-staff score image, and cropping it to a fixed number of staff
spaces so the recognizer sees the same vertical geometry whatever margins, scale or slight skew
the image came with.

A model trained on crops with ~3 staff spaces above and below the staff reads pitches as heights
in its 32-pixel input; an image with other margins (PrIMuS keeps the page's, scans and photos
keep whatever the source gave) moves every note by a step or two. :class:`StaffNormalize` puts
the staff where training put it: it finds the five staff lines (row profile of the dark pixels,
searched over small skews, then the comb of five equally spaced lines that best fits it) and
crops from ``spaces_above`` above the top line to ``spaces_below`` below the bottom line, and
horizontally to the staff's extent, deskewed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

MAX_SKEW_DEG = 3.0
MIN_SPACE_PX = 2.5
# Taller images are searched at this height: even with 8 staff spaces of margin above and below, a
# staff space keeps over 4 pixels, enough for the search; and the geometry scales back.
SEARCH_HEIGHT = 120
CLEAR_CONTRAST = 0.6  # a staff of dark ink this clear needs no look for light ink
SHORT_COMB = 0.4  # of the image's width: a staff runs across most of a score image
# The staff (4 spaces) and a stem beyond it on one side at least: an image fewer of the found spaces
# high cannot hold both, so the comb took every other line, or lines and gaps, for the staff's.
MIN_HEIGHT_SPACES = 7.0
# Notes and ledger lines lie beyond a staff's outer lines, so a score image rarely ends at one. A comb
# whose top or bottom line lies nearer the image's edge than this (in found spaces, at the staff's
# middle column) is taken for other rows: in snippets with faint lines, rows wider apart than the
# staff's lines, 8-9 of those spacings high where the snippet is 10-12 staff spaces. The cost: an
# image really cropped that tight is read as it came, not cropped and padded.
MIN_EDGE_SPACES = 0.5
# C6 and A3, the alphabet's ends, sit on a second ledger line: a comb found up to two lines off the staff.
MAX_LEDGER_SHIFT = 2


@dataclass(frozen=True)
class StaffGeometry:
    """A staff found in an image, in its pixels. ``top`` and ``bottom``: y of the top and bottom
    staff lines at x = 0 of the deskewed image (y' = y - x tan(skew)); ``left`` / ``right``: the
    columns the staff lines span; ``contrast``: mean darkness share of the five lines' rows minus
    that of the rows midway between them (1: perfect lines on clean paper); ``neighbour_coverage``:
    how far the sparsest line of the comb a line above, and of the one a line below, runs across
    the image, relative to the found comb's (near 1: the staff may as well be there)."""

    top: float
    bottom: float
    left: int
    right: int
    skew_deg: float
    line_thickness: float
    contrast: float
    light_ink: bool = False
    neighbour_coverage: tuple[float, float] = (0.0, 0.0)

    @property
    def space(self) -> float:
        """Distance between two staff lines, in pixels."""
        return (self.bottom - self.top) / 4

    def margins(self, height: int, x: float) -> tuple[float, float]:
        """Pixels from the image's top edge to the top line and from the bottom line to the bottom
        edge, at column ``x`` of an image ``height`` pixels high (the lines shift with the skew)."""
        return _margins(self.top, self.bottom, float(np.tan(np.radians(self.skew_deg))), height, x)

    def scaled(self, fx: float, fy: float) -> StaffGeometry:
        """The geometry in an image ``fx`` times as wide and ``fy`` times as tall."""
        skew = np.degrees(np.arctan(np.tan(np.radians(self.skew_deg)) * fy / fx))
        return replace(self, top=self.top * fy, bottom=self.bottom * fy, left=int(self.left * fx),
                       right=int(round((self.right + 1) * fx)) - 1, skew_deg=float(skew),
                       line_thickness=self.line_thickness * fy)

    def as_dict(self) -> dict:
        out = {k: v if isinstance(v, bool) else [round(float(c), 2) for c in v] if isinstance(v, tuple)
               else round(float(v), 2) for k, v in asdict(self).items()}
        out["space"] = round(self.space, 2)
        return out


def darkness(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel of a grey image holds, 0 (paper) to 1, measured against the local
    paper brightness (uneven light on a photographed page). Soft, not thresholded: thin staff lines
    are drawn anti-aliased, a pixel or less wide, and would fall below any threshold for note heads."""
    image = Image.fromarray(gray)
    # Paper: the brightest pixel within a sixth of the image height (wider than a note head or a
    # beam), on a reduced image to keep it cheap, then smoothed.
    window = max(3, min(gray.shape) // 6)
    factor = max(1, window // 4)
    small = image.reduce(factor) if factor > 1 else image
    size = max(3, (window // factor) | 1)  # MaxFilter takes odd sizes
    paper = small.filter(ImageFilter.MaxFilter(size)).filter(ImageFilter.BoxBlur(size / 2))
    paper = np.asarray(paper.resize(image.size, Image.BILINEAR), np.float32)
    ratio = gray.astype(np.float32) / np.maximum(paper, 1)
    return np.clip((0.9 - ratio) / 0.5, 0, 1)  # paper noise stays under 0.9 of the paper's brightness


def _profile(ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, angle: float, height: int,
             width: int) -> tuple[np.ndarray, int]:
    """Ink per row of the image sheared by ``angle`` (y' = y - x tan a), and the row offset."""
    shifted = ys - xs * np.tan(angle)
    offset = int(np.floor(min(0.0, -width * np.tan(angle)))) - 1
    rows = np.round(shifted - offset).astype(np.int64)
    return np.bincount(rows, weights, minlength=height - offset + 2).astype(np.float32), offset


def find_staff(gray: np.ndarray, max_skew_deg: float = MAX_SKEW_DEG, min_contrast: float = 0.3) -> StaffGeometry | None:
    """The most prominent 5-line staff of a grey image (uint8), or None when no comb of five
    equally spaced lines stands out (``min_contrast``). Ink may be darker than the paper or, on
    a dark photograph, lighter: both are tried, the clearer staff wins."""
    height, width = gray.shape
    if height < 5 * MIN_SPACE_PX or width < 4 * MIN_SPACE_PX:
        return None
    if height > 1.25 * SEARCH_HEIGHT:  # found on a reduced copy: the cost grows with the pixel count
        factor = height / SEARCH_HEIGHT
        small = Image.fromarray(gray).resize((max(1, round(width / factor)), SEARCH_HEIGHT), Image.BOX)
        staff = find_staff(np.asarray(small), max_skew_deg, min_contrast)
        return None if staff is None else staff.scaled(width / small.width, height / small.height)
    found = [f for f in [_find(gray, max_skew_deg, False)] if f]
    if not found or found[0][0].contrast < CLEAR_CONTRAST:  # then perhaps light ink on a dark photograph
        found += [f for f in [_find(255 - gray, max_skew_deg, True)] if f]
    if not found:
        return None
    staff, _ = max(found, key=lambda f: f[1])
    # A staff runs across most of a score image; a short comb is texture or a stray pattern.
    if staff.contrast < min_contrast or staff.right - staff.left < SHORT_COMB * width:
        return None
    return staff


def _find(gray: np.ndarray, max_skew_deg: float, light_ink: bool) -> tuple[StaffGeometry, float] | None:
    """The staff of dark ink on lighter paper, with its comb's score."""
    height, width = gray.shape
    ink = darkness(gray)
    ys, xs = np.nonzero(ink)
    weights = ink[ys, xs]
    if weights.sum() < width:  # not even one line's worth of ink
        return None

    def profile_at(angle):
        return _profile(ys, xs, weights, angle, height, width)

    # Skew: the shear whose row profile is sharpest (staff lines collapse into few rows).
    coarse = np.radians(np.linspace(-max_skew_deg, max_skew_deg, 25))
    best = max(coarse, key=lambda a: float(np.square(profile_at(a)[0]).sum()))
    fine = best + np.radians(np.linspace(-0.125, 0.125, 5))
    angle = max(fine, key=lambda a: float(np.square(profile_at(a)[0]).sum()))
    profile, offset = profile_at(angle)
    profile /= width
    comb = _best_comb(profile)
    if comb is None:
        return None
    y0, space, contrast, score = comb
    rows = _refine(profile, y0, space)
    thickness = _line_thickness(profile, rows)
    # Least squares over the five lines; a row's pixels are centred half a row below its index.
    space, first = np.polyfit(np.arange(5), rows, 1)
    if thickness > 0.45 * space:  # thick "lines" are the paper between the lines of the other polarity
        return None
    top = first + offset + 0.5
    dark = ink > 0.1
    # Ledger lines under a run of high (or low) notes make a sixth and seventh line beside the staff,
    # and a comb one or two lines off scores nearly as well; the staff's lines run through most
    # columns, ledger lines only under their notes: keep the comb whose sparsest line is the most
    # continuous. (Coverage is also wanted a line beyond the kept comb: ``neighbour_coverage``.)
    # A comb ending at the image's edge is rows at the wrong spacing, not a staff beside ledger lines:
    # no shift mends that, and StaffNormalize's edge rule must still see it (_room_for_notes).
    at_edge = min(_margins(top, top + 4 * space, np.tan(angle), height, width / 2)) < MIN_EDGE_SPACES * space
    reach = 0 if at_edge else MAX_LEDGER_SHIFT
    shifts = [k for k in range(-reach - 1, reach + 2)
              if -space < top + k * space and top + (k + 4) * space < height + space]
    hits = {k: _line_hits(dark, top + k * space, space, angle, thickness) for k in shifts}
    coverage = {k: hits[k].mean(1).min() for k in shifts}
    best = max((k for k in shifts if abs(k) <= reach), key=coverage.get)
    shift = best if coverage[best] > 1.25 * coverage[0] else 0  # a clear gain only
    top += shift * space
    bottom = top + 4 * space
    neighbours = tuple(coverage.get(shift + k, 0.0) / max(coverage[shift], 1e-6) for k in (-1, 1))
    left, right = _staff_extent(hits[shift], space)
    if right - left >= SHORT_COMB * width:  # (a shorter comb is refused by find_staff: keep it short)
        left, right = _keep_inked_sides(ink, top, space, angle, left, right)
    return StaffGeometry(top=float(top), bottom=float(bottom), left=left, right=right,
                         skew_deg=float(np.degrees(angle)), line_thickness=thickness, contrast=float(contrast),
                         light_ink=light_ink, neighbour_coverage=neighbours), score


def _margins(top: float, bottom: float, tan_skew: float, height: int, x: float) -> tuple[float, float]:
    """StaffGeometry.margins for lines not yet made a geometry (``_find`` while it chooses them)."""
    shift = x * tan_skew
    return top + shift, height - bottom - shift


def _best_comb(profile: np.ndarray) -> tuple[float, float, float, float] | None:
    """(first line's row, spacing, contrast, score) of the comb of five equally spaced rows whose ink most
    exceeds that of the rows midway between them; contrast is that excess relative to the lines'
    ink (1: nothing between the lines, 0: no lines)."""
    n = len(profile)
    # A thin staff line is drawn anti-aliased across two rows: a row plus its darker neighbour holds
    # all of it, and lets a comb at fractional spacing hit it.
    pair = profile + np.maximum(np.roll(profile, 1), np.roll(profile, -1))
    peak = np.maximum(pair, np.maximum(np.roll(pair, 1), np.roll(pair, -1)))
    grid = np.arange(n, dtype=np.float32)
    best, best_score = None, 0.0
    for space in np.arange(MIN_SPACE_PX, (n - 1) / 4, 0.25):
        starts = grid[: int(n - 4 * space - 1)]
        if not len(starts):
            break
        lines = np.stack([np.interp(starts + k * space, grid, peak) for k in range(5)])
        gaps = np.stack([np.interp(starts + (k + 0.5) * space, grid, pair) for k in range(4)])
        # The weakest line counts: five lines, not one thick line and four misses.
        strength = np.minimum(lines.min(0) * 2, lines.mean(0))
        score = strength - gaps.mean(0)
        i = int(np.argmax(score))
        if score[i] > best_score * 1.02:  # a finer comb must do clearly better (2 x spacing fits half the lines)
            best_score = float(score[i])
            best = (float(starts[i]), float(space), float(score[i] / max(strength[i], 1e-6)), best_score)
    return best


def _refine(profile: np.ndarray, y0: float, space: float) -> np.ndarray:
    """Sub-row positions of the five lines near the comb's: the ink-weighted centre of each line's peak."""
    rows = []
    for k in range(5):
        centre = y0 + k * space
        lo = int(max(0, np.floor(centre - 0.35 * space)))
        hi = int(min(len(profile) - 1, np.ceil(centre + 0.35 * space)))
        r = lo + int(np.argmax(profile[lo:hi + 1]))
        a, b = max(0, r - 1), min(len(profile), r + 2)
        weights = profile[a:b] - profile[lo:hi + 1].min()
        rows.append(float((weights * np.arange(a, b)).sum() / weights.sum()) if weights.sum() > 0 else float(r))
    return np.array(rows)


def _line_thickness(profile: np.ndarray, rows: list[float]) -> float:
    """Mean width, in rows, of the staff lines' peaks at half their height above the paper between them."""
    widths = []
    for row in rows:
        r = int(round(row))
        if not 1 <= r < len(profile) - 1:
            continue
        r += int(np.argmax(profile[r - 1:r + 2])) - 1  # the comb's row may be next to the peak
        base = min(profile[max(0, r - 3):r + 4])
        half = base + (profile[r] - base) / 2
        lo = r
        while lo > 0 and profile[lo - 1] > half:
            lo -= 1
        hi = r
        while hi < len(profile) - 1 and profile[hi + 1] > half:
            hi += 1
        widths.append(hi - lo + 1)
    return float(np.median(widths)) if widths else 1.0


def _line_hits(dark: np.ndarray, top: float, space: float, angle: float, thickness: float) -> np.ndarray:
    """(5, width): whether each of the five lines from ``top`` is dark in each column (a line outside
    the image is dark nowhere)."""
    height, width = dark.shape
    xs = np.arange(width)
    hits = np.zeros((5, width), bool)
    reach = max(1, int(round(thickness / 2)))
    for k in range(5):
        ys = np.floor(top + k * space + xs * np.tan(angle)).astype(np.int64)  # the row holding y
        for d in range(-reach, reach + 1):
            y = ys + d
            inside = (y >= 0) & (y < height)
            hits[k, inside] |= dark[y[inside], xs[inside]]
    return hits


def _staff_extent(line_hits: np.ndarray, space: float) -> tuple[int, int]:
    """First and last column where at least three of the five lines are dark (``line_hits``:
    :func:`_line_hits` of the staff)."""
    # Smooth over a staff space: notes and barlines interrupt the lines' run in a column or two.
    window = max(1, int(space))
    covered = np.convolve(line_hits.sum(0) >= 3, np.ones(window), "same") > window / 2
    columns = np.flatnonzero(covered)
    return (int(columns[0]), int(columns[-1])) if len(columns) else (0, line_hits.shape[1] - 1)


def _keep_inked_sides(ink: np.ndarray, top: float, space: float, angle: float, left: int, right: int) -> tuple[int, int]:
    """The staff's extent, widened to the image's edge on a side where the staff's band (its lines
    and a space above and below) holds at least half as much ink beyond the extent as within it:
    staff lines that fade (uneven light, blur, light ink) end the lines' run while the notes go on.
    Blank margins, as on a page, stay cut."""
    height, width = ink.shape
    xs = np.arange(width)
    rows = np.floor(top - space + xs * np.tan(angle)).astype(np.int64)[None, :] + np.arange(int(6 * space) + 1)[:, None]
    inside = (rows >= 0) & (rows < height)
    band = np.where(inside, ink[np.clip(rows, 0, height - 1), xs], 0).sum(0) / np.maximum(inside.sum(0), 1)
    within = band[left:right + 1].mean()
    gap = int(np.ceil(space))  # the side margin StaffNormalize keeps anyway
    if left > gap and band[:left - gap].mean() >= 0.5 * within:
        left = 0
    if right < width - 1 - gap and band[right + 1 + gap:].mean() >= 0.5 * within:
        right = width - 1
    return left, right


def _room_for_notes(staff: StaffGeometry, height: int) -> bool:
    """Whether an image ``height`` pixels high can hold ``staff`` with its notes around it."""
    above, below = staff.margins(height, (staff.left + staff.right) / 2)
    return height >= MIN_HEIGHT_SPACES * staff.space and min(above, below) >= MIN_EDGE_SPACES * staff.space


class StaffNormalize:
    """Pipeline transform: crop a score image to its staff, ``spaces_above`` staff spaces above the
    top line and ``spaces_below`` below the bottom one, deskewed, from ``spaces_side`` spaces left of
    the staff's start to as far right of its end; where the crop passes the image's edge, the
    paper's brightness fills it. The found geometry goes into ``sample["extras"]["staff"]`` and the
    crop box into ``sample["extras"]["crop"]`` (both shown by `ocrframe read --json`; the Reader maps
    character positions back through the box); an image without a recognisable staff is passed on
    unchanged, with ``staff: None``.

    The defaults are the middle of the training snippets' margins (2.75-3.75 spaces), so the
    staff fills the same share of the 32-pixel input in training and in reading. At the sides the
    crop keeps 1 space: training snippets end at a note, and blank paper after a final barline was
    read as an extra note (crnn-omr through the Reader, 200 held-out clean incipits: 98.5 %
    fragment accuracy with 1 space, 69.5 % with 3; docs/benchmarks.md).

    Where the finder may be wrong, the image's own framing is trusted instead:
    - ``keep_margins``: an image whose margins above and below the found staff already lie in this
      range (in staff spaces; the training snippets' 2.75-3.75, give or take) keeps its rows and
      is only cut at the sides: when the comb is a line off (ledger lines, faint or blurred lines),
      such an image is still framed right, and when it is right, re-cropping changes little. The
      same holds for the margins around the comb a line above or below when its lines run at least
      ``rival_coverage`` as far as the found comb's (``neighbour_coverage``): the staff may be
      there. None crops every image; ``rival_coverage=None`` looks at the found comb only.
    - an image less than 7 of the found spaces high, or whose found top or bottom line lies less
      than half a found space from its edge, is passed on as it is (``staff: None``): it has no room
      for a staff with its notes, so the comb took other rows for the lines.
    - the sides are cut only where the staff's band is blank (:func:`_keep_inked_sides`).
    What these three do to crnn-omr's readings of each test split: docs/benchmarks.md.
    """

    def __init__(self, spaces_above: float = 3.25, spaces_below: float = 3.25, spaces_side: float = 1.0,
                 max_skew_deg: float = MAX_SKEW_DEG, min_contrast: float = 0.3,
                 keep_margins: tuple[float, float] | None = (2.5, 4.0), rival_coverage: float | None = 0.8):
        if spaces_above < 2.5 or spaces_below < 2.5:
            raise ValueError(f"spaces_above / spaces_below must be at least 2.5 staff spaces (room for ledger-line "
                             f"notes), not {spaces_above} / {spaces_below}")
        self.spaces_above, self.spaces_below, self.spaces_side = spaces_above, spaces_below, spaces_side
        self.max_skew_deg, self.min_contrast = max_skew_deg, min_contrast
        self.keep_margins, self.rival_coverage = keep_margins, rival_coverage

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        gray = np.asarray(image if image.mode == "L" else image.convert("L"))
        staff = find_staff(gray, self.max_skew_deg, self.min_contrast)
        sample.setdefault("extras", {})["staff"] = None
        if staff is None or not _room_for_notes(staff, gray.shape[0]):
            return sample
        sample["image"], box = self.crop(image, gray, staff)
        sample["extras"]["staff"] = staff.as_dict()
        sample["extras"]["crop"] = [round(v, 1) for v in box]  # where character positions map back to
        return sample

    def crop(self, image: Image.Image, gray: np.ndarray, staff: StaffGeometry):
        space = staff.space
        x0 = max(0.0, staff.left - self.spaces_side * space)
        x1 = min(float(gray.shape[1]), staff.right + 1 + self.spaces_side * space)
        y0 = staff.top - self.spaces_above * space
        y1 = staff.bottom + self.spaces_below * space
        tan = float(np.tan(np.radians(staff.skew_deg)))
        above, below = (m / space for m in staff.margins(gray.shape[0], (x0 + x1) / 2))  # at the crop's centre
        lo, hi = self.keep_margins or (np.inf, -np.inf)
        shifts = [0] + [k for k, c in zip((-1, 1), staff.neighbour_coverage)
                        if self.rival_coverage is not None and c >= self.rival_coverage]
        if any(lo <= above + k <= hi and lo <= below - k <= hi for k in shifts):
            y0, y1, tan = 0.0, float(gray.shape[0]), 0.0
        size = (max(1, int(round(x1 - x0))), max(1, int(round(y1 - y0))))
        # The paper's colour, dark or light: most of a score image is paper.
        fill = int(np.median(gray)) if image.mode == "L" else tuple(int(c) for c in np.median(
            np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0))
        # Output (u, v) samples input (x0 + u, y0 + v + (x0 + u) tan): crop and deskew in one resampling.
        coefficients = (1, 0, x0, tan, 1, y0 + x0 * tan)
        out = image.transform(size, Image.AFFINE, coefficients, Image.BILINEAR, fillcolor=fill)
        return out, (x0, y0, x1, y1)
