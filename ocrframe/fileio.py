"""Writing files so that a crash never leaves half of one, and where ocrframe keeps its caches."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Where ocrframe keeps what it can make again (the font index, background crops, ONNX files,
    inference plans): $OCRFRAME_CACHE, else $XDG_CACHE_HOME/ocrframe, else ~/.cache/ocrframe."""
    if os.environ.get("OCRFRAME_CACHE"):
        return Path(os.environ["OCRFRAME_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ocrframe"


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``,
    whatever happens meanwhile (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary file name beside ``path``, for writers that take a file name (a library's save
    function): when the block ends without an error the file is synced and renamed to ``path``
    and the directory synced (so the rename survives a power cut); on an error it is removed and
    ``path`` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``directory`` when its process was
    killed mid-write (named ``.NAME.tmp-PID``; those of running processes are kept)."""
    removed = []
    for tmp in Path(directory).glob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def check_writable(path: str | Path, what: str = "output") -> Path:
    """``path`` if a file can be written there (its folder is made if missing), else an error
    naming it -- before the work that would produce it, not after."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None
    return path
