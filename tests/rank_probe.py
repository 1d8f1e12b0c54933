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
            wrapper=type(runner.model).__name__, backend=torch.distributed.get_backend())))

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model
