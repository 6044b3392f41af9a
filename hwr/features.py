"""Stroke features: the one function that turns any ink into the model's input.

Training, evaluation, batch transcription and the live canvas all call `ink_features`, so a
model sees the same thing everywhere. The pipeline, and why:

1. Normalise: translate to the line's left edge and vertical centre, scale by a robust
   writing height (the 10-90% spread of y weighted by arc length), so a tablet's resolution,
   a capital or a descender does not change the scale much. y grows downward, in every importer
   and on the canvas. Then i-dots and t-crosses written after the line go back beside their
   letters (strokeorder.py; in training, `AugmentConfig.late` first writes some lines' marks last).
2. (training only) augment in that normalised space: random affine, point dropout, jitter.
3. Resample each stroke along its arc length at `step` writing heights: writing speed and the
   device's sampling rate vanish, which is what makes mouse input (coarse, odd timing) look
   like a tablet's. Absolute time is never used.
4. Per point: (dx, dy, new-stroke flag, y): movement since the previous point (pen-up jumps
   included), 1 where a stroke starts, and height above the line centre.

Each output point also records the index of the nearest original point (`source_index`) so
decoded characters map back to strokes (see align.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError
from .ink import Ink, InkError
from .strokeorder import late_mark_order, marks_last

FEATURE_VERSION = 2  # 2: the flat-ink fallback no longer fires on long lines


@dataclass
class FeatureConfig:
    step: float = 0.1          # resampling step, in writing heights
    use_y: bool = True         # append y relative to the line centre as a 4th feature
    clip: float = 10.0         # |dx|, |dy|, |y| are clipped to this many writing heights
    late_marks: bool = True    # dots and crosses written after the line go back to their letters (strokeorder.py)

    def __post_init__(self) -> None:
        if not 0.005 <= self.step <= 1.0:
            raise ConfigError("step must be within [0.005, 1] writing heights")

    @property
    def size(self) -> int:
        return 4 if self.use_y else 3

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class AugmentConfig:
    """Random distortions for training; all amounts are ranges or standard deviations."""

    enabled: bool = True
    scale: float = 0.15        # x and y scale each in 1 +- scale (independently: aspect changes)
    shear: float = 0.35        # x += shear * y, shear uniform in +-shear (slant)
    rotate: float = 0.08       # radians
    jitter: float = 0.01       # gaussian noise on resampled points, in writing heights
    dropout: float = 0.1       # fraction of original points dropped (at most)
    step_jitter: float = 0.15  # resampling step in step * (1 +- step_jitter)
    pointer: float = 0.0       # share of lines turned into mouse- or finger-like input (`_pointer_like`)
    late: float = 0.0          # share of lines whose dots and crosses above the middle come after the line (strokeorder.py)

    def __post_init__(self) -> None:
        if not (0 <= self.pointer <= 1 and 0 <= self.late <= 1):
            raise ConfigError("augment pointer and late are shares of the lines: between 0 and 1")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Features:
    values: np.ndarray        # float32 (T, F)
    source_index: np.ndarray  # int64 (T,): nearest original point, in Ink.points() order
    stroke_index: np.ndarray  # int64 (T,): its stroke in Ink.strokes (not ascending where late marks moved)


def _segment_lengths(xy: np.ndarray) -> np.ndarray:
    """Length of each step between consecutive points: (N, 2) -> (N - 1,).

    Bit for bit `np.linalg.norm(np.diff(xy, axis=0), axis=1)` (which sums the two squares in
    the same order), without its per-call overhead: this runs on every line at inference.
    """
    d = np.diff(xy, axis=0)
    d *= d
    return np.sqrt(d[:, 0] + d[:, 1])


def writing_height(xy: np.ndarray, stroke_lengths: np.ndarray) -> tuple[float, float]:
    """(height, centre_y): robust scale and vertical centre of the writing.

    The 10th-90th percentile spread of y, weighting each point by the length of ink around
    it, so a few ascenders, descenders or capitals move it little and long pen strokes count
    more than dense slow ones. Falls back to the bounding box for tiny or flat inks.
    """
    half = _segment_lengths(xy) / 2
    half[np.cumsum(stroke_lengths)[:-1] - 1] = 0.0  # no ink between strokes
    w = np.zeros(len(xy))
    w[:-1] = half
    w[1:] += half
    y = xy[:, 1]
    total = w.sum()
    if total <= 0:
        w = np.ones(len(xy))
        total = w.sum()
    order = np.argsort(y)
    cw = np.cumsum(w[order]) / total
    at = np.minimum(np.searchsorted(cw, (0.1, 0.5, 0.9)), len(y) - 1)
    q10, q50, q90 = y[order[at]]
    height = q90 - q10
    # the larger side of the bounding box (column by column: numpy reduces an (N, 2) array's axis 0 slowly)
    extent = max(float(np.ptp(xy[:, 0])), float(np.ptp(y))) if len(xy) else 0.0
    if height <= 0.01 * extent:
        # flat writing (a dash, a line of dots) or a single point: use the box, or unit scale.
        # (A line of text is often 20-40 times wider than high: only truly flat ink lands here.)
        height = max(float(np.ptp(y)), 0.25 * extent) if extent > 0 else 1.0
    return float(height), float(q50)


# Work per line at inference is capped so one ink cannot hold a server: IAM-OnDB's longest line has
# 1,940 points and 1,283 resampled points; ten times that is still a line, more is a page or an attack.
MAX_POINTS = 20_000          # raw points in one line
MAX_RESAMPLED = 20_000       # points after resampling (the network's input length; frames = half)


def check_size(ink: Ink, config: FeatureConfig | None = None) -> None:
    """Refuse, in one line, an ink the recognizer refuses: too large to be one line (refused
    before the work that grows with it), empty, with an empty stroke, or not finite. For callers
    that only need the answer (training's validation filter): it is `ink_features(...,
    bounded=True)`, so the two can never disagree; an ink it accepts costs its features."""
    ink_features(ink, config, bounded=True)


def _check_resampled(count: float, step: float) -> None:
    if not count <= MAX_RESAMPLED:  # (NaN from absurd coordinates is refused too)
        raise InkError(f"the ink is {count:,.0f} points long once resampled (one every {step:g} writing heights); "
                       f"one line may have at most {MAX_RESAMPLED:,} (split it into lines, or it is not handwriting)")


def _pointer_like(xy: np.ndarray, index: np.ndarray, lengths: np.ndarray, rng: np.random.Generator):
    """The line as a mouse or a finger on a screen would have given it (xy in writing heights).

    What a browser canvas sends differs from a tablet pen: the writing is 25-90 px high, points
    arrive every 1-4 px (a mouse) or 4-10 px (a finger: few points), every coordinate is a whole
    pixel, and a hand on a mouse wobbles slowly rather than jittering point by point. Time and
    pressure are not features, so their absence needs no simulation.
    """
    px = rng.uniform(25, 90)
    spacing = rng.uniform(4, 10) if rng.random() < 0.3 else rng.uniform(1, 4)
    wobble = rng.uniform(0, 1.2)  # px, amplitude of the slow drift
    out_xy, out_index, out_len = [], [], []
    start = 0
    for n in lengths:
        p, idx = xy[start:start + n] * px, index[start:start + n]
        start += n
        if n > 1:
            seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            at = np.arange(0.0, arc[-1] + 1e-9, spacing) if arc[-1] > 0 else np.zeros(1)
            if arc[-1] > 0 and at[-1] < arc[-1]:
                at = np.append(at, arc[-1])  # the pen-up point is always sent
            k = np.clip(np.searchsorted(arc, at, side="right") - 1, 0, n - 1)
            keep = np.concatenate([[True], seg > 0])
            p = np.stack([np.interp(at, arc[keep], p[keep, 0]), np.interp(at, arc[keep], p[keep, 1])], axis=1)
            idx = idx[k]
            if wobble and len(p) > 1:
                noise = rng.normal(0, 1, (len(p) + 8, 2))
                smooth = np.stack([np.convolve(noise[:, c], np.ones(9) / 3, mode="valid") for c in (0, 1)], 1)
                p = p + wobble * smooth[:len(p)]
        out_xy.append(np.round(p) / px)
        out_index.append(idx)
        out_len.append(len(p))
    return np.concatenate(out_xy), np.concatenate(out_index), np.array(out_len, dtype=np.int64)


def ink_features(ink: Ink, config: FeatureConfig | None = None, augment: AugmentConfig | None = None,
                 rng: np.random.Generator | None = None, bounded: bool = False) -> Features:
    """Features for one ink; with `augment` (and `rng`) the training-time distortions apply.
    `bounded`: refuse an ink too large to be one line (more than MAX_POINTS points, or
    MAX_RESAMPLED once resampled) before the work that grows with it, as the recognizer must for
    any upload."""
    cfg = config or FeatureConfig()
    if bounded and ink.num_points > MAX_POINTS:
        raise InkError(f"the ink has {ink.num_points:,} points; one line may have at most {MAX_POINTS:,} "
                       "(split it into lines)")
    pts = ink.points()
    if len(pts) == 0:
        raise InkError("ink is empty: draw or load some strokes first")
    lengths = ink.stroke_lengths()
    if (lengths == 0).any():
        raise InkError(f"stroke {int(np.argmax(lengths == 0))} has no points: remove it")
    xy = pts[:, :2].astype(np.float64)  # a copy, normalised in place below
    if not np.isfinite(xy).all():
        raise InkError("ink has non-finite coordinates")
    xy = normalise(xy, lengths)
    index = np.arange(len(xy))
    strokes = np.arange(len(lengths))  # `index` and `strokes` keep each point's and stroke's place in the ink
    augment = augment if augment is not None and augment.enabled else None
    if augment is not None:
        rng = rng or np.random.default_rng()
        if augment.late and rng.random() < augment.late:  # as people who dot and cross when the line is done
            xy, index, lengths, strokes = _reorder(xy, index, lengths, strokes, marks_last(xy, lengths, 1.0, rng))
    if cfg.late_marks:
        xy, index, lengths, strokes = _reorder(xy, index, lengths, strokes, late_mark_order(xy, lengths))
    step = cfg.step
    if augment is not None:
        if augment.pointer and rng.random() < augment.pointer:
            xy, index, lengths = _pointer_like(xy, index, lengths, rng)
        xy, index, lengths = _drop_points(xy, index, lengths, rng.uniform(0, augment.dropout), rng)
        xy = _random_affine(xy, augment, rng)
        step = step * rng.uniform(1 - augment.step_jitter, 1 + augment.step_jitter)
    rs_xy, rs_src, rs_stroke, first = _resample(xy, lengths, step, bounded)
    if augment is not None and augment.jitter > 0:
        rs_xy = rs_xy + rng.normal(0, augment.jitter, rs_xy.shape)
    values = np.zeros((len(rs_xy), cfg.size))  # T, F
    values[1:, :2] = rs_xy[1:] - rs_xy[:-1]  # dx, dy: movement since the previous point (none at the start)
    values[first, 2] = 1.0
    if cfg.use_y:
        values[:, 3] = rs_xy[:, 1]
    np.clip(values, -cfg.clip, cfg.clip, out=values)
    return Features(values.astype(np.float32), index[rs_src], strokes[rs_stroke])


def _resample(xy: np.ndarray, lengths: np.ndarray, step: float, bounded: bool = False):
    """Resample every stroke at `step` along its arc length (end points kept); `bounded`: an
    InkError instead when that would give more than MAX_RESAMPLED points.

    Returns, per resampled point, (xy, source index, stroke index, first-of-stroke flag).
    All strokes are done at once: a Python loop over strokes used to cost most of `ink_features`.
    Every number is nonetheless the one a per-stroke `np.arange` + `np.interp` gives, so the
    features, and the shipped model's outputs, stay the same to the bit:
    - arc length restarts at 0 in each stroke and is summed point by point, as `np.cumsum` does
      (one running sum over the whole line minus each stroke's start would round differently);
    - a stroke's targets are i * step, which is what `np.arange(0, total, step)` fills in;
    - each target is interpolated on the segment `np.interp` picks, with its formula.
    """
    ends = np.cumsum(lengths)
    starts = ends - lengths
    strokes = np.arange(len(lengths))
    point_stroke = np.repeat(strokes, lengths)  # N

    seg = _segment_lengths(xy)
    s = np.zeros(len(xy))  # arc length from the stroke's first point
    for a, b in zip(starts.tolist(), ends.tolist()):
        np.add.accumulate(seg[a:b - 1], out=s[a + 1:b])
    total = s[ends - 1]

    # targets 0, step, 2 step, ... below each stroke's length, plus its end unless within 0.3 step;
    # a dot (length < 1e-9) gets one target, its first point
    count = np.maximum(np.ceil(total / step), 1)
    with_end = total - (count - 1) * step > 0.3 * step
    if bounded:  # before anything that size is made (and while a NaN count is still a float)
        _check_resampled(float((count + with_end).sum()), step)
    count = count.astype(np.int64)
    per_stroke = count + with_end
    target_stroke = np.repeat(strokes, per_stroke)  # T
    first = np.cumsum(per_stroke) - per_stroke  # each stroke's first target
    t = (np.arange(len(target_stroke)) - first[target_stroke]) * step
    t[(first + count)[with_end]] = total[with_end]

    # the nearest original point at or after each target (np.searchsorted within its stroke)
    query = _stroke_keys(target_stroke, t)
    src = np.minimum(np.searchsorted(_stroke_keys(point_stroke, s), query, side="left"), (ends - 1)[target_stroke])

    # np.interp on the points that moved (it needs increasing arc length), each stroke's first one kept
    moved = np.ones(len(xy), bool)
    moved[1:] = seg > 0
    moved[starts] = True
    ms = s[moved]
    last_moved = np.cumsum(moved)[ends - 1] - 1  # each stroke's last point in ms
    j = np.searchsorted(_stroke_keys(point_stroke[moved], ms), query, side="right") - 1  # ms[j] <= t < ms[j + 1]
    j1 = np.minimum(j + 1, len(ms) - 1)
    # np.interp's value at or beyond a stroke's end, or exactly on a point, is that point: make it so
    # here by a zero step over a harmless slope
    between = (j < last_moved[target_stroke]) & (ms[j] != t)
    ds = np.where(between, ms[j1] - ms[j], 1.0)
    dt = np.where(between, t - ms[j], 0.0)
    rs_xy = np.empty((len(t), 2))  # T, 2
    for c in (0, 1):
        f = xy[moved, c]
        rs_xy[:, c] = (f[j1] - f[j]) / ds * dt + f[j]  # np.interp: slope * (x - xp[j]) + fp[j]

    is_first = np.zeros(len(t), bool)
    is_first[first] = True
    return rs_xy, src, target_stroke, is_first


def _stroke_keys(stroke: np.ndarray, arc: np.ndarray) -> np.ndarray:
    """(stroke, arc length) pairs as complex numbers, which numpy orders by real part, then imaginary:
    sorted within each stroke and strokes in order, so one exact `np.searchsorted` serves all strokes."""
    key = np.empty(len(arc), np.complex128)
    key.real = stroke
    key.imag = arc
    return key


def _random_affine(xy: np.ndarray, a: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    sx, sy = rng.uniform(1 - a.scale, 1 + a.scale, 2)
    sh = rng.uniform(-a.shear, a.shear)
    th = rng.uniform(-a.rotate, a.rotate)
    c, s = np.cos(th), np.sin(th)
    m = np.array([[c, -s], [s, c]]) @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])
    return xy @ m.T


def normalise(xy: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The points in writing heights: x from the line's left edge, y from its centre (in place; returned)."""
    height, centre = writing_height(xy, lengths)
    xy -= (xy[:, 0].min(), centre)
    xy /= height
    return xy


def normalised_points(ink: Ink) -> np.ndarray:
    """The ink's (x, y) as `ink_features` normalises them (a copy), for code that looks at strokes the way
    the features do (strokeorder's marks: which strokes are dots and crosses)."""
    return normalise(ink.points()[:, :2].astype(np.float64), ink.stroke_lengths())


def _reorder(xy, index, lengths, strokes, order):
    """The points, their source indices, the stroke lengths and stroke ids in stroke order `order`
    (None: as they are)."""
    if order is None:
        return xy, index, lengths, strokes
    new_lengths = lengths[order]
    starts = (np.cumsum(lengths) - lengths)[order]
    # point j of the reordered line is point (j - its stroke's new start) of that stroke's old place
    points = np.arange(new_lengths.sum()) + np.repeat(starts - (np.cumsum(new_lengths) - new_lengths), new_lengths)
    return xy[points], index[points], new_lengths, strokes[order]


def _drop_points(xy, index, lengths, frac, rng):
    """Drop a random fraction of interior points of each stroke (end points always kept)."""
    if frac <= 0:
        return xy, index, lengths
    keep = rng.random(len(xy)) >= frac
    ends = np.cumsum(lengths)
    keep[ends - 1] = True
    keep[ends - lengths] = True
    new_lengths = np.add.reduceat(keep.astype(np.int64), ends - lengths)
    return xy[keep], index[keep], new_lengths
