"""Put i-dots and t-crosses written after the line back beside the letters they belong to.

The network reads a line as one sequence of strokes in the order they were written. Many people
dot their i's and cross their t's when the line is done, so those marks arrive at its end, far
from their letters: s1 read canvas-like testset_v lines with every dot and cross moved to the end
(`scripts/make_canvas_set.py --split testset_v --late 1`) at 13.7 % greedy CER, against 7.1 % in
the order written, and 9.2 % with the reordering (MODEL_CARD.md, "Stroke order"). IAM-OnDB's
writers mostly dot a word as they finish it, so the training data has few such lines.

So before the features are taken, each *late mark* goes back beside its letter:
- a mark is a small stroke above the line's middle (its mean y over `HIGH` writing heights above
  the centre): a dot (under `DOT` writing heights each way) or a cross (under `CROSS`); commas and
  full stops sit low and stay where they are;
- it is late when its centre lies more than `JUMP` writing heights left of all the ink before it:
  the pen went back over whole words, not over the letter or word just finished (which is how the
  training data has it, so the network already reads those);
- it goes right after its letter: the stroke written before it that lies under its centre (the last
  written, if several do) or, where none does (a dot a little left of its stem), the nearest one.

`JUMP` was chosen on testset_v: at 5 writing heights 10 of its 1,438 tablet lines have a mark that
moves, and its CER with the reordering off -> on is greedy 6.45 -> 6.46 %, beam + LM 3.75 -> 3.75 %;
at 3 the late lines read better (8.71 % against 9.21 % greedy) and tablet lines read 6.48 % greedy.

The thresholds are part of what the network is given: changing them changes every model's input,
so a change needs FEATURE_VERSION raised (features.py) or the models measured again.
"""

from __future__ import annotations

import numpy as np

HIGH = 0.3              # a mark's mean y is this many writing heights above the line centre, or more
DOT = 0.4               # a dot is under this wide and under this high
CROSS = (0.25, 1.5)     # a cross is under this high and under this wide
JUMP = 5.0              # a late mark's centre is this far left of the ink written before it, or more
MAX_LATE = 256          # more late marks than this is no line of writing (a page of dots): left as written


def _extents(xy: np.ndarray, lengths: np.ndarray):
    """Per stroke: x_min, x_max and whether it is a mark (dot or cross above the middle)."""
    starts = np.cumsum(lengths) - lengths
    x, y = xy[:, 0], xy[:, 1]
    x_min, x_max = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
    height = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
    width = x_max - x_min
    high = np.add.reduceat(y, starts) / lengths < -HIGH  # y grows downward
    mark = high & (((width < DOT) & (height < DOT)) | ((height < CROSS[0]) & (width < CROSS[1])))
    return x_min, x_max, mark


def marks(xy: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Which strokes are dots or crosses above the line's middle (bool per stroke). `xy`: the line's
    points in writing heights, y growing downward and 0 at the line's centre (as `ink_features` has
    them); `lengths`: points per stroke."""
    return _extents(xy, lengths)[2]


def late_mark_order(xy: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """The strokes' reading order with late marks moved back (indices into the strokes), or None
    when nothing moves. `xy` and `lengths` as for `marks`."""
    if len(lengths) < 2:
        return None
    x_min, x_max, mark = _extents(xy, lengths)
    centre = 0.5 * (x_min + x_max)
    before = np.maximum.accumulate(np.concatenate([[-np.inf], x_max[:-1]]))  # right edge of the ink so far
    late = np.nonzero(mark & (centre < before - JUMP))[0]
    if not 0 < len(late) <= MAX_LATE:  # (each costs a pass over the strokes before it)
        return None
    stays = np.ones(len(lengths), bool)
    stays[late] = False
    after: dict[int, list[int]] = {}
    for k in late.tolist():
        # how far each stroke written before it lies from the mark's centre (0: the stroke is under it)
        gap = np.maximum(np.maximum(x_min[:k] - centre[k], centre[k] - x_max[:k]), 0.0)
        gap[~stays[:k]] = np.inf  # a moved mark is nobody's letter
        home = int(np.nonzero(gap <= gap.min())[0][-1])
        after.setdefault(home, []).append(k)
    order = []
    for k in np.nonzero(stays)[0].tolist():
        order.append(k)
        order.extend(after.get(k, ()))
    if order == list(range(len(lengths))):  # every late mark's letter was the stroke just before it
        return None
    return np.array(order, dtype=np.int64)


def marks_last(xy: np.ndarray, lengths: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray | None:
    """A stroke order with each of the line's marks, drawn with probability `share`, written after
    everything else, or None when none is drawn. Training's `AugmentConfig.late` picks its lines and
    passes 1.0; `make_canvas_set.py --late` passes its share."""
    moved = marks(xy, lengths) & (rng.random(len(lengths)) < share)
    if not moved.any():
        return None
    return np.concatenate([np.nonzero(~moved)[0], np.nonzero(moved)[0]])
