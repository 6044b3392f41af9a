"""Where hwr keeps a user's own data: the app's feedback store and personal models.

One policy, so the app, its tests and any later command agree on the folder:
$HWR_DATA_DIR, else $XDG_DATA_HOME/hwr, else ~/.local/share/hwr (the XDG base directory
default). Nothing here creates folders: writers create what they write into.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The folder for a user's data. HWR_DATA_DIR wins so tests and shared machines can point
    the app elsewhere without touching the user's XDG settings."""
    if os.environ.get("HWR_DATA_DIR"):
        return Path(os.environ["HWR_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "hwr"


def feedback_store() -> Path:
    """The HDF5 store the app appends corrected samples to (`store.append_samples`)."""
    return data_dir() / "feedback.h5"


def personal_root() -> Path:
    """The folder holding one `run-*` folder per personal fine-tuning (`personal.start_fine_tuning`)."""
    return data_dir() / "personal"
