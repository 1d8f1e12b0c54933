"""The embedded default data: word images rendered on the fly (see ``synth_text.py``).

Sample ``i`` is drawn from a generator seeded with ``(seed, i)``, so any split is reproducible by
seed and independent of workers, and an interrupted run sees the same data when it resumes.
"""
from __future__ import annotations

import numpy as np

from ocrframe.data.base import OcrDataset


class SynthWordDataset(OcrDataset):
    """Args:
        length: samples in the split (for training, make it larger than the run ever reads).
        seed: selects the split; the validation and test configs use their own seeds.
        assets: "train" fonts/backgrounds, or "heldout" ones that training never sees (the
            independent test set).
        max_length: longest label drawn.
    """

    def __init__(self, charset, pipeline=(), length: int = 1_000_000, seed: int = 0, assets: str = "train",
                 max_length: int = 16, on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        self.length, self.seed, self.assets, self.max_length = length, seed, assets, max_length
        self._renderer = None

    def describe(self) -> str:
        return f"synthetic words ({self.assets} assets, seed {self.seed})"

    def __len__(self) -> int:
        return self.length

    @property
    def renderer(self):
        if self._renderer is None:  # built lazily: each DataLoader worker builds its own
            from ocrframe.data.synth_text import WordRenderer, discover_assets

            self._renderer = WordRenderer(discover_assets(self.assets), max_length=self.max_length)
        return self._renderer

    def sample_key(self, index: int) -> str:
        return f"{self.seed}-{index}"

    def load(self, index: int) -> dict:
        image, text = self.renderer.render(np.random.default_rng([self.seed, index]))
        return dict(image=image, text=text, key=self.sample_key(index))
