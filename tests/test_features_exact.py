"""The vectorised feature pipeline gives, bit for bit, what the plain per-stroke version gave.

`ink_features` runs on every line at inference, so `_resample` does all strokes at once
(issue #11). The shipped model was trained on, and its golden outputs come from, the plain
version kept here as the reference: one np.arange + np.interp + np.searchsorted per stroke.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import synthetic_line
from hwr.features import FeatureConfig, _resample, ink_features, normalised_points, writing_height
from hwr.ink import Ink, InkError, Stroke
from hwr.strokeorder import late_mark_order


def reference_resample(xy, lengths, step):
    out_xy, out_src, out_stroke, out_first = [], [], [], []
    start = 0
    for k, n in enumerate(lengths):
        p = xy[start:start + n]
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        total = s[-1]
        if total < 1e-9:
            targets = np.zeros(1)
        else:
            targets = np.arange(0.0, total, step)
            if total - targets[-1] > 0.3 * step:
                targets = np.append(targets, total)
        keep = np.concatenate([[True], seg > 0])
        rx = np.interp(targets, s[keep], p[keep, 0])
        ry = np.interp(targets, s[keep], p[keep, 1])
        out_xy.append(np.stack([rx, ry], axis=1))
        out_src.append(np.clip(np.searchsorted(s, targets), 0, n - 1) + start)
        out_stroke.append(np.full(len(targets), k))
        first = np.zeros(len(targets), bool)
        first[0] = True
        out_first.append(first)
        start += n
    return tuple(np.concatenate(x) for x in (out_xy, out_src, out_stroke, out_first))


def reference_writing_height(xy, stroke_lengths):
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    seg[np.cumsum(stroke_lengths)[:-1] - 1] = 0.0
    w = np.zeros(len(xy))
    w[:-1] += seg / 2
    w[1:] += seg / 2
    y = xy[:, 1]
    if w.sum() <= 0:
        w = np.ones(len(xy))
    order = np.argsort(y)
    cw = np.cumsum(w[order]) / w.sum()
    q10, q50, q90 = (y[order][min(np.searchsorted(cw, q), len(y) - 1)] for q in (0.1, 0.5, 0.9))
    height = q90 - q10
    extent = float(np.ptp(xy, axis=0).max())
    if height <= 0.01 * extent:
        height = max(float(np.ptp(y)), 0.25 * extent) if extent > 0 else 1.0
    return float(height), float(q50)


def reference_features(ink, cfg):
    """The inference path of `ink_features` as it was before vectorising."""
    xy = ink.points()[:, :2].astype(np.float64)
    lengths = ink.stroke_lengths()
    height, centre = reference_writing_height(xy, lengths)
    xy = (xy - [xy[:, 0].min(), centre]) / height
    rs_xy, src, stroke, first = reference_resample(xy, lengths, cfg.step)
    d = np.diff(rs_xy, axis=0, prepend=rs_xy[:1])
    cols = [d[:, 0], d[:, 1], first.astype(np.float64)] + ([rs_xy[:, 1]] if cfg.use_y else [])
    return np.clip(np.stack(cols, axis=1), -cfg.clip, cfg.clip).astype(np.float32), src, stroke


def awkward_inks(seed=0):
    """Synthetic lines plus what breaks naive vectorising: dots, repeated points, one-point strokes,
    whole-pixel tablet coordinates (many ties), tiny moves far from the origin."""
    rng = np.random.default_rng(seed)
    inks = [synthetic_line("hello world", seed=1)[0], synthetic_line("abc", jitter=2.0, seed=2)[0]]
    for kind in range(4):
        for _ in range(25):
            strokes = []
            for n in rng.integers(1, 30, rng.integers(1, 10)):
                if kind == 0:
                    p = np.cumsum(rng.integers(-3, 4, (n, 2)), axis=0) + rng.integers(0, 1000, 2)
                elif kind == 1:
                    p = np.repeat(rng.normal(0, 100, (1, 2)), n, 0) + rng.normal(0, 1e-12, (n, 2)) * rng.integers(0, 2)
                elif kind == 2:
                    p = np.cumsum(rng.normal(0, 5, (n, 2)), axis=0)
                else:
                    p = 1e6 + np.cumsum(rng.normal(0, 1e-3, (n, 2)) * (rng.random((n, 1)) < 0.5), axis=0)
                strokes.append(Stroke(p.astype(np.float64)))
            inks.append(Ink(strokes))
    return inks


@pytest.mark.parametrize("step", [0.1, 0.005, 1 / 3, 0.7, 0.123456])
def test_resample_matches_the_per_stroke_reference_bit_for_bit(step):
    for ink in awkward_inks():
        xy, lengths = ink.points()[:, :2] / 50.0, ink.stroke_lengths()
        for got, want in zip(_resample(xy, lengths, step), reference_resample(xy, lengths, step)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_ink_features_and_writing_height_unchanged():
    """The features of the reference, which knows nothing of late marks (hwr/strokeorder.py): with the
    reordering off, always; with it on, wherever no mark moves (tests/test_strokeorder.py has the rest)."""
    off = dict(late_marks=False)
    for cfg in (FeatureConfig(**off), FeatureConfig(step=0.05, use_y=False, **off), FeatureConfig(step=0.37, clip=2.0, **off),
                FeatureConfig()):
        for ink in awkward_inks(seed=0) + awkward_inks(seed=1):
            if cfg.late_marks and late_mark_order(normalised_points(ink), ink.stroke_lengths()) is not None:
                continue
            f = ink_features(ink, cfg)
            values, src, stroke = reference_features(ink, cfg)
            np.testing.assert_array_equal(f.values, values)
            np.testing.assert_array_equal(f.source_index, src)
            np.testing.assert_array_equal(f.stroke_index, stroke)
            xy = ink.points()[:, :2]
            assert writing_height(xy, ink.stroke_lengths()) == reference_writing_height(xy, ink.stroke_lengths())


def test_an_empty_stroke_is_an_ink_error():
    ink = Ink([Stroke(np.zeros((3, 2))), Stroke(np.zeros((0, 2)))])
    with pytest.raises(InkError, match="stroke 1 has no points"):
        ink_features(ink)
