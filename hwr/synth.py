"""Pages composed from real line or word inks, with the source line of every stroke known.

For measuring and testing line segmentation where no page data exists: the ink is real, only
its placement is made up, and the ways people really fill a page can be staged one at a time:
sloping lines, dots and crosses added after the line or the page, a line squeezed in later
between two others, a line written over the previous one. `hwr.pages` builds real IAM-OnDB
pages from the line files of one form instead.
"""

from __future__ import annotations

import numpy as np

from .features import writing_height
from .ink import Ink, Stroke


def normalized(ink: Ink, height: float = 100.0) -> Ink:
    """The ink scaled to a writing height of `height` (y down), its left edge and centre at 0,
    time starting at 0 (or untimed)."""
    pts = ink.points().copy()
    h, cy = writing_height(pts[:, :2], ink.stroke_lengths())
    k = height / max(h, 1e-9)
    pts[:, 0] = (pts[:, 0] - pts[:, 0].min()) * k
    pts[:, 1] = (pts[:, 1] - cy) * k
    if not np.isnan(pts[:, 2]).any():
        pts[:, 2] -= pts[0, 2]
    return Ink.from_arrays(pts, ink.stroke_lengths(), ink.text, [s.pointer_type for s in ink.strokes])


def _moved(ink: Ink, dx: float, dy: float, t0: float, slope: float = 0.0) -> tuple[list[Stroke], float]:
    """Strokes shifted by (dx, dy), sheared by `slope`, with time from t0 (untimed: 10 ms a point)."""
    out, t = [], t0
    for s in ink.strokes:
        p = s.points.copy()
        p[:, 1] += dy + slope * p[:, 0]
        p[:, 0] += dx
        if np.isnan(p[:, 2]).any():
            p[:, 2] = t + 10.0 * np.arange(len(p))
        else:
            p[:, 2] = p[:, 2] - p[0, 2] + t
        t = p[-1, 2] + 150.0  # pen up between strokes
        out.append(Stroke(p, s.pointer_type))
    return out, t


def line_of_words(words: list[Ink], height: float = 100.0, gap: float = 0.6) -> Ink:
    """Word inks written side by side as one line, `gap` writing heights apart, in time order."""
    strokes: list[Stroke] = []
    x, t = 0.0, 0.0
    for w in words:
        w = normalized(w, height)
        moved, t = _moved(w, x, 0.0, t)
        strokes += moved
        x += float(np.ptp(w.points()[:, 0])) + gap * height
        t += 300.0
    return Ink(strokes, " ".join(w.text or "" for w in words))


def stack(lines: list[Ink], height: float = 100.0, spacing: float = 2.0, slopes: list[float] | None = None,
          order: list[int] | None = None, indent: list[float] | None = None) -> tuple[Ink, np.ndarray]:
    """Lines one under another, `spacing` writing heights apart, written in `order` (default top
    to bottom). Returns the page (strokes in writing order, label = lines joined by newlines,
    top to bottom) and each stroke's line."""
    order = order if order is not None else list(range(len(lines)))
    placed: list[tuple[list[Stroke], int]] = []
    t = 0.0
    for i in order:
        line = normalized(lines[i], height)
        dx = indent[i] * height if indent else 0.0
        moved, t = _moved(line, dx, i * spacing * height, t, slopes[i] if slopes else 0.0)
        placed.append((moved, i))
        t += 1000.0
    strokes = [s for moved, _ in placed for s in moved]
    src = np.array([i for moved, i in placed for _ in moved], dtype=np.int64)
    return Ink(strokes, "\n".join(line.text or "" for line in lines)), src


def delay_small_strokes(page: Ink, src: np.ndarray, share: float = 0.5, after_page: bool = True,
                        seed: int = 0) -> tuple[Ink, np.ndarray]:
    """Move some small strokes (dots, crosses, commas: under a third of the page's typical stroke
    height) to the end of their line's writing (`after_page=False`) or of the page's."""
    rng = np.random.default_rng(seed)
    h = np.array([np.ptp(s.points[:, 1]) for s in page.strokes])
    small = np.nonzero((h < np.percentile(h, 75) / 3) & (rng.random(len(h)) < share))[0]
    t_end = max(s.points[-1, 2] for s in page.strokes)
    strokes = [Stroke(s.points.copy(), s.pointer_type) for s in page.strokes]
    for n, k in enumerate(small):
        if after_page:
            t = t_end + 200.0 * (n + 1)
        else:
            t = max(s.points[-1, 2] for s, line in zip(strokes, src) if line == src[k]) + 50.0 + n
        strokes[k].points[:, 2] += t - strokes[k].points[0, 2]
    order = np.argsort([s.points[0, 2] for s in strokes], kind="stable")
    return Ink([strokes[i] for i in order], page.text), src[order]


def superimposed(lines: list[Ink], height: float = 100.0) -> tuple[Ink, np.ndarray]:
    """Each line written over the previous one, in the same place (a small screen, one line at a
    time): only time order tells them apart."""
    return stack(lines, height, spacing=0.0)
