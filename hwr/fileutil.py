"""All-or-nothing file writes: write a temporary file beside the target, then rename it.

Files that others read while hwr may be writing them (checkpoints, model folders, the LM, ONNX
graphs, exports, result files) go through `atomic_path` (or `write_atomic` for text): a crash, a
kill or an exception mid-write leaves the previous file exactly as it was and no temporary file
behind (when Python still runs). The HDF5 store writer, which keeps its temporary file open across
calls, uses `temp_beside` and `publish` directly and adds an inter-process lock (hwr.store).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds."""
    tmp = temp_beside(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_beside(path: str | os.PathLike) -> Path:
    """A new empty temporary file in `path`'s folder (so `publish` renames within one file system);
    the caller removes it unless it is published."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` all-or-nothing."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync `tmp`, give it ordinary permissions (mkstemp makes it private) and rename it to `path`."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, Path(path))
