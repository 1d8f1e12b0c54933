"""Training and evaluation on mmengine's Runner: config loading, schedules, data overrides."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from ocrframe import checkpoint  # also allowlists the training state for weights_only loads


def add_config_arguments(parser) -> None:
    parser.add_argument("config", help="config file, e.g. configs/crnn_vgg_bilstm_ctc.py")
    parser.add_argument("--work-dir", help="where logs, checkpoints and plots go (default work_dirs/CONFIG_NAME)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override settings, e.g. train_cfg.max_iters=100 model.decoder.type=GreedyDecoder")


def load_config(path: str, *, schedule: str = "auto", work_dir: str | None = None, cfg_options: dict | None = None,
                train_data: list[str] | None = None, val_data: list[str] | None = None,
                fine_tuning: bool = False) -> Config:
    """Read a config and apply, in order: the named schedule, dataset paths, --cfg-options.

    schedule "auto" picks ``schedules['finetune']`` when ``fine_tuning`` (training from trained
    weights) and the config has one, else ``schedules['cpu']`` when no GPU is present and the
    config's top-level settings otherwise; "paper" always keeps the top-level settings.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"config {path} does not exist; the shipped ones are in configs/")
    cfg = Config.fromfile(path)
    schedules = cfg.pop("schedules", {})
    if schedule == "auto" and fine_tuning and "finetune" in schedules:
        schedule = "finetune"
    elif schedule == "auto":
        schedule = "paper" if torch.cuda.is_available() or "cpu" not in schedules else "cpu"
    if schedule != "paper":
        name = schedule.replace("-", "_")
        if name not in schedules:
            raise KeyError(f"config {path} has no schedule {schedule!r}; it has: paper, "
                           + ", ".join(s.replace("_", "-") for s in schedules))
        cfg.merge_from_dict(schedules[name].to_dict())
    cfg.schedule = schedule
    if train_data:
        cfg.train_dataloader.dataset = dataset_for(train_data, cfg, cfg.train_pipeline)
    if val_data:
        use_data(cfg.val_dataloader, val_data, cfg)
    cfg.work_dir = work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(path).stem)
    if cfg_options:
        check_option_keys(cfg, cfg_options, path)
        cfg.merge_from_dict(cfg_options)
    for split in ("val_dataloader", "test_dataloader"):
        if cfg.get(split):
            mark_for_evaluation(cfg[split].dataset)
    # A unique name per run: two Runners in one process otherwise share a Visualizer.
    cfg.experiment_name = f"{Path(path).stem}_{time.strftime('%Y%m%d_%H%M%S')}_{time.monotonic_ns() % 10**6}"
    return cfg


# Top-level settings read besides the config's own keys: the Runner's arguments and ocrframe's.
OCRFRAME_SETTINGS = {"load_partial", "schedule", "test_after_train", "folder_dataset"}


def check_option_keys(cfg: Config, options: dict, path: str) -> None:
    """--cfg-options keys must start with a setting the config has or the runner reads: mmengine
    would add a misspelled one (``trian_cfg.max_iters``) as a new setting that nothing reads."""
    import difflib
    import inspect

    known = set(cfg.keys()) | set(inspect.signature(Runner.__init__).parameters) - {"self"} | OCRFRAME_SETTINGS
    for key in options:
        top = key.split(".", 1)[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
            raise ValueError(f"--cfg-options {key}: {path} has no setting '{top}'"
                             + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else
                                f"; its settings: {', '.join(sorted(cfg.keys()))}"))


def use_data(dataloader: dict, paths: list[str], cfg: Config) -> None:
    """Point an evaluation dataloader at LMDBs / folders, batching by image width."""
    dataloader.dataset = mark_for_evaluation(dataset_for(paths, cfg, cfg.test_pipeline))
    if len(paths) == 1:  # a ConcatDataset cannot report aspect ratios
        dataloader.batch_sampler = dict(type="WidthBucketBatchSampler")


def dataset_for(paths: list[str], cfg: Config, pipeline) -> dict:
    """Dataset config for data paths (several are concatenated): an LMDB, a folder read by the
    config's ``folder_dataset`` (e.g. a PrIMuS folder), or a folder with a gt.txt."""
    datasets = []
    folder_dataset = cfg.get("folder_dataset")
    for path in paths:
        p = Path(path)
        common = dict(charset=cfg.charset, pipeline=pipeline)
        if (p / "data.mdb").is_file() or (p.is_file() and p.suffix == ".mdb"):
            datasets.append(dict(type="LMDBDataset", path=path, **common))
        elif p.is_dir() and folder_dataset:
            datasets.append(dict(folder_dataset, root=path, **common))
        elif (p / "gt.txt").is_file():
            datasets.append(dict(type="GtFolderDataset", root=path, **common))
        else:
            raise FileNotFoundError(
                f"dataset {path} is not an LMDB (no data.mdb) nor a folder with a gt.txt"
                + ("" if p.exists() else " (it does not exist)")
                + "; tools/create_lmdb.py makes an LMDB from a gt.txt folder")
    if len(datasets) == 1:
        return datasets[0]
    return dict(type="ConcatDataset", datasets=datasets, ignore_keys=["name"])


def mark_for_evaluation(dataset_cfg):
    """Evaluation counts every sample once: datasets (a ConcatDataset's parts too) that would skip
    an unreadable image and serve the next one instead mark it (``on_bad_sample="mark"``: it
    counts as an error). "error" is kept; datasets without the setting are left as they are."""
    from ocrframe.data.base import OcrDataset
    from ocrframe.registry import DATASETS

    for d in [dataset_cfg, *dataset_cfg.get("datasets", [])]:
        kind = DATASETS.get(d["type"]) if isinstance(d.get("type"), str) else d.get("type")
        if isinstance(kind, type) and issubclass(kind, OcrDataset) and d.get("on_bad_sample", "skip") == "skip":
            d["on_bad_sample"] = "mark"
    return dataset_cfg


def build_dataset(dataset_cfg, raw: bool = False):
    """Build a dataset config (a ConcatDataset's parts included). ``raw`` leaves the pipelines
    out: samples then hold the image as loaded (a PIL image) and its label, as a user sees them."""
    from mmengine.registry import init_default_scope

    from ocrframe.registry import DATASETS

    init_default_scope("ocrframe")  # datasets nested in mmengine's (ConcatDataset) are looked up here
    dataset_cfg = Config(dict(dataset=dataset_cfg)).dataset.to_dict()  # a copy, whatever it was given as
    if raw:
        for d in [dataset_cfg, *dataset_cfg.get("datasets", [])]:
            if "pipeline" in d:
                d["pipeline"] = []
    return DATASETS.build(dataset_cfg)


def build_runner(cfg: Config) -> Runner:
    runner = Runner.from_cfg(cfg)
    runner.register_hook(checkpoint.CheckpointMetaHook())  # checkpoints store the config as data
    describe_schedule(cfg, runner)
    return runner


def describe_schedule(cfg: Config, runner: Runner) -> None:
    device = "GPU" if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    loop = cfg.train_cfg
    message = (f"device: {device}; schedule: {cfg.schedule} -- {loop.get('max_iters', '?')} iterations of "
               f"batch {cfg.train_dataloader.batch_size}, validation every {loop.get('val_interval', '?')}, "
               f"optimizer {cfg.optim_wrapper.optimizer.type} via {cfg.optim_wrapper.type}")
    if cfg.schedule.startswith("cpu"):
        message += " (no GPU found: the CPU schedule from the config's `schedules`)"
    print_log(message, logger=runner.logger, level=logging.INFO)
