"""Safe checkpoint loading, and checkpoints written so that a crash never leaves a broken one.

torch >= 2.6 loads with ``weights_only=True``: only tensors, containers and allowlisted classes
are unpickled, so a crafted file cannot run code. mmengine's checkpoints also hold the training
state: its message hub's ``HistoryBuffer`` objects and numpy scalars (best scores). Those few
data classes are allowlisted here, and a HistoryBuffer is pickled as its constructor arguments
(plain lists) rather than its ``__dict__``, which would need ``getattr`` -- a global that must never
be allowed, since it reaches arbitrary code. Resume thus works without turning ``weights_only`` off.

The config a checkpoint was trained with is stored as data: mmengine stores it as Python text
(``meta["cfg"]``), which ``Config.fromstring`` would execute, so :class:`CheckpointMetaHook`
replaces it with the config's dict as JSON (``meta["cfg_format"] = "json"``) and
:func:`stored_config` rebuilds a ``Config`` from that dict, refusing Python text and any ``type``
that is not a registered component (mmengine would otherwise import it by its dotted path and
call it). mmengine's resume executes ``meta["config"]`` (a key older OpenMMLab tools wrote) as
Python: :func:`load_checkpoint` drops it unread.

Saving: mmengine writes a checkpoint straight to its final name and the ``last_checkpoint`` pointer
with a plain ``open``, and deletes the oldest kept checkpoint *before* writing the new one; a kill
during a save can thus leave a truncated file that resume then picks. :class:`AtomicCheckpointHook`
writes every file to a temporary name, fsyncs it and renames it into place (a rename is atomic), then
points ``last_checkpoint`` at it the same way, and only then deletes what is beyond the last K.
"""
from __future__ import annotations

import copyreg
import json
import logging
import pickle
import re
from collections import deque
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader, IterBasedTrainLoop, find_latest_checkpoint

from ocrframe.charset import Charset
from ocrframe.fileio import atomic_write, remove_stale_temporaries
from ocrframe.loops import validates_at
from ocrframe.pretrained import find_weights, read_weights
from ocrframe.registry import unregistered_types

logger = logging.getLogger("ocrframe.checkpoint")
CONFIG_FORMAT = "json"  # meta["cfg_format"] of a config stored as data


def _reduce_history_buffer(buffer: HistoryBuffer):
    return HistoryBuffer, (buffer._log_history.tolist(), buffer._count_history.tolist(), buffer.max_length)


copyreg.pickle(HistoryBuffer, _reduce_history_buffer)

_numpy_scalar_types = [np.float64, np.float32, np.int64, np.int32, np.bool_]
TRAINING_STATE = [
    HistoryBuffer,
    np.dtype,
    np._core.multiarray.scalar,
    *(type(np.dtype(t)) for t in _numpy_scalar_types),
]
torch.serialization.add_safe_globals(TRAINING_STATE)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a file needing anything else is refused. A
    released model's name or a ``.safetensors`` weights file loads too (ocrframe/pretrained.py)."""
    weights = find_weights(path)
    if weights is not None:
        return read_weights(weights)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (an interrupted copy or download?); use another checkpoint")
    kind = file_kind(path)
    if kind == "safetensors":
        return read_weights(path)  # released weights under another suffix
    if kind is not None:  # torch.load would call an image or a config a refused pickle
        raise ValueError(f"{path} is not a checkpoint ({kind}); give a checkpoint file, a released model's name "
                         f"(`ocrframe models`) or a .safetensors file where the checkpoint goes: `ocrframe read "
                         f"CHECKPOINT_OR_MODEL IMAGE...`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's advice to turn weights_only off is left out: that would run the file's code
        detail = next((line.strip() for line in str(exc).splitlines()
                       if line.strip() and "weights_only" not in line and "Weights only" not in line), "")
        raise pickle.UnpicklingError(
            f"refused to load {path}: it holds Python objects that are not plain weights or ocrframe "
            f"training state, and unpickling them could run arbitrary code. Only load checkpoints you "
            f"trust" + (f"; details: {detail}" if detail else "")) from None
    except (RuntimeError, KeyError, EOFError, ValueError, OSError, IndexError) as exc:  # what torch raises on junk
        raise ValueError(f"{path} is not a checkpoint torch can read (truncated, or another kind of file): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint: it holds a {type(state).__name__}, not a dict of weights")
    meta = state.get("meta") if isinstance(state, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("config"), str):
        del meta["config"]  # Python text that mmengine's resume would execute (see the module docstring)
    return state


def file_kind(path: Path) -> str | None:
    """None for what torch.save writes (a zip archive; an older torch's pickle or tar archive),
    "safetensors" for a safetensors file, else what ``path`` looks like ("it looks like a PNG image")."""
    from PIL import Image

    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"\x80")) or head[257:262] == b"ustar":
        return None
    if head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= path.stat().st_size - 8:
        return "safetensors"  # an 8-byte little-endian length, then that many bytes of JSON header
    try:
        with Image.open(path) as image:
            return f"it looks like a {image.format} image"
    except (OSError, ValueError):
        pass
    text = head.decode("utf-8", "replace")
    if "\x00" not in text and text.count("\ufffd") <= 1:  # one: a character cut at the 512th byte
        return "it looks like text"
    return "it is not what torch.save or safetensors write"


def config_as_data(cfg: Config) -> str | None:
    """The config as JSON text (its dict), or None when it holds values JSON cannot hold (e.g. the
    classes of a lazy-import config): such a checkpoint is loaded with its config file named."""
    try:
        return json.dumps(cfg.to_dict(), ensure_ascii=False)
    except (TypeError, ValueError):
        return None


def store_config(meta: dict, cfg: Config) -> dict:
    """Put ``cfg`` in a checkpoint's ``meta`` as data (replacing mmengine's Python text)."""
    meta.pop("cfg", None)
    text = config_as_data(cfg)
    if text is None:
        logger.warning("the config holds values that are not plain data; checkpoints store no config and "
                       "load with the config file named (--config)")
    else:
        meta.update(cfg=text, cfg_format=CONFIG_FORMAT)
    return meta


def stored_config(state: dict, path: str | Path) -> Config:
    """The config a checkpoint stores, rebuilt from data without executing anything; an error
    saying what to do for a checkpoint whose config is Python text or names unregistered types."""
    meta = state.get("meta") if isinstance(state, dict) else None
    advice = "pass the config it was trained with (--config CONFIG, Reader.from_checkpoint(..., config=CONFIG))"
    if not isinstance(meta, dict) or "cfg" not in meta:
        raise ValueError(f"{path} stores no config; {advice}")
    if meta.get("cfg_format") != CONFIG_FORMAT:
        raise ValueError(f"{path} stores its config as Python text (an older ocrframe or plain mmengine wrote it); "
                         f"loading it would run that text as code, so it is not read: {advice}")
    try:
        data = json.loads(meta["cfg"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its stored config is not valid JSON ({exc}); {advice}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: its stored config is not a JSON object; {advice}")
    if "custom_imports" in data:
        raise ValueError(f"{path}: its stored config imports modules (custom_imports), which a stored config may "
                         f"not do; {advice}")
    unknown = unregistered_types(data)
    if unknown:
        raise ValueError(f"{path}: its stored config names types that are not registered components: "
                         f"{', '.join(map(repr, unknown[:5]))} (mmengine would import and call them); install "
                         f"the plugins that provide them, or {advice}")
    return Config(data)


def use_trained_model(cfg: Config, state: dict) -> Config:
    """``cfg`` with the model a checkpoint was trained as, where the checkpoint stores its config:
    one config file builds different models under different schedules (the CPU schedule's batch
    norm and alignment probe), and the weights fit the one they were trained with. The decoder stays
    the config's: it has no weights, and reading a trained model with another decoder is what a
    config may ask. A checkpoint that stores no usable config leaves ``cfg`` as it is (a mismatch is
    then reported on loading). The images are prepared by ``cfg``'s test pipeline: a warning says
    so where it is not the one the model was trained with (the config of another model, say)."""
    try:
        trained = stored_config(state, "checkpoint")
    except ValueError:
        return cfg
    difference = pipeline_difference(cfg.get("test_pipeline"), trained.get("test_pipeline"))
    if difference:
        logger.warning("the config given prepares images otherwise than the model was trained with (%s); images "
                       "are prepared as the config says: check that this is meant", difference)
    if "model" in trained and "model" in cfg:
        decoder = cfg.model.get("decoder")
        cfg.model = trained.model
        if decoder is not None:
            cfg.model.decoder = decoder
    return cfg


def pipeline_difference(given: list | None, trained: list | None) -> str:
    """How the test pipeline ``given`` differs from the one a model was ``trained`` with, in words;
    "" if alike (as data: a stored config holds lists where the file has tuples) or either is unknown."""
    if given is None or trained is None:
        return ""
    given, trained = (json.loads(json.dumps(pipeline, default=str)) for pipeline in (given, trained))
    if given == trained:
        return ""
    steps, trained_steps = ([step.get("type") if isinstance(step, dict) else step for step in pipeline]
                            for pipeline in (given, trained))
    if steps != trained_steps or not all(isinstance(step, dict) for step in given + trained):
        return f"steps {steps}, trained with {trained_steps}"
    return "; ".join(f"{ours.get('type')} {key}={ours.get(key)!r}, trained with {theirs.get(key)!r}"
                     for ours, theirs in zip(given, trained)
                     for key in sorted(set(ours) | set(theirs)) if ours.get(key) != theirs.get(key))


@CheckpointLoader.register_scheme(prefixes="", force=True)
def _load_local_checkpoint(filename, map_location=None) -> dict:
    """mmengine's loader for local files (resume, ``load_from``), replaced by the safe one above:
    older torch versions would otherwise unpickle anything."""
    return load_checkpoint(Path(filename).expanduser(), map_location=map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic writes (``backend_args=dict(backend="atomic_local")``)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        atomic_write(filepath, obj.encode(encoding))


register_backend("atomic_local", AtomicLocalBackend, force=True)


class AtomicCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook (same arguments) that writes checkpoints and ``last_checkpoint``
    atomically and deletes old checkpoints (beyond ``max_keep_ckpts``) only after the new one is
    in place. Local disks only; for other storage pass its ``backend_args``."""

    def __init__(self, *args, backend_args: dict | None = None, **kwargs):
        super().__init__(*args, backend_args=backend_args or dict(backend="atomic_local"), **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)  # sets out_dir
        if is_main_process() and Path(self.out_dir).is_dir():
            for tmp in remove_stale_temporaries(self.out_dir):
                runner.logger.info(f"removed {tmp.name}, left by a write that was interrupted")

    def _save_checkpoint_with_step(self, runner, step, meta):  # replaces mmengine's: see the module docstring
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        kept = list(getattr(self, "keep_ckpt_ids", []))
        if self.max_keep_ckpts > 0:
            if not kept or kept[-1] != step:
                kept.append(step)
            dropped, kept = kept[:-self.max_keep_ckpts], kept[-self.max_keep_ckpts:]
            self.keep_ckpt_ids = deque(kept)
            runner.message_hub.update_info("keep_ckpt_ids", kept)  # saved in the checkpoint, for resume
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        atomic_write(Path(runner.work_dir) / "last_checkpoint", str(self.last_ckpt).encode())
        for old in dropped if self.max_keep_ckpts > 0 else ():
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)


def match_classes(weights: dict, own: dict, trained: Charset, target: Charset) -> tuple[dict, list[str], list[str]]:
    """``weights`` of a model trained with the classes of ``trained``, with every per-class tensor
    (first dimension = the number of classes, in the weights and in ``own``, the model's state)
    rearranged to ``target``'s classes: a class both share keeps its trained row, a class new in
    ``target`` keeps the model's own (freshly initialised) row. Returns (weights, new symbols,
    dropped symbols)."""
    old_index = {symbol: i for i, symbol in enumerate(trained.classes)}
    rows = [old_index.get(symbol) for symbol in target.classes]
    matched = dict(weights)
    for key, value in weights.items():
        mine = own.get(key)
        if mine is None or not hasattr(value, "shape") or value.dim() == 0 or value.shape[0] != trained.num_classes \
                or mine.shape[0] != target.num_classes or tuple(value.shape[1:]) != tuple(mine.shape[1:]):
            continue
        rearranged = mine.detach().clone().to(value.dtype)
        for new, old in enumerate(rows):
            if old is not None:
                rearranged[new] = value[old]
        matched[key] = rearranged
    added = [s for s in target.classes if s is not None and s not in old_index]
    kept = set(target.classes)
    dropped = [s for s in trained.classes if s is not None and s not in kept]
    return matched, added, dropped


def load_weights(model, state_dict: dict, source, partial: bool = False, advice: str = "") -> list[str]:
    """Load ``state_dict`` into ``model``. Keys missing on either side or of another shape are an
    error naming them (the checkpoint is of another model), unless ``partial`` (fine-tuning from
    another model): then the matching ones load and the others are returned and logged."""
    own = model.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} (the model's: {tuple(own[k].shape)})" for k, v in state_dict.items()
                  if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
    usable = {k: v for k, v in state_dict.items() if not (k in own and hasattr(v, "shape")
                                                           and tuple(v.shape) != tuple(own[k].shape))}
    result = model.load_state_dict(usable, strict=False)  # plugins' load hooks may rename old keys
    problems = [(f"{len(keys)} {what}", keys) for what, keys in (
        ("of another shape", mismatched), ("missing from the checkpoint", result.missing_keys),
        ("not in the model", result.unexpected_keys)) if keys]
    if not problems:
        return []
    summary = "; ".join(f"{count}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}" for count, keys in problems)
    if not partial:
        raise ValueError(f"{source} does not match the model of the config: weights {summary}. "
                         + (advice or "Is it a checkpoint of another config? Pass the config it was trained with"))
    print_log(f"{source}: loaded the weights that match the model; skipped {summary}", logger="current",
              level=logging.WARNING)
    return [key for _, keys in problems for key in keys]


class CheckpointMetaHook(Hook):
    """What mmengine leaves out of checkpoints and resume. ``build_runner`` adds it to every runner.

    - The config is stored as data (:func:`store_config`), not as the Python text mmengine puts there.
    - Hooks with a state -- any hook with ``state_dict()`` and ``load_state_dict(state)``, such as
      TimeBudgetHook's clocks -- have it saved in ``checkpoint["hook_states"]`` and restored on resume.
    - A checkpoint is saved before the validation of its iteration (and saved again after it
      when the best score changed: ``meta["validated"]``), so a run resumed from one saved before
      validates first, as the interrupted run did (metrics, best checkpoint, re-planning).
    """

    priority = "VERY_LOW"  # before_train: after the other hooks have restored their state

    def __init__(self):
        self.validating = None  # the iteration whose validation has begun
        self.resumed_validated = False

    def before_val_epoch(self, runner) -> None:
        self.validating = runner.iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault("meta", {})
        store_config(meta, runner.cfg)
        meta["validated"] = meta.get("iter") == self.validating  # saved again by the validation's best-score update
        states = {key: hook.state_dict() for key, hook in stateful_hooks(runner).items()}
        if states:
            checkpoint["hook_states"] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resuming = getattr(runner, "_resume", False)
        source = runner._load_from or find_latest_checkpoint(runner.work_dir) or "the checkpoint"
        meta = checkpoint.get("meta") if isinstance(checkpoint.get("meta"), dict) else {}
        if resuming and not {"iter", "epoch"} <= set(meta):
            raise ValueError(f"cannot resume from {source}: it holds weights but no training state (iteration, "
                             f"epoch); to start a new run from its weights, train without --resume and with "
                             f"--cfg-options load_from={source}")
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        weights = {re.sub(r"^module\.", "", k): v for k, v in checkpoint.get("state_dict", checkpoint).items()}
        if not resuming:
            weights = checkpoint["state_dict"] = self._match_charset(weights, checkpoint, model, source)
        partial = bool(runner.cfg.get("load_partial", False)) and not resuming
        advice = (f"cannot resume from {source}: it is a checkpoint of another model. " if resuming else "") + (
            "Is it a checkpoint of another config? Pass the config it was trained with"
            + ("" if resuming else ", or load only the matching weights (fine-tuning): --cfg-options load_partial=True"))
        skipped = load_weights(model, weights, source, partial=partial, advice=advice)
        if skipped:  # mmengine loads the checkpoint next: only what fits
            checkpoint["state_dict"] = {k: v for k, v in weights.items() if k in model.state_dict()
                                        and tuple(getattr(v, "shape", ())) == tuple(model.state_dict()[k].shape)}
        if not resuming:
            return  # load_from: weights for a new run, whose hooks start afresh
        self.resumed_validated = bool(meta.get("validated"))
        saved = checkpoint.get("hook_states", {})
        for key, hook in stateful_hooks(runner).items():
            if key in saved:
                hook.load_state_dict(saved[key])

    @staticmethod
    def _match_charset(weights: dict, checkpoint: dict, model, source) -> dict:
        """Fine-tuning to another charset: the checkpoint's class rows rearranged to the model's."""
        try:
            trained = Charset.build(stored_config(checkpoint, source).model.charset)
        except (ValueError, KeyError, AttributeError, TypeError):
            return weights  # no stored charset: the weights must fit as they are
        target = getattr(model, "charset", None)
        if target is None or trained.classes == target.classes:
            return weights
        weights, added, dropped = match_classes(weights, model.state_dict(), trained, target)
        shown = lambda symbols: " ".join(symbols[:40]) + (" ..." if len(symbols) > 40 else "")  # noqa: E731
        print_log(f"{source}: the config's charset differs from the one the weights were trained with: kept the "
                  f"weights of {len(target.classes) - len(added)} shared classes"
                  + (f"; {len(added)} new classes start from fresh weights: {shown(added)}" if added else "")
                  + (f"; {len(dropped)} classes of the checkpoint are dropped: {shown(dropped)}" if dropped else ""),
                  logger="current", level=logging.WARNING)
        return weights

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not getattr(runner, "_resume", False) or runner.iter == 0 or not isinstance(loop, IterBasedTrainLoop) \
                or self.resumed_validated:
            return
        if validates_at(loop, runner.iter):
            runner.logger.info(f"resumed at iteration {runner.iter}, whose validation comes after its checkpoint: "
                               "validating first")
            runner.val_loop.run()


def stateful_hooks(runner) -> dict:
    """{key: hook} of the runner's hooks that have a state (``state_dict`` and ``load_state_dict``);
    the key is the class name, numbered from the second hook of a class on."""
    found, seen = {}, {}
    for hook in runner.hooks:
        if callable(getattr(hook, "state_dict", None)) and callable(getattr(hook, "load_state_dict", None)):
            name = type(hook).__name__
            seen[name] = seen.get(name, 0) + 1
            found[name if seen[name] == 1 else f"{name}#{seen[name]}"] = hook
    return found


def load_model_config(checkpoint: str | Path, config: str | Path | None = None) -> tuple[Config, dict]:
    """The config a checkpoint was trained with (stored in it as data by the runner, or ``config``,
    a file the user names) and its weights. A stored config is never executed (see the module docstring)."""
    state = load_checkpoint(checkpoint)
    if config is not None:
        if not Path(config).is_file():
            raise FileNotFoundError(f"config {config} does not exist")
        cfg = use_trained_model(Config.fromfile(str(config)), state)
    else:
        cfg = stored_config(state, checkpoint)
    return cfg, state.get("state_dict", state)


def build_trained_model(model_cfg: dict, weights: dict, source, partial: bool = False, advice: str = ""):
    """The recognizer ``model_cfg`` describes, in eval mode, with ``weights`` loaded (:func:`load_weights`)."""
    from ocrframe.registry import MODELS

    model = MODELS.build(model_cfg)
    load_weights(model, weights, source, partial=partial, advice=advice)
    return model.eval()


def load_model(checkpoint: str | Path, config: str | Path | None = None):
    """(recognizer in eval mode with the checkpoint's weights, its config)."""
    cfg, weights = load_model_config(checkpoint, config)
    return build_trained_model(cfg.model, weights, checkpoint), cfg
