"""Pictures: an ink as a PNG (a page line by line in colour, with each line's text), and a
run's learning curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .ink import Ink
from .svg import PALETTE  # the app's colours, so a page looks the same in both

UNPLACED = "#a0a0a0"    # strokes no line claims
MAX_TEXT = 90           # characters of a line's text shown beside it
DPI = 110

if TYPE_CHECKING:  # h5py and the recognizer's imports stay out of a plain render
    from .results import Result
    from .store import Sample


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def render_ink(ink: Ink, out: str | os.PathLike, title: str | None = None,
               colors: list[str] | None = None, width: float = 10.0) -> None:
    """Draw the strokes (y down, as written) with the label as title; `colors` per stroke."""
    plt, fig, ax = _ink_axes(ink, width, max_height=8)
    _draw_strokes(ax, ink, colors or ["black"] * len(ink.strokes), linewidth=1.4, markersize=3)
    _finish_axes(fig, ax, title)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)


def _ink_axes(ink: Ink, width: float, max_height: float, **kw):
    """(pyplot, figure, axes) sized to the ink's aspect: `width` inches wide, at most `max_height` tall."""
    plt = _pyplot()
    pts = ink.points()
    w = max(float(np.ptp(pts[:, 0])), 1.0)
    h = max(float(np.ptp(pts[:, 1])), 1.0)
    fig, ax = plt.subplots(figsize=(width, max(1.2, min(width * h / w, max_height)) + 0.6), **kw)
    return plt, fig, ax


def _draw_strokes(ax, ink: Ink, colors: list[str], linewidth: float, markersize: float) -> None:
    """Each stroke as a line in its colour; a one-point stroke (a dot) as a dot."""
    for s, c in zip(ink.strokes, colors):
        if len(s) == 1:
            ax.plot(s.points[:, 0], s.points[:, 1], ".", color=c, markersize=markersize)
        else:
            ax.plot(s.points[:, 0], s.points[:, 1], "-", color=c, linewidth=linewidth, solid_capstyle="round",
                    solid_joinstyle="round")


def _finish_axes(fig, ax, title: str | None) -> None:
    """Equal scales, y down as written, no frame, the title at the left."""
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    fig.tight_layout()


def line_color(i: int) -> str:
    """The colour of line i of a page (neighbouring lines always differ)."""
    return PALETTE[i % len(PALETTE)]


def render_page(ink: Ink, lines: list[list[int]], texts: list[str | None] | None,
                out: str | os.PathLike, title: str | None = None, width: float = 10.0,
                fontsize: float = 10.0) -> None:
    """Draw a page: line i's strokes (`lines[i]`, stroke indices) and its text (`texts[i]`; None or
    no `texts`: a dash) in `line_color(i)`, the text at the left of the line, level with where the
    line begins; strokes in no line are grey. Texts of lines that sit close together (or on top of
    each other) are moved apart, top to bottom, to stay readable."""
    plt, fig, ax = _ink_axes(ink, width, max_height=12, dpi=DPI)
    owner = np.full(len(ink.strokes), -1)
    for i, strokes in enumerate(lines):
        owner[np.asarray(strokes, dtype=np.int64)] = i
    _draw_strokes(ax, ink, [line_color(o) if o >= 0 else UNPLACED for o in owner], linewidth=1.6, markersize=3.5)
    _finish_axes(fig, ax, title)
    ax.apply_aspect()  # the final data-to-pixel mapping, so that texts can be spaced in pixels
    drawn = [i for i, strokes in enumerate(lines) if len(strokes)]
    ys = [_start_height(ink, lines[i]) for i in drawn]
    from matplotlib.transforms import blended_transform_factory
    at_left = blended_transform_factory(ax.transAxes, ax.transData)
    for i, y in zip(drawn, _spread(ax, ys, fontsize * 1.4 * DPI / 72)):
        text = (texts[i] if texts and texts[i] is not None else "") or "\u2014"
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT - 1] + "\u2026"
        ax.text(-0.02, y, text, transform=at_left, ha="right", va="center", color=line_color(i),
                fontsize=fontsize, clip_on=False)
    fig.savefig(out, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


def page_lines(ink: Ink, stroke_lines: np.ndarray | None = None) -> list[list[int]]:
    """Each line's strokes: as a page store keeps them (`stroke_lines`, -1 = in no line; line k
    is label line k, and may be empty), else as `hwr.layout.segment_lines` finds them."""
    if _known(stroke_lines):
        lines = np.asarray(stroke_lines)
        return [np.nonzero(lines == k)[0].tolist() for k in range(int(lines.max()) + 1)]
    from .layout import segment_lines
    return segment_lines(ink)


def _known(stroke_lines: np.ndarray | None) -> bool:
    """Whether a sample's `stroke_lines` place at least one stroke on a line."""
    return stroke_lines is not None and bool((np.asarray(stroke_lines) >= 0).any())


def render_sample(sample: Sample, out: str | os.PathLike, result: Result | None = None) -> int:
    """`hwr data show`: a store sample as a PNG; returns the number of lines drawn.

    A page is drawn by `render_page`: with a recognizer's `result`, its lines and their reading;
    else the lines as stored (or as `segment_lines` finds them) and the label's lines beside them
    when there are as many. A one-line ink is drawn in black with its label (and reading) as title.
    """
    title = f"{sample.id}  [{sample.split}]"
    if result is not None:
        lines, texts, how = [line.strokes for line in result.lines], [line.text for line in result.lines], "read"
    else:
        how = "lines as stored" if _known(sample.stroke_lines) else "lines found"
        lines = page_lines(sample.ink, sample.stroke_lines)
        label = sample.text.split("\n") if sample.text else []
        texts = label if len(label) == len(lines) else None
    drawn = sum(1 for strokes in lines if len(strokes))
    if drawn <= 1:
        title += f"  {sample.text}" + (f"\nread: {result.text}" if result is not None else "")
        render_ink(sample.ink, out, title=title)
        return 1
    if texts is None and sample.text:  # the label's lines do not match the lines found: show it whole
        title += "  " + " / ".join(sample.text.split("\n"))
    render_page(sample.ink, lines, texts, out, title=f"{title}  ({how})")
    return drawn


def _start_height(ink: Ink, strokes: list[int]) -> float:
    """The middle height of a line where it begins (its left fifth): level with it, the text
    stays beside the line even when the line slopes."""
    p = np.concatenate([ink.strokes[k].points[:, :2] for k in strokes])
    x0, x1 = p[:, 0].min(), p[:, 0].max()
    return float(np.median(p[p[:, 0] <= x0 + 0.2 * (x1 - x0), 1]))


def _spread(ax, ys: list[float], gap: float) -> list[float]:
    """Data y positions moved down where needed so that no two are closer than `gap` pixels."""
    if not ys:
        return []
    to_px, from_px = ax.transData.transform, ax.transData.inverted().transform
    px = [to_px((0.0, y))[1] for y in ys]  # pixels grow upwards; the y axis is inverted, so down the page
    # top of the picture first; lines at about one height (written over each other) in reading order
    order = sorted(range(len(px)), key=lambda k: (-round(px[k] / gap), k))
    for a, b in zip(order, order[1:]):
        px[b] = min(px[b], px[a] - gap)
    return [float(from_px((0.0, p))[1]) for p in px]


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
    a2.plot([r["epoch"] for r in epochs], [100 * r["val_cer"] for r in epochs], "o-", ms=3, label="greedy")
    selected = [r for r in epochs if r.get("val_cer_decoder") is not None]  # a run with --select-decoder
    if selected:
        a2.plot([r["epoch"] for r in selected], [100 * r["val_cer_decoder"] for r in selected], "s-", ms=3,
                label="selecting decoder (best.pt)")
        a2.legend()
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation CER (%)")
    if epochs:
        key = "val_cer_decoder" if selected else "val_cer"
        best = min(100 * r[key] for r in (selected or epochs))
        a2.axhline(best, color="gray", ls="--", lw=0.8)
        a2.set_title(f"best {best:.2f}%" + (" (selecting decoder)" if selected else " (greedy)"))
        a2.set_ylim(0, min(100, max(100 * r["val_cer"] for r in epochs[len(epochs) // 3:]) * 1.5 + 1))
    a2.grid(alpha=0.3)
    fig.suptitle(str(run))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
