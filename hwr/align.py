"""Which strokes made which character: from CTC frames back to points and strokes of the ink.

A character's emission frame (from a decoder, or from forced alignment of a known text)
says where the network recognised it. Each character owns the frames from the midpoint
after the previous character's frame to the midpoint before the next one; those frames map
to resampled points (`conv_stride` points per frame), which `Features.source_index` maps to
original points, which belong to strokes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .alphabet import Alphabet
from .features import Features


@dataclass
class CharSpan:
    char: str
    frame: int           # emission frame
    point_start: int     # original points [point_start, point_end) in Ink.points() order
    point_end: int
    strokes: list[int]   # strokes with ink in that range (a space usually has none)

    def as_dict(self) -> dict:
        return asdict(self)


def char_spans(text: str, frames: list[int], num_frames: int, features: Features, stride: int,
               stroke_lengths: np.ndarray, run_ends: list[int] | None = None) -> list[CharSpan]:
    """Spans of each character of `text`, emitted at `frames` (one per character).

    `run_ends` (forced alignment) gives the last frame of each character's run; boundaries then
    fall midway between one character's last frame and the next one's first.
    """
    if len(frames) != len(text):
        raise ValueError("one frame per character is needed")
    ends = run_ends or frames
    bounds = [0]
    for i in range(1, len(frames)):
        bounds.append((ends[i - 1] + frames[i] + 1) // 2)
    bounds.append(num_frames)
    stroke_of = np.repeat(np.arange(len(stroke_lengths)), stroke_lengths)
    n_pts = len(features.source_index)
    spans = []
    for i, ch in enumerate(text):
        a = min(bounds[i] * stride, n_pts)
        b = min(max(bounds[i + 1] * stride, a), n_pts)
        src = features.source_index[a:b]
        if ch == " " or len(src) == 0:
            p0 = int(features.source_index[a]) if a < n_pts else int(len(stroke_of))
            spans.append(CharSpan(ch, int(frames[i]), p0, p0, []))
            continue
        p0, p1 = int(src.min()), int(src.max()) + 1
        strokes = sorted(set(stroke_of[src].tolist()))
        spans.append(CharSpan(ch, int(frames[i]), p0, p1, strokes))
    return spans


def forced_frames(log_probs: torch.Tensor, text: str, alphabet: Alphabet) -> tuple[list[int], list[int]]:
    """(first frame, last frame) of each character of `text` under CTC forced alignment.

    `log_probs`: (T, C) for one line. Raises ValueError when the text cannot fit the frames.
    """
    import torchaudio.functional as AF

    labels = alphabet.encode(text)
    if not labels:
        return [], []
    T = log_probs.shape[0]
    need = len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    if need > T:
        raise ValueError(f"the text needs {need} frames but the ink gives {T}; it is too long for this ink")
    emission = log_probs.detach().float().cpu()[None]
    targets = torch.tensor([labels], dtype=torch.int32)
    path, _ = AF.forced_align(emission, targets, blank=0)
    path = path[0].tolist()
    firsts, lasts = [], []
    for t, lab in enumerate(path):
        if lab == 0:
            continue
        if t > 0 and path[t - 1] == lab:  # a run of one label is one token (CTC repeats need a blank)
            lasts[-1] = t
        else:
            firsts.append(t)
            lasts.append(t)
    if len(firsts) != len(labels):
        raise RuntimeError("forced alignment returned a path that does not spell the text")
    return firsts, lasts
