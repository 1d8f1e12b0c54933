"""A hook for the distributed tests, imported by a training config (``custom_imports``): each rank
records the keys of the samples it trained on and saves its final parameters."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ocrframe.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.keys: list[list[str]] = []

    def before_train(self, runner) -> None:
        self.initial = {name: p.detach().clone() for name, p in self._model(runner).named_parameters()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.keys.append(list(data_batch["data_samples"]["keys"]))

    def after_train(self, runner) -> None:
        final = {name: p.detach().clone() for name, p in self._model(runner).named_parameters()}
        rank = get_rank()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(dict(initial=self.initial, final=final), self.out_dir / f"params_rank{rank}.pt")
        (self.out_dir / f"keys_rank{rank}.json").write_text(json.dumps(dict(
            rank=rank, world_size=get_world_size(), keys=self.keys,
            wrapper=type(runner.model).__name__,
            backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None)))

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module()
class FileWriteProbeHook(Hook):
    """Records which rank writes the curve plot and the worst-errors grid (it wraps the functions
    the hooks write them with), counts the collectives each rank's network runs (a stand-in for
    SyncBatchNorm: one all-reduce per forward pass of the backbone), and puts a NaN pixel in the
    first training batch of rank ``nan_rank``."""

    priority = "LOWEST"  # after the hooks it watches

    def __init__(self, out_dir: str, nan_rank: int = 1):
        self.out_dir, self.nan_rank = Path(out_dir), nan_rank
        self.writes: list[str] = []
        self.collectives = 0

    def before_run(self, runner) -> None:
        import ocrframe.visualize
        import ocrframe.visualize as engine_plots

        for module, name in ((engine_plots, "plot_curves"), (ocrframe.visualize, "save_grid")):
            original = getattr(module, name)

            def recording(*args, _original=original, _name=name, **kwargs):
                self.writes.append(_name)
                return _original(*args, **kwargs)

            setattr(module, name, recording)

    def before_train(self, runner) -> None:
        def collective(module, inputs):
            if module.training:
                torch.distributed.all_reduce(torch.ones(7))
                self.collectives += 1

        RankProbeHook._model(runner).backbone.register_forward_pre_hook(collective)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if batch_idx == 0 and get_rank() == self.nan_rank:
            data_batch["inputs"][0, 0, 5, 5] = float("nan")

    def after_test_epoch(self, runner, metrics=None) -> None:
        rank = get_rank()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"writes_rank{rank}.json").write_text(json.dumps(dict(
            writes=self.writes, collectives=self.collectives, skipped_steps=runner.optim_wrapper.skipped_steps)))
