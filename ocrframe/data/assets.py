"""Asset files shared by the synthetic renderers: where they are looked for, the deterministic
train / held-out split, per-process caches, and the background photographs.

Photographs come from Debian packages (``setup/debian-packages.txt``) under /usr/share/backgrounds,
or from OCRFRAME_BACKGROUND_DIRS (os.pathsep-separated; an empty value means none).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from ocrframe.fileio import atomic_write, cache_dir

DEFAULT_BACKGROUND_DIRS = ("/usr/share/backgrounds",)
HELDOUT_EVERY = 5  # about one group (font design, background image) in five is held out
BACKGROUND_MAX_SIDE = 720
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SPLITS = ("train", "heldout")


def write_cache(path: Path, data: bytes) -> None:
    """Several DataLoader workers may write the same cache file at once."""
    try:
        atomic_write(path, data)
    except OSError:
        pass  # a read-only home only costs speed


def dirs_from(value, env: str, default: tuple[str, ...]) -> list[Path]:
    """Directories from an argument, else the environment variable ``env``, else ``default``."""
    if value is None:
        value = os.environ.get(env)
    if value is None:
        value = default
    if isinstance(value, (str, os.PathLike)):
        value = [p for p in str(value).split(os.pathsep) if p]
    return [Path(p) for p in value]


def files_under(dirs: list[Path], extensions: tuple[str, ...]) -> list[Path]:
    found = set()
    for root in dirs:
        for dirpath, _, names in os.walk(root, followlinks=True):
            found.update(Path(dirpath, n) for n in names if n.lower().endswith(extensions))
    return sorted(found)


def held_out(key: str) -> bool:
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % HELDOUT_EVERY == 0


def split_by_group(items: list[tuple[Path, str]], split: str, always_train=frozenset()) -> tuple[Path, ...]:
    """The paths of ``split`` ("train" or "heldout") from (path, group) pairs; whole groups are held out."""
    groups = sorted({g for _, g in items})
    held = {g for g in groups if held_out(g) and g not in always_train}
    if not held and len(groups) > 1:  # tiny asset sets: still hold one out, deterministically
        held = {min(groups, key=lambda g: hashlib.md5(g.encode()).hexdigest())}
    keep = held if split == "heldout" else set(groups) - held
    return tuple(p for p, g in items if g in keep)


class ProcessLRU:
    """A small LRU cache that starts empty in each process (FreeType faces and decoded images are
    not shared with forked DataLoader workers)."""

    def __init__(self, maxsize: int):
        self.maxsize, self.pid, self.items = maxsize, os.getpid(), OrderedDict()

    def get(self, key, make):
        if self.pid != os.getpid():
            self.pid, self.items = os.getpid(), OrderedDict()
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = self.items[key] = make()
        if len(self.items) > self.maxsize:
            self.items.popitem(last=False)
        return value


# ----------------------------------------------------------------------------------------------
# Background photographs
# ----------------------------------------------------------------------------------------------

def _background_group(path: Path) -> str:
    """Variants of one picture ('Elephants_3840x2160.jpg', 'Stripes-Dark.png') are one image."""
    return re.sub(r"([_-]?\d+x\d+|[_-](dark|light|d|l))$", "", path.stem.lower())


def _scan_backgrounds(dirs: list[Path]) -> list[tuple[Path, str]]:
    smallest: dict[str, Path] = {}
    for path in files_under(dirs, IMAGE_EXTENSIONS):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size < 20_000:  # placeholders and icons
            continue
        group = _background_group(path)
        if group not in smallest or size < smallest[group].stat().st_size:
            smallest[group] = path
    return sorted((p, g) for g, p in smallest.items())


def discover_backgrounds(split: str = "train", background_dirs=None) -> tuple[Path, ...]:
    """Background photographs of ``split``; held-out images are never in "train". May be empty
    (renderers then use procedural textures only)."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    found = _scan_backgrounds(dirs_from(background_dirs, "OCRFRAME_BACKGROUND_DIRS", DEFAULT_BACKGROUND_DIRS))
    return split_by_group(found, split)


_PHOTOS = ProcessLRU(64)


def load_background(path: Path) -> np.ndarray:
    """The photograph downscaled to BACKGROUND_MAX_SIDE, as uint8 RGB; cached per process and, as a
    downscaled JPEG, on disk."""
    return _PHOTOS.get(path, lambda: _load_background(path))


def _load_background(path: Path) -> np.ndarray:
    st = path.stat()
    key = hashlib.sha1(f"{path}|{st.st_mtime_ns}|{st.st_size}|{BACKGROUND_MAX_SIDE}".encode()).hexdigest()
    cached = cache_dir() / "backgrounds" / f"{key}.jpg"
    try:
        with Image.open(cached) as im:
            return np.asarray(im.convert("RGB"))
    except OSError:
        pass
    with Image.open(path) as im:
        im.draft("RGB", (BACKGROUND_MAX_SIDE, BACKGROUND_MAX_SIDE))  # fast JPEG downscale on decode
        if im.mode in ("RGBA", "LA", "P"):  # transparent wallpapers: flatten onto white
            im = im.convert("RGBA")
            flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(flat, im)
        im = im.convert("RGB")
        im.thumbnail((BACKGROUND_MAX_SIDE, BACKGROUND_MAX_SIDE), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    write_cache(cached, buf.getvalue())
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))  # same pixels as cached
