"""Pictures: an ink as a PNG, and a run's learning curves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .ink import Ink


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def render_ink(ink: Ink, out: str | os.PathLike, title: str | None = None,
               colors: list[str] | None = None, width: float = 10.0) -> None:
    """Draw the strokes (y down, as written) with the label as title; `colors` per stroke."""
    plt = _pyplot()
    pts = ink.points()
    w = max(float(np.ptp(pts[:, 0])), 1.0)
    h = max(float(np.ptp(pts[:, 1])), 1.0)
    fig, ax = plt.subplots(figsize=(width, max(1.2, min(width * h / w, 8)) + 0.6))
    for k, s in enumerate(ink.strokes):
        c = colors[k] if colors else "black"
        if len(s) == 1:
            ax.plot(s.points[:, 0], s.points[:, 1], ".", color=c, markersize=3)
        else:
            ax.plot(s.points[:, 0], s.points[:, 1], "-", color=c, linewidth=1.4, solid_capstyle="round")
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_run(run: str | os.PathLike, out: str | os.PathLike) -> None:
    """Training loss and validation CER against minutes, from a run's metrics.jsonl."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics; is {run} a training run folder?")
    from .train import read_metrics
    rows = read_metrics(path)
    train = [r for r in rows if r.get("kind") == "train"]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    a1.set_xlabel("step")
    a1.set_ylabel("training CTC loss (per line)")
    a1.set_yscale("log")
    a1.grid(alpha=0.3)
    a2.plot([r["epoch"] for r in epochs], [100 * r["val_cer"] for r in epochs], "o-", ms=3)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation CER, greedy (%)")
    if epochs:
        best = min(100 * r["val_cer"] for r in epochs)
        a2.axhline(best, color="gray", ls="--", lw=0.8)
        a2.set_title(f"best {best:.2f}%")
        a2.set_ylim(0, min(100, max(100 * r["val_cer"] for r in epochs[len(epochs) // 3:]) * 1.5 + 1))
    a2.grid(alpha=0.3)
    fig.suptitle(str(run))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
