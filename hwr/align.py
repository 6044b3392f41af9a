"""Which strokes made which character: from CTC frames back to points and strokes of the ink.

A character's emission frame (from a decoder, or from forced alignment of a known text)
says where the network recognised it. Our BiLSTM-CTC models fire a character's peak as its
ink begins (measured on synthetic lines with known boundaries, see tests/test_decode.py),
so each character owns the frames from its own peak to the next character's peak; those
frames map to resampled points (`ModelConfig.points_per_frame` points per frame), which
`Features.source_index` maps to original points, which belong to strokes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .errors import InputError
from .alphabet import Alphabet
from .features import Features


@dataclass
class CharSpan:
    char: str
    frame: int           # emission frame
    point_start: int     # original points [point_start, point_end) in Ink.points() order: the hull of its
                         # strokes' points (a late i-dot moved back to its letter stretches it to the dot)
    point_end: int
    strokes: list[int]   # strokes with ink in that range (a space usually has none)

    def as_dict(self) -> dict:
        return asdict(self)


def char_spans(text: str, frames: list[int], num_frames: int, features: Features, stride: int,
               stroke_lengths: np.ndarray) -> list[CharSpan]:
    """Spans of each character of `text`, emitted at `frames` (one per character).

    Character i owns frames [frames[i], frames[i+1]); the first also owns what precedes it.
    """
    if len(frames) != len(text):
        raise ValueError("one frame per character is needed")
    bounds = [0] + [int(f) for f in frames[1:]] + [num_frames]
    n_pts = len(features.source_index)
    # owner of every resampled point, then each stroke goes to the character owning most of it
    owner = np.full(n_pts, -1)
    for i, ch in enumerate(text):
        if ch != " ":
            owner[min(bounds[i] * stride, n_pts):min(bounds[i + 1] * stride, n_pts)] = i
    stroke_owner = np.full(len(stroke_lengths), -1)
    for k in np.unique(features.stroke_index):
        votes = owner[(features.stroke_index == k) & (owner >= 0)]
        if len(votes):
            stroke_owner[k] = np.bincount(votes).argmax()
    starts = np.concatenate([[0], np.cumsum(stroke_lengths)])
    spans = []
    for i, ch in enumerate(text):
        strokes = np.nonzero(stroke_owner == i)[0].tolist()
        pts = features.source_index[owner == i]
        if len(pts):
            p0, p1 = int(pts.min()), int(pts.max()) + 1
        else:
            a = min(bounds[i] * stride, n_pts - 1)
            p0 = p1 = int(features.source_index[a])
        if strokes:  # whole strokes: a character's points are those of its strokes
            p0, p1 = int(starts[strokes[0]]), int(starts[strokes[-1] + 1])
        spans.append(CharSpan(ch, int(frames[i]), p0, p1, strokes))
    return spans


def forced_frames(log_probs: torch.Tensor, text: str, alphabet: Alphabet) -> tuple[list[int], list[int]]:
    """(first frame, last frame) of each character of `text` under CTC forced alignment.

    `log_probs`: (T, C) for one line. Raises ValueError when the text cannot fit the frames.
    """
    try:
        import torchaudio.functional as AF
    except Exception as e:  # torchaudio refuses a torch built for another CUDA version, or is missing
        from .decode import BackendError
        raise BackendError(f"forced alignment needs torchaudio, which does not load ({' '.join(str(e).split())}); "
                           "reinstall the locked set with `bash scripts/setup.sh` and check `hwr info`") from None

    labels = alphabet.encode(text)
    if not labels:
        return [], []
    T = log_probs.shape[0]
    need = len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    if need > T:
        raise InputError(f"the text needs {need} frames but the ink gives {T}; it is too long for this ink")
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
