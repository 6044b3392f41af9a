"""Lines and pages composed from real word or line inks, with the source of every stroke known.

Lines of one writer's words (`lines_from_words`, `hwr data compose-lines`) are training data: the
ink is real, the gaps between words follow IAM-OnDB's, and there are as many writers as the word
collection has (UNIPEN: 514).

For measuring and testing line segmentation where no page data exists: the ink is real, only
its placement is made up, and the ways people really fill a page can be staged one at a time:
sloping lines, dots and crosses added after the line or the page, a line squeezed in later
between two others, a line written over the previous one. `hwr.pages` builds real IAM-OnDB
pages from the line files of one form instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

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


def line_of_words(words: list[Ink], height: float = 100.0, gap: float | Sequence[float] = 0.6,
                  sizes: Sequence[float] | None = None, shifts: Sequence[float] | None = None) -> Ink:
    """Word inks written side by side as one line, in time order.

    gap: writing heights between one word's right edge and the next one's left edge (one value,
    or one per gap). sizes: each word's writing height relative to `height`; shifts: each
    word's vertical offset in writing heights (down): a hand does not write every word alike.
    """
    gaps = np.broadcast_to(np.asarray(gap, dtype=float), (max(len(words) - 1, 0),))
    strokes: list[Stroke] = []
    x, t = 0.0, 0.0
    for i, w in enumerate(words):
        w = normalized(w, height * (sizes[i] if sizes is not None else 1.0))
        moved, t = _moved(w, x, height * (shifts[i] if shifts is not None else 0.0), t)
        strokes += moved
        x += float(np.ptp(w.points()[:, 0])) + (gaps[i] * height if i < len(gaps) else 0.0)
        t += 300.0
    return Ink(strokes, " ".join(w.text or "" for w in words))


# Word gaps at the spaces of IAM-OnDB's testset_v labels, in writing heights (scripts/space_study.py,
# MODEL_CARD.md "Spaces"): median 0.99, and 6 / 18 / 51 % of them under 0.4 / 0.6 / 1.0 heights, which
# a log-normal of median 0.95 and log-spread 0.55 matches (6 / 20 / 54 %). The spread is split
# between the writer (a line's gaps are alike) and the gap.
GAP_MEDIAN = 0.95
GAP_SPREAD_LINE = 0.25
GAP_SPREAD_WORD = 0.48  # sqrt(0.25**2 + 0.48**2) = 0.54


def writer_line(words: list[Ink], rng: np.random.Generator, height: float = 100.0) -> Ink:
    """One line of one writer's word inks with the gaps, sizes and baseline wander of handwriting:
    lines composed this way teach spaces where real lines are few (the words' writers, not
    IAM-OnDB's 200)."""
    n = len(words)
    gaps = GAP_MEDIAN * np.exp(rng.normal(0.0, GAP_SPREAD_LINE) + rng.normal(0.0, GAP_SPREAD_WORD, max(n - 1, 0)))
    sizes = np.exp(rng.normal(0.0, 0.08, n))
    shifts = np.cumsum(rng.normal(0.0, 0.04, n))  # a baseline that wanders a little, not jumps
    return line_of_words(words, height, gaps, sizes, shifts - shifts.mean())


WORDS_PER_LINE = (3, 8)  # IAM-OnDB lines hold ~7 words; shorter ones keep a line one writer's when words are few
COMPOSED_LINES = 20_000  # `hwr data compose-lines`: about three times IAM-OnDB's training lines


def lines_from_words(words_by_writer: dict[str, list[Ink]], count: int, rng: np.random.Generator,
                     words_per_line: tuple[int, int] = WORDS_PER_LINE) -> Iterator[tuple[str, list[int], Ink]]:
    """`count` lines, each of distinct words of one writer: (writer, the words' indices in that
    writer's list, the line). Writers are drawn in proportion to their words, so every word is
    about as likely to be used; a writer with fewer words than a line asks for gives a shorter line."""
    lo, hi = words_per_line
    if not 1 <= lo <= hi:
        raise ValueError(f"words per line must be 1 <= min <= max, not {words_per_line}")
    writers = [w for w, ws in words_by_writer.items() if len(ws) >= lo]
    if not writers:
        raise ValueError(f"no writer has {lo} words or more")
    share = np.array([len(words_by_writer[w]) for w in writers], dtype=float)
    share /= share.sum()
    for _ in range(count):
        writer = writers[rng.choice(len(writers), p=share)]
        pool = words_by_writer[writer]
        picks = rng.choice(len(pool), size=min(int(rng.integers(lo, hi + 1)), len(pool)), replace=False).tolist()
        yield writer, picks, writer_line([pool[i] for i in picks], rng)


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


def compose_lines_store(src: str | os.PathLike, out: str | os.PathLike, count: int = COMPOSED_LINES, seed: int = 0,
                        words_per_line: tuple[int, int] = WORDS_PER_LINE, progress: bool = True) -> dict:
    """Write `count` lines composed from the single-word samples of `src` (one writer per line,
    `writer_line`) to the store `out`, all or nothing; returns a summary.

    A word is a sample whose label is one word (no whitespace) and whose writer is known: words
    of unknown writers would mix hands within a line. Each line's id lists its words' ids, so
    every stroke can be traced to the file it came from. The same src, count and seed give the
    same store.
    """
    from tqdm import tqdm

    from .store import Sample, Store, StoreWriter

    words: dict[str, list[Ink]] = {}
    ids: dict[str, list[str]] = {}
    skipped = 0
    with Store(src) as s:
        meta = s.meta
        for i in range(len(s)):
            text, writer = meta["text"][i], meta["writer"][i]
            if not text or any(c.isspace() for c in text):
                continue
            if not writer:
                skipped += 1
                continue
            words.setdefault(writer, []).append(s.ink(i))
            ids.setdefault(writer, []).append(meta["id"][i])
    if not words:
        raise ValueError(f"{src} has no single-word samples with a writer to compose lines from")
    lines = lines_from_words(words, count, np.random.default_rng(seed), words_per_line)
    samples = (Sample(ink, id=f"line{k}:" + "|".join(ids[writer][j] for j in picks), writer=writer,
                      source="lines-of-words")
               for k, (writer, picks, ink) in enumerate(tqdm(lines, total=count, desc="compose lines",
                                                             unit=" lines", disable=not progress, delay=1.0)))
    with StoreWriter(out, created_by="hwr data compose-lines") as w:
        written = w.add(samples)
    return {"lines": written, "writers": len(words), "words": sum(len(v) for v in words.values()),
            "words_without_writer": skipped}
