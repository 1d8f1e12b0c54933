"""Samplers: the training order, drawn lazily (:class:`LazyInfiniteSampler`), and width-bucketed
batching for evaluation with the aspect ratio kept (:class:`WidthBucketBatchSampler`): images of
similar width share a batch, so little of each batch is padding."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import torch
from mmengine.dataset import InfiniteSampler
from torch.utils.data import BatchSampler

from ocrframe.data.batching import width_buckets

logger = logging.getLogger("ocrframe.data")
_TOLD: set[str] = set()  # dataset classes already reported as having no aspect_ratio


def global_order(size: int, shuffle: bool, seed: int, start: int = 0) -> Iterator[int]:
    """mmengine's ``InfiniteSampler`` order (all ranks together) from sample ``start`` on, drawn
    lazily: a permutation is turned into Python ints a slice at a time, and an unshuffled epoch is
    a ``range``. mmengine lists a whole epoch of ints first: for the synthetic words' 100M indices
    ~16 s and a 5.0 GB peak before the first batch on the AVX2 host, against 5-7 s and 1.1 GB here
    (``tools/benchmark.py sampler``; the permutation itself, ``torch.randperm``, is still drawn whole)."""
    epochs, offset = divmod(start, size)
    generator = torch.Generator()
    generator.manual_seed(seed)
    if shuffle:
        for _ in range(epochs):  # the generator moves on as in the epochs already drawn
            torch.randperm(size, generator=generator)
    while True:
        if shuffle:
            for chunk in torch.randperm(size, generator=generator)[offset:].split(1 << 16):
                yield from chunk.tolist()
        else:
            yield from range(offset, size)
        offset = 0


def start_at(sampler: InfiniteSampler, position: int) -> None:
    """Make an ``InfiniteSampler`` (mmengine's or :class:`LazyInfiniteSampler`) yield, for its rank,
    its share of the global order from sample ``position`` on (rank r takes every world_size-th
    sample from r), as if the samples before had been drawn, without drawing them."""
    sampler.indices = itertools.islice(global_order(sampler.size, sampler.shuffle, sampler.seed, position),
                                       sampler.rank, None, sampler.world_size)


class LazyInfiniteSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` (same arguments, the same samples in the same order for each
    seed and rank) that draws its order lazily (:func:`global_order`): a large dataset's training
    starts seconds sooner and gigabytes lighter."""

    def _indices_of_rank(self) -> Iterator[int]:
        start_at(self, 0)
        return self.indices


def aspect_ratio_of(dataset, quiet: bool = False):
    """The dataset's ``aspect_ratio(index)``, or None. A dataset without one is evaluated in plain
    batches (more padding, slower): said once per dataset class and process, unless ``quiet`` (a
    caller that groups such datasets by width another way)."""
    method = getattr(dataset, "aspect_ratio", None)
    if callable(method):
        return method
    name = type(dataset).__name__
    if not quiet and name not in _TOLD:
        _TOLD.add(name)
        logger.warning("%s has no aspect_ratio(index): its evaluation batches are not grouped by image width "
                       "(more padding, slower); give the dataset aspect_ratio(index) -> width / height to group "
                       "them", name)
    return None


class WidthBucketBatchSampler(BatchSampler):
    """Groups the indices the sampler yields by image aspect ratio, then cuts them into batches.

    Uses the dataset's ``aspect_ratio(index)`` (LMDB and gt.txt folders read it from the image
    header, without decoding); a dataset without one is batched in the sampler's order, which the
    log says once. The order of samples changes, not which samples are seen.
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        super().__init__(sampler, batch_size, drop_last)
        self.dataset = getattr(sampler, "dataset", None)
        self.aspect_ratio = aspect_ratio_of(self.dataset)
        self._ratios: dict[int, float] = {}

    def _ratio(self, index: int) -> float:
        if self.aspect_ratio is None:
            return 0.0  # all equal: width_buckets keeps the sampler's order
        if index not in self._ratios:
            self._ratios[index] = self.aspect_ratio(index)
        return self._ratios[index]

    def __iter__(self):
        indices = list(self.sampler)
        for batch in width_buckets([self._ratio(i) for i in indices], self.batch_size, width_step=None):
            if len(batch) == self.batch_size or not self.drop_last:
                yield [indices[j] for j in batch]
