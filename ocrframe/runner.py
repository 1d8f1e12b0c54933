"""Training and evaluation on mmengine's Runner: the config, made ready in one place
(:func:`load_config`: schedule, data, options, checkpoint, resume, precision, distributed settings),
and the Runner built from it."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

# checkpoint also allowlists the training state for weights_only loads, and makes mmengine's loader safe
from ocrframe.checkpoint import CheckpointMetaHook, load_checkpoint, use_trained_model
from ocrframe.data.build import dataset_for, mark_for_evaluation, use_data
from ocrframe.optim import native_bf16, use_mixed_precision
from ocrframe.pretrained import find_weights


def add_config_arguments(parser) -> None:
    parser.add_argument("config", help="config file, e.g. configs/crnn_vgg_bilstm_ctc.py")
    parser.add_argument("--work-dir", help="where logs, checkpoints and plots go (default work_dirs/CONFIG_NAME)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override settings, e.g. train_cfg.max_iters=100 model.decoder.type=GreedyDecoder")


def load_config(path: str, *, schedule: str = "auto", work_dir: str | None = None, cfg_options: dict | None = None,
                train_data: list[str] | None = None, val_data: list[str] | None = None,
                checkpoint: str | None = None, checkpoint_state: dict | None = None,
                test_data: list[str] | None = None, tensorboard: bool = False,
                resume: bool | str | None = None, amp: bool = False, auto_scale_lr: bool = False,
                launcher: str | None = None, test_after_train: bool | None = None,
                load_from: str | None = None) -> Config:
    """Read a config and apply, in order: the named schedule, dataset paths, --cfg-options; then
    what the command asks for (each left alone when not given): the model of a ``checkpoint`` to
    test (the options still win; ``checkpoint_state``: its contents, where the caller has read
    them already) and ``test_data``; trained weights to start from (``load_from``:
    a checkpoint or a released model's name); TensorBoard; ``resume`` (True: the work dir's
    last checkpoint, or a checkpoint's path); mixed precision (``amp``); LR scaling; the
    distributed ``launcher``; and whether the test set is evaluated after training.

    schedule "auto" picks ``schedules['finetune']`` when starting from trained weights
    (``load_from``) and the config has one, else :func:`auto_schedule`; "paper" always keeps the
    top-level settings.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"config {path} does not exist; the shipped ones are in configs/")
    cfg = Config.fromfile(path)
    schedules = cfg.pop("schedules", {})
    if load_from and resume:
        raise ValueError("--load-from starts a new run from trained weights and --resume continues a run: use one")
    if schedule == "auto" and load_from and "finetune" in schedules:
        schedule = "finetune"
    elif schedule == "auto":
        schedule = auto_schedule(schedules)
    if schedule != "paper":
        for settings in schedule_chain(schedules, schedule, f"config {path}"):
            cfg.merge_from_dict(settings)
    cfg.schedule = schedule
    if train_data:
        cfg.train_dataloader.dataset = dataset_for(train_data, cfg, cfg.train_pipeline)
        if "shuffle" in cfg.train_dataloader.get("sampler", {}):
            # a config may keep its own data in order (random draws, batched by length or difficulty);
            # files come in the order they were written
            cfg.train_dataloader.sampler.shuffle = True
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
    if checkpoint is not None:
        use_trained_model(cfg, checkpoint_state if checkpoint_state is not None else load_checkpoint(checkpoint))
        if cfg_options:  # the user's settings still win over the checkpoint's model
            cfg.merge_from_dict(cfg_options)
        if test_data:
            use_data(cfg.test_dataloader, test_data, cfg)
        cfg.load_from = checkpoint
    if load_from:
        if find_weights(load_from) is None and not Path(load_from).is_file():  # fail before the runner starts
            raise FileNotFoundError(f"--load-from {load_from}: no such checkpoint, and no released model of that "
                                    "name (`ocrframe models` lists them)")
        cfg.load_from = load_from
        print(f"fine-tuning from {load_from} with the {cfg.schedule} schedule")
    if tensorboard:
        use_tensorboard(cfg)
    if resume is not None:
        use_resume(cfg, resume)
    if amp:
        print(f"mixed precision: {use_mixed_precision(cfg)}")
    if auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get("auto_scale_lr") or {}, enable=True)
    if launcher is not None:
        from ocrframe.distributed import prepare

        prepare(cfg, launcher)
    if test_after_train is not None:
        cfg.test_after_train = bool(test_after_train and cfg.get("test_dataloader"))  # TimeBudgetHook counts it in
    return cfg


def schedule_chain(schedules: dict, schedule: str, where: str = "the config") -> list[dict]:
    """The settings to merge, in order, for ``schedule``: a schedule may say ``based_on="NAME"``
    and holds only its changes, merged over that schedule's (and so on), so that a config which
    changes ``cpu`` changes every schedule built on it too."""
    chain, name = [], schedule.replace("-", "_")
    while name is not None:
        if name not in schedules:
            raise ValueError(f"{where} has no schedule {name.replace('_', '-')!r}"
                             + (f" (which {chain[-1][0]!r} is based on)" if chain else "")
                             + "; it has: paper, " + ", ".join(s.replace("_", "-") for s in schedules))
        if any(name == seen for seen, _ in chain):
            raise ValueError(f"{where}: schedules based on each other in a circle: "
                             + " -> ".join([*(seen for seen, _ in chain), name]))
        settings = schedules[name].to_dict()
        chain.append((name, settings))
        name = settings.pop("based_on", None)
    return [settings for _, settings in reversed(chain)]


def auto_schedule(schedules: dict) -> str:
    """The schedule for this machine: the config's top level ("paper") on a GPU or when the config
    has no ``cpu`` schedule; else ``cpu``, or ``cpu-fp32`` where the config has one and the CPU has
    no fast bf16 kernels (training then runs in fp32, a slower step)."""
    if torch.cuda.is_available() or "cpu" not in schedules:
        return "paper"
    return "cpu-fp32" if "cpu_fp32" in schedules and not native_bf16("cpu") else "cpu"


def use_resume(cfg: Config, resume: bool | str) -> None:
    """Resume from the work dir's last checkpoint (True) or from the checkpoint given."""
    cfg.resume = bool(resume)
    if isinstance(resume, str):
        if not Path(resume).is_file():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint")
        cfg.load_from = resume
    elif resume and not (Path(cfg.work_dir) / "last_checkpoint").is_file():
        # mmengine would log "resumed from None" and start from scratch
        raise FileNotFoundError(f"--resume: {cfg.work_dir} holds no checkpoint to resume from (no last_checkpoint); "
                                "train without --resume, or give the checkpoint: --resume CHECKPOINT")


def use_tensorboard(cfg) -> None:
    """Add mmengine's TensorBoard backend to the config's visualizer (event files in the run's
    vis_data/, next to scalars.json: `tensorboard --logdir WORK_DIR`)."""
    try:
        import tensorboard  # noqa: F401  (mmengine imports it only when the runner starts)
    except ImportError:
        raise ImportError("--tensorboard needs the tensorboard package: pip install 'ocrframe[tensorboard]'") from None
    visualizer = cfg.setdefault("visualizer", dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")]))
    if not any(b["type"] == "TensorboardVisBackend" for b in visualizer.vis_backends):
        visualizer.vis_backends.append(dict(type="TensorboardVisBackend"))


# Top-level settings read besides the config's own keys and the Runner's arguments: ocrframe's, and
# those mmengine's Runner reads from the config itself (mmengine/runner/runner.py, ``self.cfg.get``).
OCRFRAME_SETTINGS = {"load_partial", "schedule", "test_after_train", "folder_dataset"}
MMENGINE_CONFIG_SETTINGS = {"sync_bn", "model_wrapper_cfg", "find_unused_parameters", "compile",
                            "activation_checkpointing", "efficient_conv_bn_eval"}


def check_option_keys(cfg: Config, options: dict, path: str) -> None:
    """--cfg-options keys must start with a setting the config has or the runner reads: mmengine
    would add a misspelled one (``trian_cfg.max_iters``) as a new setting that nothing reads."""
    import difflib
    import inspect

    known = (set(cfg.keys()) | set(inspect.signature(Runner.__init__).parameters) - {"self"}
             | OCRFRAME_SETTINGS | MMENGINE_CONFIG_SETTINGS)
    for key in options:
        top = key.split(".", 1)[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
            raise ValueError(f"--cfg-options {key}: {path} has no setting '{top}'"
                             + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else
                                f"; its settings: {', '.join(sorted(cfg.keys()))}"))


def build_runner(cfg: Config) -> Runner:
    runner = Runner.from_cfg(cfg)
    runner.register_hook(CheckpointMetaHook())  # checkpoints store the config as data
    describe_schedule(cfg, runner)
    return runner


def describe_schedule(cfg: Config, runner: Runner) -> None:
    device = "GPU" if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    loop = cfg.train_cfg
    budget = next((h for h in cfg.get("custom_hooks", []) if h.get("type") == "TimeBudgetHook"), None)
    if budget:  # the hook sizes the run; max_iters is only its upper bound
        length = f"a {budget['minutes']:g}-minute budget (at most {loop.get('max_iters', '?')} iterations)"
    else:
        length = f"{loop.get('max_iters', '?')} iterations, validation every {loop.get('val_interval', '?')}"
    message = (f"device: {device}; schedule: {cfg.schedule} -- batch {cfg.train_dataloader.batch_size}, {length}, "
               f"optimizer {cfg.optim_wrapper.optimizer.type} via {cfg.optim_wrapper.type}")
    if cfg.schedule == "cpu-fp32":
        message += " (the config's CPU schedule for CPUs without fast bf16 kernels, which train in fp32)"
    elif cfg.schedule.startswith("cpu"):
        message += " (no GPU found: the CPU schedule from the config's `schedules`)"
    print_log(message, logger=runner.logger, level=logging.INFO)
