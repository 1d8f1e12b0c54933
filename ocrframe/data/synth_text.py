"""Synthetic word images: the embedded default training data.

Words, random alphanumeric strings and digit codes are rendered with Pillow from the system's
Latin fonts onto photographs and procedural textures, then distorted (spacing, rotation,
perspective, curvature), lit, blurred, noised and JPEG-compressed. Diversity is what lets a model
trained on it read real text, so every effect is drawn at random, each mild enough to stay legible.

Assets come from Debian packages (``setup/debian-packages.txt``): fonts under /usr/share/fonts and
the TeX font tree, words from /usr/share/dict/words, photographs under /usr/share/backgrounds.
Whole font families (clones of one design grouped together) and background images are split
deterministically into "train" and "heldout", so the independent test set uses unseen designs; the
held-out designs of the packaged fonts are listed (HELDOUT_DESIGNS), so other fonts only ever add
training designs.
Backgrounds and the camera effects are the shared ones of ``effects.py`` (photographs and caches:
``assets.py``); what is specific to words (fonts, text, glyph layers, distortion) stays here.

Rendering depends only on the numpy Generator passed in (same seed -> same bytes). Fonts and
background images are opened lazily and cached per process, so forked DataLoader workers are safe.
"""
from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from ocrframe.data import effects
from ocrframe.data.assets import (
    ProcessLRU, dirs_from, discover_backgrounds, files_under, split_by_group, write_cache,
)
from ocrframe.fileio import cache_dir

ALNUM = string.digits + string.ascii_lowercase + string.ascii_uppercase
FIX_HINT = "install them with `make setup` (Debian packages listed in setup/debian-packages.txt)"
DEFAULT_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/texmf/fonts/opentype")
DEFAULT_WORDS = "/usr/share/dict/words"
MIN_FONTS = 8
FONT_SIZES = (24, 28, 32, 36, 40, 44)
EASY_MAX_LENGTH = 8  # longest word of an easy sample  # few sizes, so the per-process font cache stays hot
_FONT_EXTENSIONS = (".ttf", ".otf")
_CACHE_VERSION = 2

# Faces that are not plain Latin text: symbols, math, small caps (lowercase drawn as capitals, so the
# label's case would lie), decorative initials, keyboard keys, hairline weights (vanish at 32 px).
_EXCLUDE = re.compile(r"\b(math|symbols?|icons?|emoji|dingbats?|ornaments?|initials|keyboard|(small ?)?caps|"
                      r"hairline|tamil)\b", re.IGNORECASE)
# Family-name words that only name a member of a family (weight, width, slope, optical size, vendor).
_STYLE_WORDS = frozenset("""thin extralight ultralight light lt book regular medium demi semibold bold
    extrabold heavy black cond cn condensed narrow wide extended text display std pro no2 no3 o tt adf gwf
    prop slanted unslanted quotation half italic oblique inclined upright minus code""".split())
# Different names for one design; grouped so that a held-out family is really unseen in training.
_SAME_DESIGN = {
    "Liberation Sans": "helvetica", "FreeSans": "helvetica", "TeX Gyre Heros": "helvetica",
    "Liberation Serif": "times", "FreeSerif": "times", "TeX Gyre Termes": "times",
    "FreeMono": "courier", "TeX Gyre Cursor": "courier", "Courier Prime": "courier",
    "DejaVu": "vera", "Verana": "vera", "Latin Modern": "latin modern", "Linux": "libertine",
    "Gentium": "gentium", "Go": "go", "Cabin": "cabin", "Karla": "karla", "Museum": "museum",
    "Romande": "romande", "Routed Gothic": "routed gothic", "Roadgeek": "roadgeek",
}
# The designs of everyday print are always trained on: a reader must know them.
_ALWAYS_TRAIN = frozenset({"helvetica", "times", "courier"})
# The independent test set's designs: the ones assets.held_out drew (one in five) from the fonts of
# setup/debian-packages.txt when this list was made. Listed, so that fonts a machine has beyond the
# packages (a desktop's, faces added to the packages later) only ever add training designs: the test
# set is the same images wherever the packages are installed, and figures measured on it compare
# across machines. Font directories lacking any of these (your own fonts) are split by the hash alone.
HELDOUT_DESIGNS = frozenset({"allerta", "arapey", "cabin", "caladea", "fanwood", "gillius", "goudy bookletter",
                             "jura", "liberation mono", "prociono", "tex gyre adventor", "vollkorn"})


@dataclass(frozen=True)
class SynthAssets:
    fonts: tuple[Path, ...]  # font files usable for the split
    backgrounds: tuple[Path, ...]  # natural/texture image files (may be empty -> procedural only)
    words: tuple[str, ...]  # word list


# ----------------------------------------------------------------------------------------------
# Asset discovery
# ----------------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    """'TeX Gyre Heros Cn' -> 'tex gyre heros'; CamelCase split so 'CabinSketch' == 'Cabin Sketch'."""
    name = re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", " ", name)
    return " ".join(w for w in re.split(r"[^a-z0-9]+", name.lower()) if w and w not in _STYLE_WORDS
                    and not w.isdigit())


_DESIGN_PREFIXES = sorted(((_norm(k), v) for k, v in _SAME_DESIGN.items()), key=lambda kv: -len(kv[0]))


def design_group(family: str) -> str:
    """The design a font family belongs to: the unit of the train/held-out split."""
    key = _norm(family)
    for prefix, group in _DESIGN_PREFIXES:
        if key == prefix or key.startswith(prefix + " "):
            return group
    return key


def _glyph_key(font: ImageFont.FreeTypeFont, char: str) -> bytes | None:
    im = Image.new("L", (96, 96))
    ImageDraw.Draw(im).text((16, 16), char, font=font, fill=255)
    return im.tobytes() if im.getbbox() else None


def _check_font(path: Path) -> tuple[bool, str, str]:
    """(has glyphs, family, style): True if the face draws a distinct glyph for every alphanumeric."""
    try:
        font = ImageFont.truetype(str(path), 32, layout_engine=ImageFont.Layout.BASIC)
        family, style = font.getname()
        family, style = family or path.stem, style or ""
        notdef = _glyph_key(font, "\ue000")  # a private-use code point: text fonts draw .notdef
        keys = [_glyph_key(font, c) for c in ALNUM]
    except OSError:
        return False, path.stem, ""
    complete = all(k is not None and k != notdef for k in keys)
    # Caps-only and symbol fonts repeat shapes; a few look-alikes (l/I/1, o/O) are normal.
    distinct = len(set(keys)) >= len(ALNUM) - 4
    return complete and distinct, family, style


def _scan_fonts(dirs: list[Path]) -> list[tuple[Path, str]]:
    """[(path, design group)] of usable faces, one per (family, style). The glyph check is cached on
    disk per file (bump _CACHE_VERSION when _check_font changes); the name rules are applied here."""
    cache_file = cache_dir() / f"fonts-v{_CACHE_VERSION}.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    changed = False
    faces: dict[tuple[str, str], tuple[Path, str]] = {}
    for path in files_under(dirs, _FONT_EXTENSIONS):
        try:
            st = path.stat()
        except OSError:
            continue
        stamp = [st.st_mtime_ns, st.st_size]
        entry = cache.get(str(path))
        if entry is None or entry[:2] != stamp:
            entry = stamp + list(_check_font(path))
            cache[str(path)] = entry
            changed = True
        _, _, ok, family, style = entry
        if ok and not _EXCLUDE.search(f"{family} {style}"):
            # One path per face: .ttf and .otf copies, optical sizes ("10 Regular", "12 Regular").
            style = " ".join(w for w in style.lower().split() if not w.isdigit())
            faces.setdefault((family.lower(), style), (path, design_group(family)))
    if changed:  # also forget fonts that are gone
        cache = {k: v for k, v in cache.items() if os.path.exists(k)}
        write_cache(cache_file, json.dumps(cache).encode())
    return sorted(faces.values())


def read_words(path: Path) -> tuple[str, ...]:
    """Alphanumeric words of a dict file, possessives dropped."""
    try:
        lines = path.read_text(encoding="utf-8", errors="ignore").split()
    except OSError:
        return ()
    valid = re.compile(r"[A-Za-z0-9]+")
    return tuple(w for w in lines if valid.fullmatch(w))  # drops "word's" and accented words


def discover_assets(split: str = "train", *, font_dirs=None, words_path=None,
                    background_dirs=None) -> SynthAssets:
    """The fonts, backgrounds and words of ``split`` ("train" or "heldout").

    Held-out font families and background images are never used by "train". Directories default
    to the environment variables OCRFRAME_FONT_DIRS / OCRFRAME_BACKGROUND_DIRS (os.pathsep-separated;
    an empty value means no natural backgrounds) and OCRFRAME_WORDS, then to the Debian locations.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    fdirs = dirs_from(font_dirs, "OCRFRAME_FONT_DIRS", DEFAULT_FONT_DIRS)
    faces = _scan_fonts(fdirs)
    if len(faces) < MIN_FONTS or len({g for _, g in faces}) < 2:
        raise FileNotFoundError(
            f"only {len(faces)} usable Latin font faces found under {', '.join(map(str, fdirs))} "
            f"(need >= {MIN_FONTS} from >= 2 families); {FIX_HINT}")
    wpath = Path(words_path or os.environ.get("OCRFRAME_WORDS") or DEFAULT_WORDS)
    words = read_words(wpath)
    if not words:
        raise FileNotFoundError(f"no word list at {wpath} (Debian package wamerican); {FIX_HINT}")
    found = {group for _, group in faces}
    if HELDOUT_DESIGNS <= found:  # the packaged fonts: the listed designs are the held-out ones
        train_only = _ALWAYS_TRAIN | (found - HELDOUT_DESIGNS)
    else:  # other fonts: one design in five, drawn by the hash
        train_only = _ALWAYS_TRAIN
    return SynthAssets(fonts=split_by_group(faces, split, always_train=train_only),
                       backgrounds=discover_backgrounds(split, background_dirs), words=words)


# ----------------------------------------------------------------------------------------------
# Per-process caches (rebuilt after a fork: FreeType faces and decoded images are not shared)
# ----------------------------------------------------------------------------------------------

_FONTS = ProcessLRU(512)
_DEGRADATION = effects.Degradation()  # blur, motion blur, noise, JPEG


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return _FONTS.get((path, size), lambda: ImageFont.truetype(
        str(path), size, layout_engine=ImageFont.Layout.BASIC))


class WordRenderer:
    """Draws one random word image per call to :meth:`render`.

    Args:
        assets: from :func:`discover_assets`.
        alphabet: characters a label may contain (words with other characters are skipped).
        max_length: longest label.
        height: the pipeline's input height; images come out ``height`` to ``2 * height`` tall.
    """

    def __init__(self, assets: SynthAssets, alphabet: str = ALNUM, max_length: int = 16, height: int = 32):
        self.alphabet, self.max_length, self.height = alphabet, max_length, height
        self._charset = frozenset(alphabet)
        self.words = tuple(w for w in assets.words if len(w) <= max_length
                           and any(set(c) <= self._charset for c in (w, w.lower(), w.upper())))
        self.digits = "".join(c for c in string.digits if c in self._charset)
        if not assets.fonts:
            raise FileNotFoundError(f"no fonts in the assets; {FIX_HINT}")
        # Families are drawn uniformly, then a face: Lato's 18 weights count as one design.
        groups: dict[str, list[Path]] = {}
        for path in assets.fonts:
            groups.setdefault(design_group(self._family(path)), []).append(path)
        self._groups_by_name = {g: tuple(groups[g]) for g in sorted(groups)}
        self.font_groups = list(self._groups_by_name.values())
        # Easy samples (see render_aligned's difficulty): everyday typefaces and short words.
        self.plain_font_groups = [tuple(groups[g]) for g in sorted(groups) if g in _ALWAYS_TRAIN] or self.font_groups
        self.short_words = tuple(w for w in self.words if len(w) <= EASY_MAX_LENGTH) or self.words
        self.backgrounds = assets.backgrounds

    @staticmethod
    def _family(path: Path) -> str:
        return _font(path, FONT_SIZES[0]).getname()[0] or path.stem

    @property
    def font_group_names(self) -> list[str]:
        """The design groups drawn from (the unit of the train/held-out split), sorted."""
        return list(self._groups_by_name)

    def only_fonts(self, names) -> "WordRenderer":
        """This renderer restricted to the design groups ``names`` (every sample is then drawn in
        them, easy ones too): an error lists the groups it has when one is not among them."""
        unknown = sorted(set(names) - set(self._groups_by_name))
        if unknown:
            raise ValueError(f"font groups {unknown} are not among this split's {len(self._groups_by_name)}: "
                             f"{', '.join(self._groups_by_name)}")
        self._groups_by_name = {g: faces for g, faces in self._groups_by_name.items() if g in set(names)}
        self.font_groups = self.plain_font_groups = list(self._groups_by_name.values())
        return self

    # -- text -----------------------------------------------------------------------------------

    def _fits(self, text: str) -> bool:
        return 0 < len(text) <= self.max_length and set(text) <= self._charset

    def _cased(self, text: str, rng: np.random.Generator) -> str:
        options = [text.lower(), text.capitalize(), text.upper()]
        cased = options[rng.choice(3, p=(0.5, 0.3, 0.2))]
        return cased if self._fits(cased) else next((o for o in options if self._fits(o)), text)

    def _random_string(self, rng: np.random.Generator) -> str:
        n = int(rng.integers(1, min(self.max_length, 12) + 1))
        pools = [self.alphabet,  # any mix, e.g. "xK3vQ"
                 string.ascii_uppercase + string.digits,  # codes and plates, e.g. "AB12C"
                 string.ascii_lowercase + string.digits]  # e.g. "v2b8"
        pool = [c for c in pools[rng.choice(3, p=(0.5, 0.3, 0.2))] if c in self._charset] or list(self.alphabet)
        return "".join(rng.choice(pool, n))

    def _digit_code(self, rng: np.random.Generator) -> str:
        d = self.digits
        kind = rng.choice(4, p=(0.35, 0.2, 0.2, 0.25))
        if kind == 0:  # a price or quantity: no leading zero
            text = str(int(rng.integers(0, 10 ** int(rng.integers(1, 6)))))
        elif kind == 1:  # a year
            text = str(int(rng.integers(1800, 2040)))
        elif kind == 2:  # a phone number without separators
            text = "".join(rng.choice(list(string.digits), int(rng.integers(7, 12))))
        else:
            text = "".join(rng.choice(list(string.digits), int(rng.integers(1, 9))))
        text = "".join(c for c in text if c in d)[: self.max_length]
        return text or self._random_string(rng)

    def sample_text(self, rng: np.random.Generator) -> str:
        """~60 % dictionary words, ~25 % random alphanumerics, ~15 % digit codes."""
        kind = rng.random()
        if kind < 0.6 and self.words:
            return self._cased(self.words[int(rng.integers(len(self.words)))], rng)
        if kind < 0.85 or not self.digits:
            return self._random_string(rng)
        return self._digit_code(rng)

    # -- glyph layers ---------------------------------------------------------------------------

    def _text_layers(self, text: str, font, rng: np.random.Generator,
                     plain: bool = False) -> tuple[Image.Image, int, np.ndarray]:
        """An RGB image whose bands are masks, R the text fill (with any underline), G the text with
        an outline stroke, B fragments of neighbouring lines; the text's height in it; and each
        character's centre (x, y) on it. ``plain``: no outline, underline or neighbouring lines."""
        size = font.size
        ascent, descent = font.getmetrics()
        pad = size // 2  # neighbouring lines are clipped by the canvas edge: only slivers remain
        stroke = int(rng.integers(1, max(2, size // 14) + 1)) if not plain and rng.random() < 0.12 else 0
        if rng.random() < 0.45:  # tracking: per-character placement, else natural spacing with kerning
            spacing = rng.uniform(-0.04, 0.35) * size
            advances = [font.getlength(c) + spacing + rng.normal(0, 0.02 * size) for c in text]
            baseline = rng.normal(0, 0.025 * size, len(text)) if rng.random() < 0.3 else np.zeros(len(text))
            runs = list(zip(text, np.cumsum([0.0] + advances[:-1]), baseline))
            width = sum(advances)
            starts = [dx for _, dx, _ in runs]
        else:
            runs, width = [(text, 0.0, 0.0)], font.getlength(text)
            starts = [font.getlength(text[:i]) for i in range(len(text))]
        canvas = (int(width + size) + 2 * pad, ascent + descent + 2 * pad)
        origin = (pad + size // 4, pad)
        centres = np.array([(origin[0] + x + font.getlength(c) / 2, origin[1] + 0.6 * ascent)
                            for c, x in zip(text, starts)], float).reshape(-1, 2)

        def draw_text(width_: int) -> Image.Image:
            band = Image.new("L", canvas)
            draw = ImageDraw.Draw(band)
            for chars, dx, dy in runs:
                draw.text((origin[0] + dx, origin[1] + dy), chars, font=font, fill=255,
                          stroke_width=width_, stroke_fill=255)
            return band

        fill = draw_text(0)
        box = fill.getbbox() or (0, 0, *canvas)
        if not plain and rng.random() < 0.08:  # underline
            y = origin[1] + ascent + max(1, descent // 3)
            ImageDraw.Draw(fill).line([(box[0], y), (box[2], y)], fill=255, width=max(1, size // 16))
        outlined = draw_text(stroke) if stroke else fill
        clutter = Image.new("L", canvas)
        if not plain and rng.random() < 0.12:  # lines above / below, as in a crop from a paragraph
            for direction in (-1, 1):
                if rng.random() < 0.7:
                    y = origin[1] + direction * (ascent + descent) * rng.uniform(1.0, 1.3)
                    ImageDraw.Draw(clutter).text((origin[0] + rng.uniform(-size, size), y),
                                                 self._random_string(rng) * 3, font=font, fill=255)
        return Image.merge("RGB", (fill, outlined, clutter)), box[3] - box[1], centres

    def _distort(self, layers: Image.Image, th: int, rng: np.random.Generator,
                 points: np.ndarray) -> tuple[Image.Image, np.ndarray]:
        """Rotation, shear and perspective in one homography; sometimes a sine curve. ``points``
        (x, y) on the layers are moved with them (the curve only shifts them vertically)."""
        w, h = layers.size
        if rng.random() < 0.65:
            src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
            dst = src + rng.normal(0, 0.06 * th, (4, 2)) * (rng.random() < 0.5)  # perspective
            dst[:, 0] += (dst[:, 1] - h / 2) * np.tan(np.radians(rng.normal(0, 8)))  # shear / slant
            angle = np.radians(np.clip(rng.normal(0, 2.5), -6, 6))
            c, s = np.cos(angle), np.sin(angle)
            dst = (dst - [w / 2, h / 2]) @ np.array([[c, s], [-s, c]])
            dst -= dst.min(0)
            size = tuple(int(v) + 1 for v in dst.max(0))
            layers = layers.transform(size, Image.PERSPECTIVE, effects.homography(src, dst), Image.BILINEAR)
            points = effects.apply_homography(effects.homography(dst, src), points)  # forward: src -> dst
        if rng.random() < 0.15:
            amp = rng.uniform(0.08, 0.25) * th
            period = rng.uniform(2.5, 6) * th
            phase = rng.uniform(0, 2 * np.pi)
            w, h = layers.size
            out_h = int(h + 2 * amp) + 1
            xs = list(range(0, w, 10)) + [w]
            dy = [amp + amp * np.sin(2 * np.pi * x / period + phase) for x in xs]
            mesh = [((x0, 0, x1, out_h), (x0, -d0, x0, out_h - d0, x1, out_h - d1, x1, -d1))
                    for x0, x1, d0, d1 in zip(xs, xs[1:], dy, dy[1:])]
            layers = layers.transform((w, out_h), Image.MESH, mesh, Image.BILINEAR)
        return layers, points

    # -- backgrounds ----------------------------------------------------------------------------

    # -- composition ----------------------------------------------------------------------------

    def render(self, rng: np.random.Generator) -> tuple[Image.Image, str]:
        """An RGB image ``height`` to ``2 * height`` tall and its label, exactly the characters drawn."""
        image, text, _ = self.render_aligned(rng)
        return image, text

    def render_aligned(self, rng: np.random.Generator,
                       difficulty: float = 1.0) -> tuple[Image.Image, str, list[float]]:
        """:meth:`render` (the same image for the same generator state), plus where each character
        of the label is drawn: its centre's column as a fraction of the image width.

        ``difficulty`` < 1 (a training curriculum) makes a share ``1 - difficulty`` of the samples
        easy (where the alphabet holds such words): a dictionary word of at most EASY_MAX_LENGTH
        letters in an everyday typeface, without geometric distortion, outline, underline, shadow,
        rules, neighbouring lines or uneven light (background, colours and the camera effects stay)."""
        easy = difficulty < 1 and bool(self.short_words) and rng.random() >= difficulty
        if easy:
            text = self._cased(self.short_words[int(rng.integers(len(self.short_words)))], rng)
        else:
            text = self.sample_text(rng)
        groups = self.plain_font_groups if easy else self.font_groups
        group = groups[int(rng.integers(len(groups)))]
        font = _font(group[int(rng.integers(len(group)))], int(rng.choice(FONT_SIZES)))
        layers, th, centres = self._text_layers(text, font, rng, plain=easy)
        if not easy:
            layers, centres = self._distort(layers, th, rng, centres)

        # Crop around the text with random margins (PIL pads outside the canvas with zeros).
        fill_band, outlined_band, _ = layers.split()
        x0, y0, x1, y1 = ImageChops.lighter(fill_band, outlined_band).getbbox() or (0, 0, *layers.size)
        th = y1 - y0
        top, bottom = y0 - int(th * rng.uniform(0.03, 0.35)), y1 + int(th * rng.uniform(0.03, 0.35))
        left, right = x0 - int(th * rng.uniform(0.03, 0.6)), x1 + int(th * rng.uniform(0.03, 0.6))
        masks = np.asarray(layers.crop((left, top, right, bottom)), np.float32) / 255
        positions = [float(np.clip((x - left) / (right - left), 0, 1)) for x in centres[:, 0]]
        h, w = masks.shape[:2]
        fill_a, clutter_a = masks[..., 0], masks[..., 2]
        ring_a = np.maximum(masks[..., 1] - fill_a, 0)

        bg = effects.background(self.backgrounds, h, w, rng)
        lum = effects.luminance(bg)
        text_region = fill_a > 0.5
        bg_lum = float(lum[text_region].mean() if text_region.any() else lum.mean())
        # Text contrasts with the background, more so on busy ones; an outline contrasts with the fill.
        fill_color = effects.contrasting(effects.random_color(rng), bg_lum, rng, 0.4 + min(float(lum.std()), 0.2))
        ring_color = effects.contrasting(effects.random_color(rng), float(effects.luminance(fill_color)), rng, 0.45)
        img = bg
        if not easy and rng.random() < 0.12:  # drop shadow
            shadow = Image.fromarray((masks[..., :2].max(-1) * 255).astype(np.uint8))
            d = max(1, int(th * 0.06))
            shadow = shadow.transform(shadow.size, Image.AFFINE, (1, 0, -int(rng.integers(-d, d + 1)), 0, 1, -d))
            shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
            sa = np.asarray(shadow, np.float32)[..., None] / 255 * rng.uniform(0.4, 0.8)
            img = img * (1 - sa) + (img * 0.25) * sa
        opacity = rng.uniform(0.8, 1.0)
        img = img * (1 - ring_a[..., None]) + ring_color * ring_a[..., None]
        if not easy and rng.random() < 0.15:  # two-tone fill
            t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
            second = effects.contrasting(effects.random_color(rng), bg_lum, rng, 0.4)
            fill_color = fill_color * (1 - t) + second * t
        a = (fill_a * opacity)[..., None]
        img = img * (1 - a) + fill_color * a
        if clutter_a.any():
            img = img * (1 - clutter_a[..., None]) + fill_color * clutter_a[..., None]
        if not easy and rng.random() < 0.06:  # a box edge or rule crossing the crop
            color = effects.contrasting(effects.random_color(rng), bg_lum, rng, 0.3)
            edge = int(rng.integers(4))
            thick = max(1, int(th * rng.uniform(0.03, 0.08)))
            sl = [(slice(0, thick), slice(None)), (slice(h - thick, h), slice(None)),
                  (slice(None), slice(0, thick)), (slice(None), slice(w - thick, w))][edge]
            img[sl] = color
        if not easy and rng.random() < 0.35:
            img = effects.uneven_light(img, rng)

        return self._degrade(effects.to_image(img), rng), text, positions

    def _degrade(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Resize to the output height, then the camera / scanner / compression effects."""
        out_h = int(rng.integers(self.height, 2 * self.height + 1))
        aspect = img.width / img.height * rng.uniform(0.85, 1.15)
        if rng.random() < 0.15:  # low resolution source, upsampled
            small_h = max(8, int(out_h * rng.uniform(0.35, 0.7)))
            img = img.resize((max(1, int(small_h * aspect)), small_h), Image.BILINEAR)
        img = img.resize((max(1, int(out_h * aspect)), out_h), Image.BILINEAR)
        return _DEGRADATION(img, rng, scale=out_h / 32)
