"""Width-bucketed batching for evaluation with the aspect ratio kept: images of similar width share
a batch, so little of each batch is padding."""
from __future__ import annotations

import logging

from torch.utils.data import BatchSampler

from ocrframe.data.batching import width_buckets

logger = logging.getLogger("ocrframe.data")
_TOLD: set[str] = set()  # dataset classes already reported as having no aspect_ratio


def aspect_ratio_of(dataset):
    """The dataset's ``aspect_ratio(index)``, or None. A dataset without one is evaluated in plain
    batches (more padding, slower): said once per dataset class and process."""
    method = getattr(dataset, "aspect_ratio", None)
    if callable(method):
        return method
    name = type(dataset).__name__
    if name not in _TOLD:
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
