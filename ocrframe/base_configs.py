"""Configs that inherit ocrframe's own by a stable name, wherever they are::

    _base_ = ["ocrframe::crnn_vgg_bilstm_ctc.py"]      # a plugin's config: the paper config, then changes

``ocrframe::NAME`` is a path relative to ocrframe's ``configs/`` folder (``ablations/encoder_identity.py``
works too). mmengine's own ``package::path`` form is made for OpenMMLab packages: it accepts only the
packages on its fixed list, looks under a ``.mim/configs`` folder that pip does not make for ocrframe,
and stamps a ``_scope_`` on every component of the base. So ocrframe resolves its own prefix, before
mmengine's lookup, and hands every other name to mmengine unchanged. Importing ``ocrframe`` installs
this (``ocrframe`` commands do), so ``mmengine.config.Config.fromfile`` reads such configs after it.
"""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

PREFIX = "ocrframe::"


def configs_folder() -> Path:
    """ocrframe's ``configs/`` folder: next to the package in a source checkout (``pip install -e``)."""
    return Path(__file__).resolve().parent.parent / "configs"


def framework_configs() -> list[str]:
    """The names ``ocrframe::NAME`` can take."""
    folder = configs_folder()
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py")) if folder.is_dir() else []


def config_path(name: str) -> Path:
    """The file behind ``ocrframe::NAME`` (or NAME alone); an error listing the names if none."""
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    path = configs_folder() / name
    if not path.is_file() or ".." in Path(name).parts:
        known = framework_configs()
        raise FileNotFoundError(
            f"'{PREFIX}{name}' names no ocrframe config; the names: "
            + (", ".join(PREFIX + k for k in known) if known else
               f"none (no folder {configs_folder()}: ocrframe's configs come with a source checkout)"))
    return path


def install() -> None:
    """Make mmengine's config loader resolve ``ocrframe::NAME`` (once; idempotent)."""
    original = Config.__dict__["_get_cfg_path"].__func__
    if getattr(original, "resolves_ocrframe_names", False):
        return

    def get_cfg_path(cfg_path: str, filename: str):
        if isinstance(cfg_path, str) and cfg_path.startswith(PREFIX):
            return str(config_path(cfg_path)), None  # no scope: the base's components stay as written
        return original(cfg_path, filename)

    get_cfg_path.resolves_ocrframe_names = True
    Config._get_cfg_path = staticmethod(get_cfg_path)


install()
