"""Hooks of the CPU training recipe (the configs' ``cpu`` schedules): they shape the first part of
training so a CPU leaves CTC's initial plateau in minutes (measurements: docs/benchmarks.md).

- :class:`AlignmentLossDecay` fades out the recognizer's frame-level alignment loss and, with
  ``handover=True``, hands the backbone over from it to CTC meanwhile.
- :class:`DifficultyRamp` raises the share of full-difficulty synthetic samples from ``start`` to 1.

Both set their value from the iteration alone, so a resumed run continues exactly where it was.
"""
from __future__ import annotations

import logging

from mmengine.hooks import Hook
from mmengine.logging import print_log



def _ramp(iteration: int, max_iters: int, fraction: float) -> float:
    """0 at the start of training, 1 once ``fraction`` of it has passed, linear in between."""
    return min(1.0, iteration / max(fraction * max_iters, 1e-9))


def _check_fraction(fraction: float) -> float:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    return fraction


class AlignmentLossDecay(Hook):
    """Lowers the recognizer's ``alignment_weight`` linearly from the config's value
    (``model.alignment_loss``) to 0 over the first ``fraction`` of training, so the alignment loss
    starts the run and CTC alone finishes it. ``handover``: the share of CTC's gradient that reaches
    the backbone (``backbone_ctc_gradient``) rises from 0 to 1 meanwhile, so the backbone's first
    features are shaped by the alignment loss alone."""

    priority = "LOW"  # after TimeBudgetHook has set max_iters

    def __init__(self, fraction: float = 0.3, handover: bool = False):
        self.fraction = _check_fraction(fraction)
        self.handover = handover
        self.initial = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        if self.initial is None:
            self.initial = model.alignment_weight
        progress = _ramp(runner.iter, runner.train_loop.max_iters, self.fraction)
        model.alignment_weight = self.initial * (1.0 - progress)
        runner.message_hub.update_scalar("train/alignment_weight", model.alignment_weight)  # logged with the loss
        if self.handover and self.initial > 0:  # without the alignment loss, CTC alone teaches the backbone
            model.backbone_ctc_gradient = progress
            runner.message_hub.update_scalar("train/backbone_ctc_gradient", progress)


class DifficultyRamp(Hook):
    """A curriculum over a training dataset with a ``difficulty`` (``SynthWordDataset``, the OMR
    snippets): ``start`` at the first iteration, rising linearly to 1 (the full data) once
    ``fraction`` of training has passed. At difficulty d a share 1 - d of the samples is easy."""

    priority = "LOW"

    def __init__(self, start: float = 0.0, fraction: float = 0.3):
        if not 0 <= start <= 1:
            raise ValueError(f"start must be in [0, 1], not {start}")
        self.start, self.fraction = start, _check_fraction(fraction)
        self._warned = False

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        dataset = runner.train_loop.dataloader.dataset
        if not hasattr(dataset, "difficulty"):
            if not self._warned:
                print_log(f"DifficultyRamp: the training dataset {type(dataset).__name__} has no difficulty; "
                          "training on it as it is", logger="current", level=logging.WARNING)
                self._warned = True
            return
        if not self._warned:
            self._warn_unless_shared(runner.train_loop.dataloader)
        ramp = _ramp(runner.iter, runner.train_loop.max_iters, self.fraction)
        dataset.difficulty = self.start + (1.0 - self.start) * ramp
        runner.message_hub.update_scalar("train/difficulty", dataset.difficulty)

    def _warn_unless_shared(self, dataloader) -> None:
        """The difficulty reaches DataLoader workers through memory they inherit when forked;
        workers started by 'spawn' or 'forkserver' get a copy and would keep the first value."""
        import multiprocessing

        context = dataloader.multiprocessing_context
        method = context.get_start_method() if context is not None else multiprocessing.get_start_method()
        if dataloader.num_workers > 0 and method != "fork":
            print_log(f"DifficultyRamp: DataLoader workers are started by {method!r}, so they would not see "
                      "the difficulty change; set multiprocessing_context='fork' or num_workers=0",
                      logger="current", level=logging.WARNING)
        self._warned = True
