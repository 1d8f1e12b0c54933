"""Datasets of the OMR plugin: engraved synthetic snippets rendered on the fly, and PrIMuS /
Camera-PrIMuS folders. Both serve ``dict(image, text, key)`` with the pitch label as text."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ocrframe import BadSample, Curriculum, OcrDataset, ProcessLRU, decode_image, image_aspect_ratio, read_gt_lines
from ocrframe_omr.pitch import SemanticError, agnostic_to_pitches, semantic_to_pitches
from ocrframe_omr.render import ASSETS, MARGIN_SPACES, MAX_NOTES, MIN_NOTES, STYLES, MusicRenderer, check_margins

NEW_LINE_EVERY = 8
EASY_MAX_NOTES = 6  # a curriculum's easy snippets: 3 to 6 notes, unaugmented
ENCODINGS = ("auto", "semantic", "agnostic")


class EngravedMusicDataset(Curriculum, OcrDataset):
    """Random C-major snippets of 3 to 20 notes, engraved by verovio and augmented per ``style``.

    Sample ``i`` is a snippet cut from an engraved line, drawn from generators seeded with
    ``(seed, line)`` and ``(seed, line, i)``: a split is fixed by its seed whatever the workers or
    the sampler. By default every sample has a line of its own. Engraving is the costly part
    (verovio and resvg: ~5-20x cutting and augmenting a snippet, `tools/benchmark.py omr-render`), so training
    sets ``lines``: samples then come from that many distinct lines, which each process engraves once
    and keeps in memory (~80 kB a line). Every 8th sample brings in a new line until there are
    ``lines``, the others use a random one of those already in, so the engraving is spread over
    the start of a run and a batch mixes many lines.

    Snippets have 3 to 20 notes, uniformly. With ``length_group`` > 1, the samples of each run
    of that many consecutive indices share their note count: read in order in batches of that
    size, a batch is of snippets of similar width and carries little padding.

    ``difficulty`` < 1 (a training curriculum, see ``DifficultyRamp``) makes a share 1 - d of the
    snippets (of the groups, with ``length_group``) easy: 3 to 6 notes, engraved clean, without
    the style's augmentation. Held-out incipits ignore it.

    ``assets="heldout"`` makes the independent split training never samples: each sample is a
    whole incipit with the margins of a page, engraved with settings disjoint from the training
    ones (``ocrframe_omr.render.ENGRAVINGS``), keyed ``heldout_<style>/...``.

    Args:
        length: samples in the split (for training, more than the run ever reads).
        seed: selects the split; validation and test configs use their own seeds.
        style: "clean", "synthesized" or "camera" (see ``ocrframe_omr.render``).
        assets: "train" (snippets cut from lines) or "heldout" (whole incipits, held-out engraving).
        lines: number of distinct engraved lines, or None for one per sample.
        length_group: consecutive samples sharing their note count (1: each draws its own).
        difficulty: 1 (the default) draws every snippet from the style's full distribution.
        margins: staff spaces a snippet keeps above and below its staff, drawn from this range
            (default ``ocrframe_omr.render.MARGIN_SPACES``, 2.75-3.75). A wider range in training
            makes the model read pitches against the staff lines it sees rather than at fixed
            heights (a trial, and what it cost: docs/benchmarks.md).
    """

    def __init__(self, charset, pipeline=(), length: int = 1_000_000, seed: int = 0, style: str = "synthesized",
                 assets: str = "train", lines: int | None = None, length_group: int = 1,
                 difficulty: float = 1.0, margins: tuple[float, float] = MARGIN_SPACES, on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        if assets not in ASSETS:
            raise ValueError(f"assets must be one of {ASSETS}, not {assets!r}")
        if lines is not None and lines < 1:
            raise ValueError(f"lines must be a positive number of engraved lines or None, not {lines!r}")
        if assets == "heldout" and lines is not None:
            raise ValueError("lines is for training snippets cut from shared lines; held-out samples are whole "
                             "incipits, one engraving each: leave lines=None")
        self.length, self.seed, self.style, self.lines, self.length_group = length, seed, style, lines, length_group
        self.assets, self.margins = assets, check_margins(margins)
        self.split = style if assets == "train" else f"heldout_{style}"
        self._renderer = None
        self._cache = ProcessLRU(lines or 1)
        self.difficulty = difficulty  # see Curriculum

    def describe(self) -> str:
        return f"engraved music ({self.split}, seed {self.seed})"

    def __len__(self) -> int:
        return self.length

    @property
    def renderer(self) -> MusicRenderer:
        if self._renderer is None:  # built lazily: each DataLoader worker builds its own
            self._renderer = MusicRenderer(self.style, assets=self.assets, margins=self.margins)
        return self._renderer

    def line(self, number: int):
        return self._cache.get(number, lambda: self.renderer.line(np.random.default_rng([self.seed, number])))

    def line_number(self, index: int) -> int:
        if not self.lines:
            return index
        available = min(self.lines, index // NEW_LINE_EVERY + 1)
        if index % NEW_LINE_EVERY == 0 and index // NEW_LINE_EVERY < self.lines:
            return index // NEW_LINE_EVERY
        return int(np.random.default_rng([self.seed, index, 1 << 33]).integers(available))

    def load(self, index: int) -> dict:
        count, easy = None, False
        if self.length_group > 1:
            group = np.random.default_rng([self.seed, index // self.length_group, 1 << 32])
            count = int(group.integers(MIN_NOTES, MAX_NOTES + 1))
            easy = self.difficulty < 1 and group.random() >= self.difficulty
        elif self.difficulty < 1:
            group = np.random.default_rng([self.seed, index, 1 << 35])
            easy = group.random() >= self.difficulty
        if easy:
            count = int(group.integers(MIN_NOTES, EASY_MAX_NOTES + 1))
        key = f"{self.split}/{self.seed}-{index}"
        if self.assets == "heldout":
            rng = np.random.default_rng([self.seed, index, 1 << 34])
            incipit = self.renderer.incipit(rng, count)
            return dict(image=self.renderer.finish(incipit.ink, incipit.space, rng), text=incipit.label, key=key)
        number = self.line_number(index)
        rng = np.random.default_rng([self.seed, number, index])
        image, text, note_x = self.renderer.snippet_aligned(self.line(number), rng, count, augment=not easy)
        # char_x: where each note is drawn (fraction of the width), for the recognizer's alignment loss
        return dict(image=image, text=text, key=key, char_x=note_x)


class PrimusDataset(OcrDataset):
    """A PrIMuS or Camera-PrIMuS folder as distributed: one sub-folder per sample (at any depth,
    e.g. ``package_aa/ID/``) holding ``ID.png`` (Camera-PrIMuS adds ``ID_distorted.jpg``) and its
    encodings ``ID.semantic`` and ``ID.agnostic``; or any folder of images with a ``gt.txt``
    (``relative/path<TAB>C4 E4 G4``).

    The label is the sequence of note pitches, from the semantic encoding (see
    :func:`ocrframe_omr.pitch.semantic_to_pitches`) or from the agnostic one (staff positions read
    in the clef, :func:`ocrframe_omr.pitch.agnostic_to_pitches`): clefs, signatures, rests and
    barlines are dropped; ``accidentals`` says what happens to sharps and flats ("skip" the sample,
    read the "natural" staff position, "keep" the token, or "error"); ``clefs`` limits the clefs
    accepted (the synthetic training data is in treble clef, "G2") and ``keys`` the key signatures
    (semantic only; None accepts all). Unusable samples are skipped and counted by reason -- each
    other clef or key is a reason of its own -- and logged when the folder is read, or raise with
    on_bad_sample="error".

    Args:
        root: the folder.
        image: "png" (clean PrIMuS), "distorted" (Camera-PrIMuS' ``_distorted.jpg``) or "auto"
            (the distorted image where there is one).
        encoding: "semantic", "agnostic", or "auto" (semantic where a sample has it, else agnostic).
    """

    labels_cleaned = True  # scan_labels cleaned them once: not again for every sample

    def __init__(self, root: str, charset, pipeline=(), image: str = "auto", accidentals: str = "skip",
                 clefs=("G2",), keys=None, encoding: str = "auto", gt_file: str = "gt.txt",
                 on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        if image not in ("auto", "png", "distorted"):
            raise ValueError(f"image must be 'auto', 'png' or 'distorted', not {image!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"PrIMuS folder {self.root} does not exist")
        if (self.root / gt_file).is_file():
            entries = [(e.path, e.label) for e in read_gt_lines(self.root / gt_file)]
        else:
            entries = list(self._encoded_entries(image, encoding, accidentals, tuple(clefs) if clefs else None,
                                                 tuple(keys) if keys else None))
        if not entries and not self.skipped.total():
            raise ValueError(f"{self.root} has neither a {gt_file} nor sample folders with a .semantic or .agnostic "
                             "file (PrIMuS layout: ID/ID.png with ID/ID.semantic and ID/ID.agnostic)")
        self.entries = [(path, clean) for (path, _), clean in self.scan_labels(((e, e[0], e[1]) for e in entries),
                                                                                len(entries) + self.skipped.total())]

    def _encoded_entries(self, image: str, encoding: str, accidentals: str, clefs, keys):
        stems = sorted({p.with_suffix("") for suffix in (".semantic", ".agnostic") for p in self.root.rglob(f"*{suffix}")})
        for stem in stems:
            key = str(stem.relative_to(self.root))
            candidates = {"png": [stem.with_suffix(".png")],
                          "distorted": [stem.parent / f"{stem.name}_distorted.jpg"],
                          "auto": [stem.parent / f"{stem.name}_distorted.jpg", stem.with_suffix(".png")]}[image]
            path = next((p for p in candidates if p.is_file()), candidates[-1])
            semantic, agnostic = stem.with_suffix(".semantic"), stem.with_suffix(".agnostic")
            use = semantic if encoding == "semantic" or (encoding == "auto" and semantic.is_file()) else agnostic
            if not use.is_file():
                self._reject(BadSample(key, f"no .{encoding} file", f"{use.name} is missing; encoding='auto' reads "
                                       "whichever of .semantic / .agnostic a sample has"))
                continue
            text = use.read_text(encoding="utf-8")
            try:
                pitches = (semantic_to_pitches(text, accidentals, clefs, keys) if use is semantic
                           else agnostic_to_pitches(text, accidentals, clefs))
            except SemanticError as exc:
                self._reject(BadSample(key, exc.reason, exc.detail))
                continue
            yield str(path.relative_to(self.root)), " ".join(pitches)

    def _reject(self, bad: BadSample) -> None:
        if self.on_bad_sample == "error":
            self.skip(bad)  # raises, naming the sample and the fix
        self.skipped.add(bad.reason, bad.key, bad.detail)

    def describe(self) -> str:
        return f"PrIMuS folder {self.root}"

    def __len__(self) -> int:
        return len(self.entries)

    def sample_key(self, index: int) -> str:
        return self.entries[index][0]

    def sample_label(self, index: int) -> str:
        return self.entries[index][1]

    def aspect_ratio(self, index: int) -> float:
        return image_aspect_ratio(self.root / self.entries[index][0])

    def load(self, index: int) -> dict:
        path, label = self.entries[index]
        return dict(image=decode_image(self.root / path, path), text=label, key=path)
