"""All-or-nothing file writes: write a temporary file beside the target, then rename it."""

from __future__ import annotations

import os
from pathlib import Path


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync `tmp`, give it ordinary permissions (mkstemp makes it private) and rename it to `path`."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, Path(path))
