"""Runner-level pieces: the CPU autocast optimizer wrapper, the curve plot hook, safe checkpoint
loading. Registered in the ``ocrframe`` scope so configs name them by type."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper

from ocrframe.data.sampler import WidthBucketBatchSampler
from ocrframe.data.transforms import pad_collate
from ocrframe.registry import DATA_SAMPLERS, FUNCTIONS, HOOKS, OPTIM_WRAPPERS

FUNCTIONS.register_module(module=pad_collate)
DATA_SAMPLERS.register_module(module=WidthBucketBatchSampler)


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Runs the forward pass under ``torch.autocast`` (bf16 by default) on any device, CPU included.

    mmengine's AmpOptimWrapper (fp16/bf16 with loss scaling) only runs on accelerators; bf16 needs
    no loss scaling, so on a CPU with bf16 support this is the mixed-precision path. The CTC head
    computes its loss in fp32 regardless.
    """

    def __init__(self, dtype: str = "bfloat16", **kwargs):
        super().__init__(**kwargs)
        self.dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device, dtype=self.dtype):
            yield


@HOOKS.register_module()
class CurvePlotHook(Hook):
    """Writes ``curves.png`` (training loss and validation metrics) to the work dir after every
    validation and at the end of training, from the runner's scalar log."""

    priority = "VERY_LOW"

    def __init__(self, metrics=("word_acc", "one_minus_ned"), filename: str = "curves.png"):
        self.metrics, self.filename = tuple(metrics), filename

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._plot(runner)

    def after_train(self, runner) -> None:
        self._plot(runner)

    def _plot(self, runner) -> None:
        scalars = Path(runner.log_dir) / "vis_data" / "scalars.json"
        if scalars.exists():
            plot_curves(scalars, Path(runner.work_dir) / self.filename, self.metrics)


def plot_curves(scalars_json: Path, out: Path, metrics=("word_acc", "one_minus_ned")) -> None:
    """Plot loss against iteration and the given validation metrics from mmengine's scalars.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in scalars_json.read_text().splitlines():
        record = json.loads(line)
        (train if "loss" in record else val).append(record)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot([r["iter"] for r in train], [r["loss"] for r in train], lw=0.8)
    ax_loss.set(xlabel="iteration", ylabel="CTC loss", yscale="log", title="training loss")
    for name in metrics:
        points = [(r["step"], r[name]) for r in val if name in r]
        if points:
            ax_val.plot(*zip(*points), marker="o", label=name)
    ax_val.set(xlabel="iteration", ylim=(0, 1), title="validation")
    ax_val.legend(loc="lower right")
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
