"""ocrframe: a plugin-based, registry-driven OCR framework. Reference model: CRNN.

The names in ``__all__`` are the public API, the one plugins import (docs/plugins.md). Only the
plugin hook marker and the slots are imported with the package; every other name is imported when
first used, so ``from ocrframe import hookimpl`` loads neither the model, inference and checkpoint
modules nor onnx or the lexicon libraries, and leaves mmengine's checkpoint loader alone until a
checkpoint is read.
"""
from __future__ import annotations

import importlib

from ocrframe import base_configs  # noqa: F401  (configs inherit ours as "ocrframe::NAME")
from ocrframe.plugins import hookimpl, load_plugins

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # the model and its results
    "Charset": "ocrframe.charset", "LabelError": "ocrframe.charset",
    "Prediction": "ocrframe.model", "Recognizer": "ocrframe.model",
    "Reader": "ocrframe.inference",
    # for backbones: a padded batch read as single images
    "masked_forward": "ocrframe.padding",
    # the registries plugins register into, and what is registered
    "SLOTS": "ocrframe.registry", "Slots": "ocrframe.registry",
    "Component": "ocrframe.discovery", "list_components": "ocrframe.discovery",
    "loaded_plugins": "ocrframe.discovery", "failed_plugins": "ocrframe.discovery",
    # for a plugin's tests: a config as `ocrframe train` reads it, a tiny LMDB
    "load_config": "ocrframe.runner", "write_lmdb": "ocrframe.data.lmdb_dataset",
    # for decoders
    "read_lexicon": "ocrframe.decoders",
    # for datasets
    "OcrDataset": "ocrframe.data.base", "Curriculum": "ocrframe.data.base", "BadSample": "ocrframe.data.base", "SkipCounter": "ocrframe.data.base",
    "decode_image": "ocrframe.data.base", "image_aspect_ratio": "ocrframe.data.base",
    "read_gt_lines": "ocrframe.data.gt_folder",
    "ProcessLRU": "ocrframe.data.assets", "discover_backgrounds": "ocrframe.data.assets",
}
_MODULES = {"effects": "ocrframe.data.effects"}  # image effects shared by the synthetic data generators

__all__ = sorted(["hookimpl", "load_plugins", *_LAZY, *_MODULES])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        raise AttributeError(f"module 'ocrframe' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
