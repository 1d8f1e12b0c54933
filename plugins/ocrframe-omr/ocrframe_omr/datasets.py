"""Datasets of the OMR plugin: engraved synthetic snippets rendered on the fly, and PrIMuS /
Camera-PrIMuS folders. Both serve ``dict(image, text, key)`` with the pitch label as text."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ocrframe import BadSample, OcrDataset, ProcessLRU, decode_image, image_aspect_ratio, read_gt_lines
from ocrframe_omr.pitch import SemanticError, semantic_to_pitches
from ocrframe_omr.render import MAX_NOTES, MIN_NOTES, STYLES, MusicRenderer

NEW_LINE_EVERY = 8


class EngravedMusicDataset(OcrDataset):
    """Random C-major snippets of 3 to 20 notes, engraved by verovio and augmented per ``style``.

    Sample ``i`` is a snippet cut from an engraved line, drawn from generators seeded with
    ``(seed, line)`` and ``(seed, line, i)``: a split is fixed by its seed whatever the workers or
    the sampler. By default every sample has a line of its own. Engraving is the costly part
    (cairosvg: ~20x cutting and augmenting a snippet, `tools/benchmark.py omr-render`), so training
    sets ``lines``: samples then come from that many distinct lines, which each process engraves once
    and keeps in memory (~80 kB a line). Every 8th sample brings in a new line until there are
    ``lines``, the others use a random one of those already in, so the engraving is spread over
    the start of a run and a batch mixes many lines.

    Snippets have 3 to 20 notes, uniformly. With ``length_group`` > 1, the samples of each run
    of that many consecutive indices share their note count: read in order in batches of that
    size, a batch is of snippets of similar width and carries little padding.

    Args:
        length: samples in the split (for training, more than the run ever reads).
        seed: selects the split; validation and test configs use their own seeds.
        style: "clean", "synthesized" or "camera" (see ``ocrframe_omr.render``).
        lines: number of distinct engraved lines, or None for one per sample.
        length_group: consecutive samples sharing their note count (1: each draws its own).
    """

    def __init__(self, charset, pipeline=(), length: int = 1_000_000, seed: int = 0, style: str = "synthesized",
                 lines: int | None = None, length_group: int = 1, on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {style!r}")
        if lines is not None and lines < 1:
            raise ValueError(f"lines must be a positive number of engraved lines or None, not {lines!r}")
        self.length, self.seed, self.style, self.lines, self.length_group = length, seed, style, lines, length_group
        self._renderer = None
        self._cache = ProcessLRU(lines or 1)

    def describe(self) -> str:
        return f"engraved music ({self.style}, seed {self.seed})"

    def __len__(self) -> int:
        return self.length

    @property
    def renderer(self) -> MusicRenderer:
        if self._renderer is None:  # built lazily: each DataLoader worker builds its own
            self._renderer = MusicRenderer(self.style)
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
        number = self.line_number(index)
        count = None
        if self.length_group > 1:
            group = np.random.default_rng([self.seed, index // self.length_group, 1 << 32])
            count = int(group.integers(MIN_NOTES, MAX_NOTES + 1))
        rng = np.random.default_rng([self.seed, number, index])
        image, text = self.renderer.snippet(self.line(number), rng, count)
        return dict(image=image, text=text, key=f"{self.style}/{self.seed}-{index}")


class PrimusDataset(OcrDataset):
    """A PrIMuS or Camera-PrIMuS folder: one sub-folder per sample holding ``<id>.png`` (or the
    camera version's ``<id>_distorted.jpg``) and ``<id>.semantic``; or any folder of images with a
    ``gt.txt`` (``relative/path<TAB>C4 E4 G4``).

    The label is the sequence of note pitches of the semantic encoding (see
    :func:`ocrframe_omr.pitch.semantic_to_pitches`): clefs, signatures, rests and barlines are
    dropped; ``accidentals`` says what happens to sharps and flats ("skip" the sample, read the
    "natural" staff position, "keep" the token, or "error"); ``clefs`` limits the clefs accepted
    (the synthetic training data is in treble clef, "G2"). Unusable samples are skipped and
    counted by reason, or raise with on_bad_sample="error".

    Args:
        root: the folder.
        image: "png" (clean PrIMuS), "distorted" (Camera-PrIMuS' ``_distorted.jpg``) or "auto"
            (the distorted image where there is one).
    """

    def __init__(self, root: str, charset, pipeline=(), image: str = "auto", accidentals: str = "skip",
                 clefs=("G2",), gt_file: str = "gt.txt", on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        if image not in ("auto", "png", "distorted"):
            raise ValueError(f"image must be 'auto', 'png' or 'distorted', not {image!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"PrIMuS folder {self.root} does not exist")
        if (self.root / gt_file).is_file():
            entries = [(e.path, e.label) for e in read_gt_lines(self.root / gt_file)]
        else:
            entries = list(self._semantic_entries(image, accidentals, tuple(clefs) if clefs else None))
        if not entries and not self.skipped.total():
            raise ValueError(f"{self.root} has neither a {gt_file} nor sample folders with a .semantic file "
                             "(PrIMuS layout: ID/ID.png and ID/ID.semantic)")
        self.entries = [e for e, _ in self.scan_labels(((e, e[0], e[1]) for e in entries),
                                                        len(entries) + self.skipped.total())]

    def _semantic_entries(self, image: str, accidentals: str, clefs):
        for semantic in sorted(self.root.rglob("*.semantic")):
            stem = semantic.with_suffix("")
            key = str(semantic.parent.relative_to(self.root) / stem.name)
            candidates = {"png": [stem.with_suffix(".png")],
                          "distorted": [stem.parent / f"{stem.name}_distorted.jpg"],
                          "auto": [stem.parent / f"{stem.name}_distorted.jpg", stem.with_suffix(".png")]}[image]
            path = next((p for p in candidates if p.is_file()), candidates[-1])
            try:
                pitches = semantic_to_pitches(semantic.read_text(encoding="utf-8"), accidentals, clefs)
            except SemanticError as exc:
                self._reject(BadSample(key, exc.reason, exc.detail))
                continue
            yield str(path.relative_to(self.root)), " ".join(pitches)

    def _reject(self, bad: BadSample) -> None:
        if self.on_bad_sample == "error":
            self.skip(bad)  # raises, naming the sample and the fix
        self.skipped.add(bad.reason, bad.key)

    def describe(self) -> str:
        return f"PrIMuS folder {self.root}"

    def __len__(self) -> int:
        return len(self.entries)

    def aspect_ratio(self, index: int) -> float:
        return image_aspect_ratio(self.root / self.entries[index][0])

    def load(self, index: int) -> dict:
        path, label = self.entries[index]
        return dict(image=decode_image(self.root / path, path), text=label, key=path)
