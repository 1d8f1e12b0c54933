"""Width-bucketed batching for evaluation with the aspect ratio kept: images of similar width share
a batch, so little of each batch is padding."""
from __future__ import annotations

from torch.utils.data import BatchSampler

from ocrframe.data.batching import width_buckets


class WidthBucketBatchSampler(BatchSampler):
    """Groups the indices the sampler yields by image aspect ratio, then cuts them into batches.

    Needs a dataset with ``aspect_ratio(index)`` (LMDB and gt.txt folders read it from the image
    header, without decoding). The order of samples changes, not which samples are seen.
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        super().__init__(sampler, batch_size, drop_last)
        dataset = getattr(sampler, "dataset", None)
        if not callable(getattr(dataset, "aspect_ratio", None)):
            raise TypeError(f"WidthBucketBatchSampler needs a dataset with aspect_ratio(index); "
                            f"{type(dataset).__name__} has none -- use the default batch sampler for it")
        self.dataset = dataset
        self._ratios: dict[int, float] = {}

    def _ratio(self, index: int) -> float:
        if index not in self._ratios:
            self._ratios[index] = self.dataset.aspect_ratio(index)
        return self._ratios[index]

    def __iter__(self):
        indices = list(self.sampler)
        for batch in width_buckets([self._ratio(i) for i in indices], self.batch_size, width_step=None):
            if len(batch) == self.batch_size or not self.drop_last:
                yield [indices[j] for j in batch]
