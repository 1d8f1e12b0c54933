"""A metric: the share of characters read at their position."""
from mmengine.evaluator import BaseMetric

from ocrframe import hookimpl


class PositionalCharAccuracy(BaseMetric):
    default_prefix = ""

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            truth = sample["gt"] or ""
            right = sum(a == b for a, b in zip(sample["pred"], truth))
            self.results.append((right, max(len(truth), len(sample["pred"]), 1)))

    def compute_metrics(self, results) -> dict:
        return dict(char_acc=sum(r for r, _ in results) / max(sum(n for _, n in results), 1))


@hookimpl
def ocrframe_register(slots):
    slots.metric.register_module(module=PositionalCharAccuracy)
