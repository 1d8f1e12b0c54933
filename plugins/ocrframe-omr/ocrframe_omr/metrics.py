"""Fragment accuracy and mean edit distance on pitch sequences (the paper's OMR metrics, §3.4).

fragment_acc        share of fragments whose whole pitch sequence is right
mean_edit_distance  mean over fragments of the edit distance between the predicted and the true
                    token sequences (insertions, deletions, substitutions of whole pitches)

With ``splits``, the metrics are also given per split (``clean/fragment_acc``, ...), the split
of a sample being the prefix of its key (``camera/2-17``); the log then shows one table of the
splits next to ``reference`` figures (the paper's).
"""
from __future__ import annotations

import editdistance
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log


def sequence_metrics(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Fragment accuracy and mean edit distance of (prediction, ground truth) space-separated token strings."""
    if not pairs:
        return dict(fragment_acc=0.0, mean_edit_distance=0.0)
    distances = [editdistance.eval(p.split(), g.split()) for p, g in pairs]
    return dict(fragment_acc=sum(d == 0 for d in distances) / len(pairs),
                mean_edit_distance=sum(distances) / len(pairs))


class PitchSequenceMetric(BaseMetric):
    """Args:
        splits: names of splits to report separately (keys ``split/...``), in table order.
        reference: rows to print next to ours, ``{system: {split: (fragment_acc, mean_edit_distance)}}``,
            accuracies as fractions.
    """

    default_prefix = ""

    def __init__(self, splits=(), reference: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.splits, self.reference = tuple(splits), reference or {}

    def process(self, data_batch, data_samples: list[dict]) -> None:
        self.results.extend((s["pred"], s["gt"], s.get("key") or "") for s in data_samples)

    def compute_metrics(self, results: list[tuple[str, str, str]]) -> dict[str, float]:
        metrics = sequence_metrics([(p, g) for p, g, _ in results])
        found = []
        for split in self.splits:
            pairs = [(p, g) for p, g, key in results if key.startswith(f"{split}/")]
            if pairs:
                found.append((split, len(pairs)))
                metrics.update({f"{split}/{k}": v for k, v in sequence_metrics(pairs).items()})
        if found:
            print_log("\n" + self.table(metrics, found), logger="current")
        return metrics

    def table(self, metrics: dict[str, float], found: list[tuple[str, int]]) -> str:
        """Markdown table: one row per system, one column per split, 'accuracy % / edit distance'."""
        lines = ["| system | " + " | ".join(f"{s} ({n})" for s, n in found) + " |",
                 "|---" * (len(found) + 1) + "|"]
        for system, row in self.reference.items():
            cells = [f"{row[s][0] * 100:.1f} % / {row[s][1]:.2f}" if s in row else "-" for s, _ in found]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        cells = [f"{metrics[f'{s}/fragment_acc'] * 100:.1f} % / {metrics[f'{s}/mean_edit_distance']:.2f}"
                 for s, _ in found]
        lines.append("| this model | " + " | ".join(cells) + " |")
        return "\n".join(lines)
