"""The embedded default data: word images rendered on the fly (see ``synth_text.py``).

Sample ``i`` is drawn from a generator seeded with ``(seed, i)``, so any split is reproducible by
seed and independent of workers, and an interrupted run sees the same data when it resumes.
Each sample also says where its characters are drawn (``char_x``: each character's centre as a
fraction of the image width; resizing keeps it), for the recognizer's ``alignment_loss``.
"""
from __future__ import annotations

import string

import numpy as np

from ocrframe.data.base import Curriculum, OcrDataset


class SynthWordDataset(Curriculum, OcrDataset):
    """Args:
        charset: labels are drawn from the characters it holds after its case policy
            (:func:`renderable_alphabet`): digits only for a digits charset, punctuation it adds in
            the random strings.
        length: samples in the split (for training, make it larger than the run ever reads).
        seed: selects the split; the validation and test configs use their own seeds.
        assets: "train" fonts/backgrounds, or "heldout" ones that training never sees (the
            independent test set).
        max_length: longest label drawn.
        difficulty: 1 draws every sample from the full distribution; d < 1 makes a share 1 - d of
            them easy (see ``WordRenderer.render_aligned``). ``DifficultyRamp`` raises it during
            training; it is shared with the DataLoader's (forked) workers.
        fonts: draw only from these font design groups (``WordRenderer.font_group_names`` lists a
            split's), e.g. to measure or fine-tune one typeface family.
    """

    def __init__(self, charset, pipeline=(), length: int = 1_000_000, seed: int = 0, assets: str = "train",
                 max_length: int = 16, difficulty: float = 1.0, fonts: list[str] | None = None,
                 on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        self.length, self.seed, self.assets, self.max_length = length, seed, assets, max_length
        self.fonts = list(fonts) if fonts else None  # design groups to draw from (default: all of the split)
        self._renderer = None
        self.difficulty = difficulty  # see Curriculum
        self.alphabet = renderable_alphabet(self.charset)  # what the renderer may draw
        # Found here, so that missing fonts or word list are said in the main process, not from inside
        # a worker; the workers inherit them.
        from ocrframe.data.synth_text import discover_assets

        self._assets = discover_assets(assets)

    def describe(self) -> str:
        fonts = f", fonts {', '.join(self.fonts)}" if self.fonts else ""
        return f"synthetic words ({self.assets} assets{fonts}, seed {self.seed})"

    def __len__(self) -> int:
        return self.length

    @property
    def renderer(self):
        if self._renderer is None:  # built lazily: each DataLoader worker builds its own
            from ocrframe.data.synth_text import WordRenderer

            self._renderer = WordRenderer(self._assets, alphabet=self.alphabet, max_length=self.max_length)
            if self.fonts:
                self._renderer.only_fonts(self.fonts)
        return self._renderer

    def sample_key(self, index: int) -> str:
        return f"{self.seed}-{index}"

    def load(self, index: int) -> dict:
        image, text, char_x = self.renderer.render_aligned(np.random.default_rng([self.seed, index]),
                                                               difficulty=self.difficulty)
        # char_x: where each character is drawn (fraction of the width), for alignment supervision
        return dict(image=image, text=text, key=self.sample_key(index), char_x=char_x)


def renderable_alphabet(charset) -> str:
    """The characters the word renderer may draw for ``charset``: those its case policy maps into
    the charset, letters and digits first in the renderer's own order (so the default charset
    draws exactly the renderer's default data), then the charset's ASCII punctuation (it appears in
    the random strings; dictionary words hold letters only). Other symbols (accented letters,
    other scripts) are not drawn: the training fonts are chosen for ASCII."""
    from ocrframe.data.synth_text import ALNUM

    fold = {"lower": str.lower, "upper": str.upper}.get(charset.case, str)
    symbols = set(charset.tokens)
    punctuation = "".join(t for t in charset.tokens if t in string.punctuation)
    alphabet = "".join(c for c in ALNUM + punctuation if fold(c) in symbols)
    if charset.separator != "" or not alphabet:
        raise ValueError(f"SynthWordDataset renders words of letters, digits and punctuation, one character per "
                         f"symbol, and {charset} holds none of them that way: use a dataset of your own images (--data)")
    return alphabet
