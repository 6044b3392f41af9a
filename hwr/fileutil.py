"""All-or-nothing file writes: write a temporary file beside the target, then rename it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` all-or-nothing (a temporary file beside it, then a rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        publish(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync `tmp`, give it ordinary permissions (mkstemp makes it private) and rename it to `path`."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, Path(path))
