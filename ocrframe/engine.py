"""Runner-level pieces: the CPU autocast optimizer wrapper, the curve plot and worst-errors hooks.
Registered in the ``ocrframe`` scope so configs name them by type."""
from __future__ import annotations

import contextlib
import heapq
import itertools
import json
from pathlib import Path

import editdistance

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper

from ocrframe.data.sampler import WidthBucketBatchSampler
from ocrframe.data.transforms import pad_collate
from ocrframe.metrics import benchmark_form
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
        if scalar_logs(runner.work_dir):
            plot_curves(runner.work_dir, Path(runner.work_dir) / self.filename, self.metrics)


def scalar_logs(work_dir: str | Path) -> list[Path]:
    """mmengine's ``vis_data/scalars.json`` of every run in a work dir (a resumed training is a
    new run), oldest first; or the one of a single run directory."""
    work_dir = Path(work_dir)
    own = work_dir / "vis_data" / "scalars.json"
    return [own] if own.is_file() else sorted(work_dir.glob("*/vis_data/scalars.json"))


def training_curves(work_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) over all the runs of a work dir, by iteration; where
    runs overlap (after resuming from an earlier checkpoint) the later run wins."""
    logs = scalar_logs(work_dir)
    if not logs:
        raise FileNotFoundError(f"{work_dir} holds no training log (*/vis_data/scalars.json): is it a work dir?")
    train, val = {}, {}
    for log in logs:
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                train[record["iter"]] = record
            else:
                val[record.get("step")] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val, key=lambda k: k or 0)]


def plot_curves(work_dir: str | Path, out: str | Path, metrics=("word_acc", "one_minus_ned")) -> Path:
    """Plot training loss against iteration and the validation metrics of a work dir's runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = training_curves(work_dir)
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
    out = Path(out)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


@HOOKS.register_module()
class WorstErrorsHook(Hook):
    """After a test, draws the worst misreadings -- the image as the model saw it, the truth and
    the prediction -- to ``worst_errors.png`` in the work dir. Worst = largest normalised edit
    distance, then the most confident. An error is judged as the word accuracy judges it."""

    priority = "VERY_LOW"

    def __init__(self, num: int = 40, filename: str = "worst_errors.png"):
        self.num, self.filename = num, filename
        self._worst: list = []
        self._seen = self._errors = 0
        self._order = itertools.count()

    def before_test_epoch(self, runner) -> None:
        self._worst, self._seen, self._errors = [], 0, 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        images, widths = data_batch["inputs"], data_batch["data_samples"]["widths"]
        for image, width, out in zip(images, widths, outputs):
            self._seen += 1
            pred, truth = out["pred"], out["gt"]
            if benchmark_form(pred) == benchmark_form(truth):
                continue
            self._errors += 1
            badness = (editdistance.eval(pred, truth) / max(len(pred), len(truth), 1), out["score"])
            entry = (badness, next(self._order), image[..., : int(width)].clone(), truth, pred, out["score"])
            if len(self._worst) < self.num:
                heapq.heappush(self._worst, entry)
            else:
                heapq.heappushpop(self._worst, entry)

    def after_test_epoch(self, runner, metrics=None) -> None:
        from ocrframe.visualize import GREY, INK, RED, Cell, save_grid, to_pil

        if not self._worst:
            runner.logger.info(f"no misread image among {self._seen}: no {self.filename}")
            return
        worst = sorted(self._worst, reverse=True)
        cells = [Cell(to_pil(image), [(f"truth: {truth}", INK), (f"read:  {pred}", RED), (f"score {score:.2f}", GREY)])
                 for _, _, image, truth, pred, score in worst]
        path = save_grid(cells, Path(runner.work_dir) / self.filename)
        runner.logger.info(f"{self.filename}: the {len(worst)} worst of {self._errors} misreadings "
                           f"among {self._seen} test images: {path}")
