"""Line segmentation of online ink: the strokes of a page, grouped into lines in reading order.

The recognizer reads one line at a time, so a page must first be cut into lines. Online ink
carries two clues, and each fails alone:

* **Time**: people write a line left to right and then sweep back to start the next one, so
  cutting the stroke sequence at each return sweep finds most lines, even lines written over
  each other (superimposed writing on a small screen). But strokes are also added later: i-dots,
  t-crosses and punctuation after the word or line, a correction, a whole line squeezed in
  between two others.
* **Geometry**: lines are horizontal bands, which finds late strokes their line; but bands of
  sloping or tightly spaced lines touch, and superimposed lines share one band.

So: (1) walk the strokes in time order and start a new *run* where a stroke that shapes the
writing (not a dot or a dash) lands away from the current run's band after a return sweep, or
far from it; (2) merge runs that share a band and do not overlap (a line written in two
sittings, a correction), keeping runs that do overlap apart (superimposed lines); (3) move
small strokes written late to the line whose band they sit in; (4) order lines top to bottom,
and lines sharing a band by time. Units are the height of the strokes themselves, so the same
settings serve a whiteboard (IAM-OnDB, thousands of units per line) and a canvas (tens of px).

Measured on IAM-OnDB pages and composed pages: `scripts/bench_pages.py` (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ink import Ink, InkError


@dataclass(frozen=True)
class LayoutConfig:
    """Thresholds of the segmentation, in units of a line's band height (about the height of
    its writing strokes), so one set serves a whiteboard and a canvas. Set on IAM-OnDB trainset
    and testset_v pages (`scripts/bench_pages.py --split testset_v`), never on testset_f."""

    # which strokes shape a band
    main_height: float = 0.45     # share of the page's typical stroke height (smaller: dots, dashes)
    # cutting the writing into runs (`_runs`)
    new_line_offset: float = 0.8  # a shaping stroke this far off the band, after a return sweep, starts a line
    lone_offset: float = 1.0      # ... or this far when the run has one shaping stroke so far
    return_sweep: float = 0.5     # starting this far left of the last shaping stroke's start is a return sweep
    far_offset: float = 2.0       # this far off the band starts a line at once (a line above, or far below)
    rewrite_sweep: float = 4.0    # sweeping back this far (and half the run's width) may start a line written
                                  # over the previous one; `_merge` decides whether it was a correction
    max_runs: int = 5000          # more runs than this is not writing: refused before the quadratic part
    # joining runs into lines (`_merge`)
    reach: float = 4.0            # bands further apart than this are never compared
    same_band: float = 0.5        # runs whose strokes sit this close to each other's band share it
    superimposed: float = 0.5     # runs sharing a band stay apart when they overlap this share of the narrower
    alike_width: float = 0.4      # ... and the narrower is this share of the wider (else: a word rewritten)
    small_run: int = 2            # ... and both have more shaping strokes than this
    word_gap: float = 6.0         # the widest gap between words of one line
    overlap_back: float = 3.0     # a run going on a line may start this far left of the line's end
    continuation: float = 2.0     # a run starting right of a line this close to where the line goes continues it
    # a stroke or two cut off from their line (`_absorb_fragments`)
    fragment_reach: float = 3.0   # at most this far from the line's band
    beside: float = 2.0           # this close to the stroke written just before or after it
    fragment_drop: float = 1.0    # unless narrow, its centre this close to that stroke's
    # small strokes written late (`_move_late_strokes`)
    late_stroke: float = 1.2      # a small stroke this far from its line's band may belong to another line
    nearer: float = 0.3           # ... and moves to a band this much nearer
    clearly_nearer: float = 0.6   # inside its band, only to one this much nearer (a small letter that opened
                                  # a line before the stroke that started it)


@dataclass
class _Band:
    """A line's band: where its shaping strokes' centres lie (a robust line fit) and their height."""

    strokes: list[int] = field(default_factory=list)  # all strokes, time order
    shaping: list[int] = field(default_factory=list)  # the strokes that shape the band

    def fit(self, g: _Geometry) -> None:
        idx = np.array(self.shaping or self.strokes)
        # a band is at least most of the page's typical stroke height: a run of small letters or
        # punctuation alone would otherwise look like a thin band that the next capital falls out of
        self.height = max(float(np.median(g.h[idx])), 0.8 * g.unit)
        self.x0, self.x1 = float(g.x0[idx].min()), float(g.x1[idx].max())
        cx, cy = g.cx[idx], g.cy[idx]
        self.cx = float(cx.mean())
        self.slope = 0.0
        if len(idx) >= 3 and self.x1 - self.x0 > 3 * self.height:
            dx = cx - self.cx
            self.slope = float(np.clip((dx * (cy - cy.mean())).sum() / max((dx * dx).sum(), 1e-12), -0.15, 0.15))
        self.cy = float(np.median(cy - self.slope * (cx - self.cx)))

    def absorb(self, other: _Band, g: _Geometry) -> None:
        """Take in another run's strokes (they are one line) and fit the band again."""
        self.strokes += other.strokes
        self.shaping += other.shaping
        self.fit(g)

    def y_at(self, x: float | np.ndarray):
        return self.cy + self.slope * (np.asarray(x) - self.cx)

    def offset(self, g: _Geometry, s: int | np.ndarray):
        """Vertical distance of stroke centres from the band, in band heights."""
        return np.abs(g.cy[s] - self.y_at(g.cx[s])) / self.height


class _Geometry:
    """Per-stroke boxes, centres and start times, computed once with numpy."""

    def __init__(self, ink: Ink):
        lengths = ink.stroke_lengths()
        pts = ink.points()
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        x, y = pts[:, 0], pts[:, 1]
        self.x0, self.x1 = np.minimum.reduceat(x, starts), np.maximum.reduceat(x, starts)
        self.y0, self.y1 = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
        self.cx, self.cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        self.h = self.y1 - self.y0
        t = pts[starts, 2]
        # time order when every stroke is timed, else the order of the strokes (a canvas sends them as drawn)
        self.order = np.argsort(t, kind="stable") if not np.isnan(t).any() else np.arange(len(lengths))
        self.t = np.empty(len(lengths))
        self.t[self.order] = np.arange(len(lengths))  # rank in writing order
        extent = max(float(np.ptp(y)), float(np.ptp(x)), 1e-9)
        self.unit = max(float(np.percentile(self.h, 75)), extent * 1e-3)  # typical height of a writing stroke


def segment_lines(ink: Ink, config: LayoutConfig | None = None) -> list[list[int]]:
    """Stroke indices of each line, lines in reading order, strokes in writing order.

    Every stroke is in exactly one line. A one-line ink gives one line holding every stroke.
    """
    cfg = config or LayoutConfig()
    if not ink.strokes:
        raise InkError("ink is empty: it has no strokes")
    if any(len(s) == 0 for s in ink.strokes):
        raise InkError("a stroke has no points")
    g = _Geometry(ink)
    shaping = g.h >= cfg.main_height * g.unit
    runs = _runs(g, shaping, cfg)
    lines = _merge(g, runs, cfg)
    _absorb_fragments(g, lines, cfg)
    _move_late_strokes(g, lines, movable=~shaping, cfg=cfg)
    lines = [b for b in lines if b.strokes]
    for b in lines:
        b.strokes.sort(key=lambda s: g.t[s])
    return [[int(s) for s in b.strokes] for b in _reading_order(g, lines, cfg)]


def _runs(g: _Geometry, shaping: np.ndarray, cfg: LayoutConfig) -> list[_Band]:
    """Cut the strokes, in writing order, where the writer starts a new line."""
    runs: list[_Band] = []
    cur: _Band | None = None
    last = -1  # the current run's latest shaping stroke: where the pen was
    for s in g.order:
        if cur is not None and shaping[s] and cur.shaping and _starts_line(g, cur, int(s), last, cfg):
            cur = None
        if cur is None:
            cur = _Band()
            runs.append(cur)
        cur.strokes.append(int(s))
        if shaping[s]:
            cur.shaping.append(int(s))
            cur.fit(g)
            last = int(s)
    return runs


def _starts_line(g: _Geometry, run: _Band, s: int, last: int, cfg: LayoutConfig) -> bool:
    """A shaping stroke starts a new line when it lands away from the band and starts left of
    where the previous one started (a return sweep, even after a one-word line), or lands far
    from the band, or sweeps back to the start of a long run (perhaps a line written over this
    one: `_merge` decides)."""
    d = float(run.offset(g, s))
    if d > cfg.far_offset:
        return True
    if len(run.shaping) < 2:  # a band read off one stroke is a guess: ask for a clearer drop
        d *= cfg.new_line_offset / cfg.lone_offset
    if d > cfg.new_line_offset and (g.x0[last] - g.x0[s]) / run.height > cfg.return_sweep:
        return True
    if d > cfg.new_line_offset and (run.x1 - g.x0[s]) / run.height > cfg.return_sweep:
        return True  # not written on to the right of the run: under (or over) it
    back = (g.x1[last] - g.x0[s]) / run.height  # how far left of the pen's last position
    width = (run.x1 - run.x0) / run.height
    return back > max(cfg.rewrite_sweep, width / 2) and g.x0[s] < run.x0 + (run.x1 - run.x0) / 4


def _merge(g: _Geometry, runs: list[_Band], cfg: LayoutConfig) -> list[_Band]:
    """Join runs of one line: a line written in two sittings, a correction, late dots and dashes.

    Two runs sharing a band stay apart only when both are substantial and overlap horizontally:
    that is a line written over another one, not a word added to it.
    """
    if len(runs) > cfg.max_runs:
        raise InkError(f"the strokes break into {len(runs):,} separate runs of writing, not lines; "
                       "is this handwriting? (read it with layout='line', or split the ink)")
    lines: list[_Band] = []
    for run in runs:
        run.fit(g)
        # only bands within reach can be the run's line: keeps a page of scribbles from costing
        # runs x lines band comparisons
        near = [line for line in lines
                if abs(line.y_at(run.cx) - run.cy) < cfg.reach * max(line.height, run.height)]
        if not near and not run.shaping:
            near = lines  # a stray dot far from everything still belongs to some line
        dist = [_band_distance(g, line, run) for line in near]
        best = near[int(np.argmin(dist))] if near else None
        if best is not None and not run.shaping:
            join = True  # dots and dashes only: their own line would be no line; late strokes are placed below
        elif best is not None and min(dist) < cfg.same_band:
            substantial = min(len(run.shaping), len(best.shaping)) > cfg.small_run
            wa, wb = best.x1 - best.x0, run.x1 - run.x0
            alike = min(wa, wb) >= cfg.alike_width * max(wa, wb)  # a word rewritten is no second line
            join = not (substantial and alike and _overlap(best, run) >= cfg.superimposed)
        else:
            best = next((line for line in lines if _continues(line, run, cfg)), None)
            join = best is not None
        if join:
            best.absorb(run, g)
        else:
            lines.append(run)
    return lines


def _continues(line: _Band, run: _Band, cfg: LayoutConfig) -> bool:
    """The run goes on to the right of the line, where the line's slope would put it (a sloping
    line whose slope the run's first strokes could not show yet)."""
    start, end = line.x0 + line.height, line.x1 + cfg.word_gap * line.height
    if run.x0 < max(line.x1 - cfg.overlap_back * line.height, start) or run.x0 > end:
        return False
    sloped = abs(run.y_at(run.x0) - line.y_at(run.x0))
    flat = abs(run.cy - line.y_at(line.x1))  # a slope read off a few words is noisy: either may be right
    return min(sloped, flat) < cfg.continuation * line.height


def _band_distance(g: _Geometry, a: _Band, b: _Band) -> float:
    """How far apart two bands are: the median distance of one's strokes from the other's band, in
    that band's heights, the nearer way round (a tall capital's own band holds the line beside it)."""
    def one_way(line: _Band, run: _Band) -> float:
        return float(np.median(line.offset(g, np.array(run.shaping or run.strokes))))
    return min(one_way(a, b), one_way(b, a))


def _overlap(a: _Band, b: _Band) -> float:
    """Horizontal overlap of two bands, as a share of the narrower one."""
    inter = min(a.x1, b.x1) - max(a.x0, b.x0)
    return max(inter, 0.0) / max(min(a.x1 - a.x0, b.x1 - b.x0), 1e-9)


def _absorb_fragments(g: _Geometry, lines: list[_Band], cfg: LayoutConfig) -> None:
    """A "line" of one or two strokes (a capital written apart from its word, a quote mark high
    above the words) joins the line of the stroke written just before or after it, when that
    stroke is beside it and its band is near. The last line of a paragraph, a single short word,
    is not beside the end of the line before it: it starts at the left margin."""
    for frag in sorted(lines, key=lambda b: len(b.strokes)):
        if len(lines) < 2 or len(frag.shaping) > cfg.small_run:
            continue
        ranks = [g.t[s] for s in frag.strokes]
        before = int(g.order[int(min(ranks)) - 1]) if min(ranks) > 0 else None
        after = int(g.order[int(max(ranks)) + 1]) if max(ranks) + 1 < len(g.order) else None
        best, best_d = None, cfg.fragment_reach
        for line in lines:
            if line is frag:
                continue
            h = line.height
            # written on from the stroke before it (not after a return sweep), or leading into the next one
            narrow = frag.x1 - frag.x0 < 1.5 * h  # a quote mark, a comma: may sit well above or below
            after_it = (before in line.strokes and frag.x0 > g.x0[before] + 0.3 * h and _gap(g, before, frag) < cfg.beside * h
                        and (narrow or abs(g.cy[before] - frag.cy) < cfg.fragment_drop * h))
            before_it = (after in line.strokes and g.x0[after] > frag.x0 - 2 * h and _gap(g, after, frag) < cfg.beside * h
                         and _vertical_share(g, line, frag) > 0.5)
            if after_it or before_it:
                d = _band_distance(g, line, frag)
                if d < best_d:
                    best, best_d = line, d
        if best is not None:
            best.absorb(frag, g)
            lines.remove(frag)


def _vertical_share(g: _Geometry, line: _Band, frag: _Band) -> float:
    """Share of the fragment's height inside the height of the line's writing beside it."""
    idx = np.array(line.strokes)
    near = idx[(g.x1[idx] >= frag.x0 - 3 * line.height) & (g.x0[idx] <= frag.x1 + 3 * line.height)]
    if not len(near):
        return 0.0
    f = np.array(frag.strokes)
    f0, f1 = float(g.y0[f].min()), float(g.y1[f].max())
    inter = min(float(g.y1[near].max()), f1) - max(float(g.y0[near].min()), f0)
    return max(inter, 0.0) / max(f1 - f0, 1e-9)


def _gap(g: _Geometry, s: int, band: _Band) -> float:
    """Horizontal gap between stroke s and a band's strokes (0 when they overlap)."""
    return max(band.x0 - g.x1[s], g.x0[s] - band.x1, 0.0)


def _move_late_strokes(g: _Geometry, lines: list[_Band], movable: np.ndarray, cfg: LayoutConfig) -> None:
    """A small stroke written late (an i-dot after the page is done) goes to the line it sits on."""
    if len(lines) < 2:
        return
    spans = []  # each line's horizontal extent over all its strokes, dots included
    for line in lines:
        line.fit(g)
        idx = np.array(line.strokes)
        spans.append((float(g.x0[idx].min()) - line.height, float(g.x1[idx].max()) + line.height))
    for li, line in enumerate(lines):
        for s in [s for s in line.strokes if movable[s]]:
            inside = spans[li][0] <= g.cx[s] <= spans[li][1]
            own = float(line.offset(g, s))
            if inside and own <= cfg.late_stroke:
                margin = cfg.clearly_nearer  # in its line's band: only a line it sits squarely in takes it
            else:
                margin = cfg.nearer
            home, home_d = li, own + (0 if inside else cfg.late_stroke)
            for lj, other in enumerate(lines):
                if lj != li and spans[lj][0] <= g.cx[s] <= spans[lj][1]:
                    d = float(other.offset(g, s))
                    if d < home_d - margin:
                        home, home_d = lj, d
            if home != li:
                line.strokes.remove(s)
                lines[home].strokes.append(s)


def _reading_order(g: _Geometry, lines: list[_Band], cfg: LayoutConfig) -> list[_Band]:
    """Top to bottom; lines in one band (written over each other) in the order they were written.

    Lines are first grouped into bands (two lines sharing a band are in one group, and so are
    their partners), then groups go top to bottom and each group's lines by time: a total
    order, whatever order the lines come in.
    """
    for b in lines:
        b.fit(g)
    first = [min(g.t[s] for s in b.strokes) for b in lines]
    group = list(range(len(lines)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, a in enumerate(lines):
        for j in range(i + 1, len(lines)):
            b = lines[j]
            if abs(a.cy - b.y_at(a.cx)) < cfg.same_band * max(a.height, b.height):
                group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in range(len(lines)):
        members.setdefault(root(i), []).append(i)
    groups = sorted(members.values(), key=lambda m: float(np.mean([lines[i].cy for i in m])))
    return [lines[i] for m in groups for i in sorted(m, key=lambda i: first[i])]


def line_inks(ink: Ink, lines: list[list[int]]) -> list[Ink]:
    """One ink per line, holding that line's strokes (shared, not copied) in the given order."""
    return [Ink([ink.strokes[s] for s in line]) for line in lines]
