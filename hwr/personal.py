"""Personal models: fine-tune the shipped model on the samples a user saved in the app.

A fine-tuning runs in the background as a plain `hwr train` (`start_fine_tuning`) into
`<root>/run-<time>/`; the app holds no process handle, so everything it shows is read back from
that folder: `personal_models` lists the runs that have weights and `run_progress` reads
`metrics.jsonl`, `config.json` and the `done` / `failed` markers.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

LOG_TAIL_CHARS = 300


@dataclass(frozen=True)
class PersonalConfig:
    """The `hwr train` settings of a personal fine-tuning; each field is the TrainConfig field of that name.

    A small learning rate and batch: a user has tens of lines, not thousands. One thread: the
    app keeps reading strokes while it trains. A short warm-up: a run is a few tens of steps in
    all, and with training's default (300 steps) the rate never rose above 1/20 of `lr`, so
    fine-tuning changed nothing (measured with scripts/personal_study.py).
    """

    epochs: int = 15
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 2
    freeze_layers: int = 0   # keep the convolution and this many LSTM layers as they are (0: train all)
    threads: int = 1


def fine_tune_command(store: str | os.PathLike, base_model: str | os.PathLike, out: str | os.PathLike,
                      config: PersonalConfig = PersonalConfig()) -> list[str]:
    """The `hwr train` command that adapts `base_model` to the samples in `store`.

    Its options are `config`'s fields. The store has no validation split, so every epoch's
    weights become best.pt (see train.py) and patience is the whole run: nothing stops it early.
    """
    cmd = [sys.executable, "-m", "hwr.cli", "train", "--data", str(store), "--init-from", str(base_model),
           "--out", str(out)]
    for name, value in [(f.name, getattr(config, f.name)) for f in fields(config)] + [("patience", config.epochs)]:
        cmd += ["--" + name.replace("_", "-"), str(value)]
    return cmd


def start_fine_tuning(store: str | os.PathLike, base_model: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Start fine-tuning in the background; returns its run folder. `done` or `failed` appears
    in that folder when it ends, so callers need no process handle."""
    run = Path(root) / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    run.mkdir(parents=True, exist_ok=True)
    inherit_decoder(base_model, run)
    cmd = " ".join(shlex.quote(c) for c in fine_tune_command(store, base_model, run))
    log, done, failed = (shlex.quote(str(run / n)) for n in ("train.log", "done", "failed"))
    subprocess.Popen(["/bin/sh", "-c", f"{cmd} > {log} 2>&1 && touch {done} || touch {failed}"],
                     start_new_session=True)
    return run


def inherit_decoder(base_model: str | os.PathLike, run: str | os.PathLike) -> None:
    """Give the run the base model's decoder settings (beam search, its LM by absolute path).

    `Recognizer.load` takes decoder.json from beside the checkpoint; without one a personal
    model would read with default settings (no LM), losing more than the fine-tuning gains.
    """
    from .decode import DecoderConfig
    from .fileutil import write_atomic
    src = Path(base_model).resolve().parent / "decoder.json"
    if src.is_file():
        cfg = DecoderConfig.from_json(src)  # resolves the LM path against the base model's folder
        write_atomic(Path(run) / "decoder.json", json.dumps(cfg.as_dict(), indent=2) + "\n")


def personal_models(root: str | os.PathLike) -> dict[str, Path]:
    """{label: best.pt} for every run under `root` that has weights, newest first.

    A run still training is listed too: it writes best.pt after each epoch (its store has no
    validation split), so its latest weights are already a usable model.
    """
    models = {}
    for run in sorted(Path(root).glob("run-*"), reverse=True):
        if (run / "best.pt").is_file():
            models[f"personal ({run.name.removeprefix('run-')})"] = run / "best.pt"
    return models


@dataclass(frozen=True)
class RunProgress:
    """How far a background fine-tuning has got, as read from its run folder."""

    epochs_done: int
    epochs_total: int
    state: str      # "running", "done" or "failed"
    log_tail: str   # the end of train.log: the reason when it failed

    @property
    def fraction(self) -> float:
        """Epochs done over the total, in [0, 1] (a progress bar's value)."""
        return min(self.epochs_done / max(self.epochs_total, 1), 1.0)


def run_progress(run: str | os.PathLike) -> RunProgress:
    """Progress of the run in folder `run`, whatever stage it is at.

    Every file may be missing or half written (the trainer has not started yet, or is writing
    right now), so each is read defensively: no metrics means no epoch done, and no readable
    config.json means the epochs `start_fine_tuning` asks for (`PersonalConfig.epochs`).
    """
    from .train import read_metrics  # torch is heavy; the listing above does not need it
    run = Path(run)
    metrics = run / "metrics.jsonl"
    rows = read_metrics(metrics) if metrics.is_file() else []
    total = PersonalConfig.epochs
    try:
        total = int(json.loads((run / "config.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    # a resumed run logs an epoch once (metrics are trimmed on resume); count distinct epochs anyway
    done = len({r.get("epoch") for r in rows if r.get("kind") == "epoch"})
    state = "failed" if (run / "failed").exists() else "done" if (run / "done").exists() else "running"
    try:
        tail = (run / "train.log").read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        tail = ""
    return RunProgress(done, total, state, tail)
