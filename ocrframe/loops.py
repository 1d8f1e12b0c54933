"""Resuming an iteration-based training at its data position without loading what was skipped.

mmengine's ``IterBasedTrainLoop`` restores the data position of a resumed run by drawing every
batch already trained on through the DataLoader -- reading and decoding each image -- before
training goes on: at iteration 200k with batch 64, 12.8M images per process. The loop here starts
the ``InfiniteSampler`` at that position instead: the same samples in the same order follow, and
the skipped ones are never loaded. The position is counted in samples of the global order (all
ranks together) and kept in the checkpoint with the world size, so a run resumed on another
number of processes goes on from the same sample -- with a warning about the learning rate.
"""
from __future__ import annotations

import logging

from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from ocrframe.data.sampler import start_at


POSITION = "train_data_position"  # message hub key: {"samples": global samples drawn, "world_size": N}


def resume_message(old_world: int, new_world: int, batch_size: int, auto_scale_lr: bool) -> str:
    """The warning for a run resumed on another number of processes than it was trained on."""
    scaled = (f"--auto-scale-lr scaled them for {old_world} x {batch_size} and does not rescale a resumed run"
              if auto_scale_lr else f"the global batch is now {new_world * batch_size} instead of "
              f"{old_world * batch_size}")
    return (f"resuming a run trained on {old_world} process(es) with {new_world}: the data goes on from the same "
            f"sample, but the learning rates are the checkpoint's ({scaled}); to train at another scale, start a new "
            "run from the weights (load_from) instead")


def validates_at(loop, iteration: int) -> bool:
    """Whether ``loop`` validates after training iteration ``iteration``: every ``val_interval``
    iterations from ``val_begin``, counted from the loop's ``val_from`` (0 for mmengine's loops),
    and at the end."""
    return (loop.runner.val_loop is not None and iteration >= loop.val_begin
            and ((iteration - getattr(loop, "val_from", 0)) % loop.val_interval == 0 or iteration == loop.max_iters))


class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` (same arguments) that resumes the data position by
    starting the sampler there (see the module docstring) rather than by loading the batches
    already trained on. With a sampler other than ``InfiniteSampler`` it falls back to mmengine's way.

    Its validations are counted from ``val_from`` (mmengine's, from iteration 0): a plan that changes
    the interval midway (TimeBudgetHook) counts from the last validation, so the next one comes a
    whole interval after it rather than at the next multiple of the new interval, which can be a few
    iterations later."""

    val_from = 0

    def run(self):
        """mmengine 0.10.7's ``IterBasedTrainLoop.run``, but for how the data position is restored."""
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        if self._iter > 0:
            self._restore_data_position()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self._count_samples()  # before the iteration's hooks save a checkpoint
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if validates_at(self, self._iter):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")
        return self.runner.model

    def _count_samples(self) -> None:
        hub = self.runner.message_hub
        position = hub.get_info(POSITION) or dict(samples=0)
        world = get_world_size()
        hub.update_info(POSITION, dict(samples=position["samples"] + self.dataloader.batch_size * world,
                                       world_size=world))

    def _restore_data_position(self) -> None:
        world, batch_size = get_world_size(), self.dataloader.batch_size
        position = self.runner.message_hub.get_info(POSITION)
        if position is None:  # a checkpoint from before positions were kept: assume the same world size
            position = dict(samples=self._iter * batch_size * world, world_size=world)
        if position["world_size"] != world:
            print_log(resume_message(position["world_size"], world, batch_size,
                                     bool((self.runner.auto_scale_lr or {}).get("enable"))),
                      logger="current", level=logging.WARNING)
        sampler = getattr(self.dataloader, "sampler", None)
        if not isinstance(sampler, InfiniteSampler):
            print_log(f"{type(sampler).__name__} cannot start at a position: loading the {self._iter} batches "
                      "trained on to skip them (use InfiniteSampler to skip them without loading)",
                      logger="current", level=logging.WARNING)
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            return
        start_at(sampler, position["samples"])
        # a fresh iterator: the one made when the loop was built has started on the old position
        self.dataloader_iterator = type(self.dataloader_iterator)(self.dataloader)
        print_log(f"resumed the data at sample {position['samples']} of the global order (iteration {self._iter}) "
                  "without loading the samples before it", logger="current", level=logging.INFO)
