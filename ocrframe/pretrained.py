"""Released models: trained weights that load without pickle, found by name.

A released model is two files side by side:

- ``NAME.safetensors``: the weights (safetensors: a header of JSON and raw tensor bytes, nothing
  executable) and, in the header's metadata, the config the model was trained as, as JSON data
  (rebuilt like a checkpoint's stored config: ocrframe/checkpoint.py, never executed).
- ``NAME.md``: its model card. The YAML front matter says what tools read (name, weights file, its
  SHA-256, a one-line summary, metrics); the text says what people read (training command, data,
  host and wall time, limits, licence).

Plugins publish models through the ``ocrframe_models`` hook by returning the paths of their model
cards; ocrframe's own are in ``ocrframe/models/``. A name is looked up among them; the weights file's
SHA-256 must match its card's, so a truncated or altered file is refused before it is read. Every
place that takes a checkpoint path also takes a model name or a ``.safetensors`` file
(:func:`ocrframe.checkpoint.load_checkpoint` dispatches here).

``tools/release_model.py`` writes both files from a training checkpoint.
"""
from __future__ import annotations

import difflib
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

logger = logging.getLogger("ocrframe.pretrained")
FORMAT = "ocrframe-model/1"  # metadata["format"] of a released weights file
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ModelCard:
    """What a model card's front matter declares, and where the card is."""

    name: str
    weights: Path
    sha256: str
    summary: str
    card: Path
    plugin: str = "?"
    metrics: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path, plugin: str = "?") -> "ModelCard":
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if not text.startswith("---\n") or "\n---\n" not in text[4:]:
            raise ValueError(f"model card {path} has no YAML front matter (a block between '---' lines at the top)")
        front = yaml.safe_load(text[4:text.index("\n---\n", 4)])
        missing = [key for key in ("name", "weights", "sha256", "summary") if not (isinstance(front, dict) and front.get(key))]
        if missing:
            raise ValueError(f"model card {path}: its front matter lacks {', '.join(missing)}")
        return cls(name=str(front["name"]), weights=path.parent / str(front["weights"]), sha256=str(front["sha256"]),
                   summary=str(front["summary"]), card=path, plugin=plugin, metrics=dict(front.get("metrics") or {}))


_AVAILABLE: dict[str, ModelCard] | None = None


def available_models() -> dict[str, ModelCard]:
    """Every released model the installed plugins publish, by name (read once; no network, no cache)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        from ocrframe.plugins import load_plugins

        _AVAILABLE = model_cards(load_plugins())
    return _AVAILABLE


def model_cards(loader) -> dict[str, ModelCard]:
    """{name: card} of the models a plugin loader's plugins publish; a card that cannot be read, or
    a name another plugin took first, is reported through the loader and left out."""
    cards: dict[str, ModelCard] = {}
    for origin, paths in loader.published_models():
        for path in paths:
            try:
                card = ModelCard.read(path, plugin=str(origin))
            except (OSError, ValueError, yaml.YAMLError) as exc:
                loader.report(f"plugin '{origin.plugin}' failed to list its models: {type(exc).__name__}: {exc}")
                continue
            if card.name in cards:
                loader.report(f"plugin '{origin.plugin}': model name {card.name!r} is already taken by "
                              f"{cards[card.name].plugin}; its card {card.card} is ignored")
            else:
                cards[card.name] = card
    return cards


CHECKPOINT_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin", SUFFIX}  # what makes a path a file's, not a model's name


def find_weights(source: str | Path) -> Path | None:
    """The weights file ``source`` names: a released model's (its SHA-256 checked), or ``source``
    itself when it is a ``.safetensors`` file; None for anything else (a training checkpoint). A
    name that is neither a file nor a released model is an error naming the models; a file named
    like a released model is used instead of it, with a warning."""
    text = str(source)
    if Path(text).suffix == SUFFIX:
        return Path(text)
    if "/" in text or "\\" in text:
        return None
    models = available_models()
    if text not in models:
        if not Path(text).exists() and Path(text).suffix not in CHECKPOINT_SUFFIXES:
            raise FileNotFoundError(no_such_model(text, "checkpoint file or released model"))
        return None
    if Path(text).is_file():  # a checkpoint path works wherever a name does (documented); a folder never wins
        _say_the_file_is_used(text, Path(text).resolve())
        return None
    return released_weights(text)


def released_weights(name: str) -> Path:
    """The weights file of the released model ``name``, checked against its card's SHA-256."""
    models = available_models()
    if name not in models:
        raise ValueError(no_such_model(name))
    card = models[name]
    if not card.weights.is_file():
        raise FileNotFoundError(f"model {name}: its weights file {card.weights} is missing (named in {card.card})")
    digest = file_digest(card.weights)
    if digest != card.sha256:
        raise ValueError(f"model {name}: {card.weights} is not the file its model card {card.card} describes "
                         f"(SHA-256 {digest[:16]}..., expected {card.sha256[:16]}...): it is truncated or was "
                         f"altered; reinstall the package that ships it ({card.plugin})")
    return card.weights


def no_such_model(name: str, what: str = "released model") -> str:
    """The error for ``name``, which is no released ``what``: the installed models, and the closest."""
    names = sorted(available_models())
    by_lower = {n.lower(): n for n in names}  # CRNN-EN, crnn_en: the case is no part of the likeness
    close = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.6)
    return (f"no {what} is named {name!r}; installed: {', '.join(names) or 'none'} (`ocrframe models`)"
            + (f"; did you mean {by_lower[close[0]]!r}?" if close else ""))


@functools.lru_cache(maxsize=None)
def _say_the_file_is_used(name: str, path: Path) -> None:  # once: one read looks the name up several times
    logger.warning("%s: using the file %s, not the released model of that name (rename the file, or run from "
                   "another folder, to use the model)", name, path)


def read_weights(path: str | Path) -> dict:
    """A released weights file as a checkpoint dict: ``state_dict`` (fp32 tensors) and ``meta``
    with the stored config, as a training checkpoint holds them."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key).float() for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file (truncated, or not a weights file?): {exc}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not an ocrframe model (metadata format "
                         f"{metadata.get('format')!r}, expected {FORMAT!r}); load its weights into a model yourself")
    return {"state_dict": state, "meta": {"cfg": metadata.get("cfg"), "cfg_format": metadata.get("cfg_format")}}


def write_weights(state_dict: dict, meta: dict, path: str | Path, dtype=None) -> Path:
    """Write ``state_dict`` (cast to ``dtype`` if given) with a checkpoint's ``meta`` (the stored
    config: ``cfg`` and ``cfg_format``, see ``checkpoint.store_config``) as metadata; atomic."""
    from safetensors.torch import save

    from ocrframe.fileio import atomic_write

    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
               for k, v in state_dict.items()}
    metadata = {"format": FORMAT, "cfg": meta["cfg"], "cfg_format": meta["cfg_format"]}
    atomic_write(Path(path), save(tensors, metadata=metadata))
    return Path(path)


def file_digest(path: Path) -> str:
    """The file's SHA-256, hashed once per version of the file (size and modification time): one
    read loads a model several times (its config, then its weights, then the ONNX cache's key)."""
    stat = path.stat()
    return _digest_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_front_matter(name: str, weights: Path, summary: str, metrics: dict) -> str:
    """The YAML front matter of a model card for ``weights`` (tools/release_model.py writes it)."""
    front = dict(name=name, weights=weights.name, sha256=sha256_of(weights), summary=summary, metrics=dict(metrics))
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n"
