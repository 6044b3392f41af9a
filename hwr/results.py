"""What recognition returns: a page's text with its lines, candidates, character spans and
per-word alternatives, and how line results are put together into a page result.

One shape for one line and for a page: a one-line ink is a page of one line, so a caller
never needs two code paths (and a one-line result is exactly what it was before pages).
"""

from __future__ import annotations

import difflib
import heapq
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .align import CharSpan
from .decode import Hypothesis

_WORD = re.compile(r"\S+")


@dataclass
class Alternative:
    text: str
    score: float  # total log score of the best candidate reading the word this way

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Word:
    """A word of the best text, with the ways the candidates read it (the word itself first)."""

    text: str
    line: int          # index into Result.lines
    start: int         # offsets into Result.text: text == Result.text[start:end]
    end: int
    alternatives: list[Alternative]

    def as_dict(self) -> dict:
        return {"text": self.text, "line": self.line, "start": self.start, "end": self.end,
                "alternatives": [a.as_dict() for a in self.alternatives]}


@dataclass
class LineResult:
    text: str
    score: float
    candidates: list[Hypothesis]
    strokes: list[int]                       # indices of this line's strokes in the page ink
    char_spans: list[CharSpan] = field(default_factory=list)  # in page stroke and point indices

    def as_dict(self) -> dict:
        return {"text": self.text, "score": self.score,
                "candidates": [{"text": h.text, "score": h.score} for h in self.candidates],
                "strokes": self.strokes, "char_spans": [s.as_dict() for s in self.char_spans]}


@dataclass
class Result:
    """The page: `text` has one row per line ("\\n" between them); `char_spans` covers `text`
    (a newline's span has no strokes); `candidates` are whole-page readings, best first."""

    text: str
    score: float
    candidates: list[Hypothesis]
    char_spans: list[CharSpan] = field(default_factory=list)
    lines: list[LineResult] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"text": self.text, "score": self.score,
                "candidates": [{"text": h.text, "score": h.score} for h in self.candidates],
                "char_spans": [s.as_dict() for s in self.char_spans],
                "lines": [line.as_dict() for line in self.lines],
                "words": [w.as_dict() for w in self.words]}


def page_result(lines: list[LineResult], nbest: int, words: list[list[Word]], spans: bool = True) -> Result:
    """Join line results (in reading order) into the page's result; `spans`: whether the lines
    have character spans (then each newline gets one too, so the page's spans cover its text)."""
    if len(lines) == 1:
        line = lines[0]
        return Result(line.text, line.score, line.candidates, line.char_spans, lines, words[0])
    text = "\n".join(line.text for line in lines)
    spans: list[CharSpan] = []
    all_words: list[Word] = []
    offset = 0
    for i, line in enumerate(lines):
        if i and spans:
            p = spans[-1].point_end if spans else 0
            spans.append(CharSpan("\n", -1, p, p, []))
        spans += line.char_spans
        all_words += [Word(w.text, i, w.start + offset, w.end + offset, w.alternatives) for w in words[i]]
        offset += len(line.text) + 1
    return Result(text, sum(line.score for line in lines), page_candidates(lines, nbest), spans, lines, all_words)


def page_candidates(lines: list[LineResult], nbest: int) -> list[Hypothesis]:
    """The `nbest` best page readings: each line's best, then those that swap one line's reading
    for one of its candidates, by total score (the page score is the sum of its lines')."""
    best = [line.candidates[0] for line in lines]
    total = sum(h.score for h in best)
    swaps = [(total - best[i].score + h.score, i, k) for i, line in enumerate(lines)
             for k, h in enumerate(line.candidates) if k]
    out = [Hypothesis("\n".join(h.text for h in best), total, [])]
    for score, i, k in heapq.nlargest(nbest - 1, swaps):
        texts = [h.text for h in best]
        texts[i] = lines[i].candidates[k].text
        out.append(Hypothesis("\n".join(texts), score, []))
    return out


def word_alternatives(candidates: list[Hypothesis], line: int = 0) -> list[Word]:
    """Each word of the best candidate with the ways the other candidates read it.

    The candidates of a beam search mostly differ in a word or two; lining up each one's
    words with the best one's (difflib) gives, for the words it replaces one for one, another
    reading with that candidate's score. A word no candidate disagrees on has one alternative.
    """
    if not candidates:
        return []
    best = candidates[0]
    bounds = [(m.start(), m.end()) for m in _WORD.finditer(best.text)]
    words = [best.text[a:b] for a, b in bounds]
    alts: list[dict[str, float]] = [{w: best.score} for w in words]
    for h in candidates[1:]:
        other = h.text.split()
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words, b=other, autojunk=False).get_opcodes():
            if op == "replace" and i2 - i1 == j2 - j1:
                for i, j in zip(range(i1, i2), range(j1, j2)):
                    alts[i].setdefault(other[j], h.score)
    return [Word(w, line, a, b, [Alternative(t, s) for t, s in sorted(alt.items(), key=lambda kv: -kv[1])])
            for w, (a, b), alt in zip(words, bounds, alts)]


def spans_to_page(spans: list[CharSpan], strokes: list[int], line_lengths: np.ndarray,
                  page_lengths: np.ndarray) -> list[CharSpan]:
    """Character spans of a line ink (its strokes are page strokes `strokes`, in order) in page
    stroke and point indices. A span's points are its first and last point's page positions
    (a line's points are not contiguous in a page written out of order)."""
    local = np.concatenate([[0], np.cumsum(line_lengths)])
    page = np.concatenate([[0], np.cumsum(page_lengths)])

    def to_page(p: int) -> int:
        k = int(np.searchsorted(local, p, side="right") - 1)
        k = min(max(k, 0), len(strokes) - 1)
        return int(page[strokes[k]] + p - local[k])

    out = []
    for s in spans:
        a = to_page(s.point_start)
        b = to_page(s.point_end - 1) + 1 if s.point_end > s.point_start else a
        out.append(CharSpan(s.char, s.frame, a, b, [strokes[k] for k in s.strokes]))
    return out

