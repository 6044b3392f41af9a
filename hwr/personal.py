"""Personal models: fine-tune the shipped model on the samples a user saved in the app."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

PERSONAL_EPOCHS = 15


def fine_tune_command(store: str | os.PathLike, base_model: str | os.PathLike, out: str | os.PathLike,
                      epochs: int = PERSONAL_EPOCHS) -> list[str]:
    """The `hwr train` command that adapts `base_model` to the samples in `store`.

    A small learning rate and batch: a user has tens of lines, not thousands. The store has no
    validation split, so every epoch's weights become best.pt (see train.py).
    """
    return [sys.executable, "-m", "hwr.cli", "train", "--data", str(store), "--init-from", str(base_model),
            "--out", str(out), "--epochs", str(epochs), "--batch-size", "8", "--threads", "1", "--lr", "5e-4",
            "--patience", str(epochs)]


def start_fine_tuning(store: str | os.PathLike, base_model: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Start fine-tuning in the background; returns its run folder. `done` or `failed` appears
    in that folder when it ends, so callers need no process handle."""
    run = Path(root) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    run.mkdir(parents=True, exist_ok=True)
    cmd = " ".join(shlex.quote(c) for c in fine_tune_command(store, base_model, run))
    log, done, failed = (shlex.quote(str(run / n)) for n in ("train.log", "done", "failed"))
    subprocess.Popen(["/bin/sh", "-c", f"{cmd} > {log} 2>&1 && touch {done} || touch {failed}"],
                     start_new_session=True)
    return run
