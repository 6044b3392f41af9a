"""Character and word error rates, corpus-level: total edits / total reference units; and the
metrics of pages (several lines in one ink): page CER, line counts, segmentation errors."""

from __future__ import annotations

from collections.abc import Iterable

import editdistance
import numpy as np

from .errors import ConfigError, InputError


def char_edits(ref: str, hyp: str) -> int:
    return editdistance.eval(ref, hyp)


def word_edits(ref: str, hyp: str) -> int:
    return editdistance.eval(ref.split(), hyp.split())


def cer(refs: Iterable[str], hyps: Iterable[str]) -> float:
    """Sum of character edit distances / sum of reference lengths (0.062 = 6.2%)."""
    edits = chars = 0
    for r, h in zip(refs, hyps, strict=True):
        edits += char_edits(r, h)
        chars += len(r)
    return edits / max(chars, 1)


def wer(refs: Iterable[str], hyps: Iterable[str]) -> float:
    """Sum of word edit distances (words split on whitespace) / sum of reference words."""
    edits = words = 0
    for r, h in zip(refs, hyps, strict=True):
        edits += word_edits(r, h)
        words += len(r.split())
    return edits / max(words, 1)


# ---------------------------------------------------------------------- pages
# A page's text is its lines joined by "\n". Reading a page can go wrong in two ways the line CER
# mixes up: reading the characters, and cutting the ink into lines. These metrics keep them apart.

def _page_text(text: str, newlines: str) -> str:
    if newlines == "char":
        return text
    if newlines == "space":
        return text.replace("\n", " ")
    raise ConfigError(f"newlines must be 'char' or 'space', not {newlines!r}")


def page_cer(refs: Iterable[str], hyps: Iterable[str], newlines: str = "char") -> float:
    """Corpus CER of pages. newlines="char": a "\\n" is a character like any other, so a line
    broken in the wrong place costs edits; "space": every "\\n" counts as a space (in reference
    and hypothesis alike), which scores the reading alone, as if the page were one long line."""
    refs, hyps = list(refs), list(hyps)
    return cer([_page_text(r, newlines) for r in refs], [_page_text(h, newlines) for h in hyps])


def line_count(text: str) -> int:
    """Lines of a page text: "\\n" separates them (so "" is one empty line, as an empty page reads)."""
    return text.count("\n") + 1


def line_count_right(ref: str, hyp: str) -> bool:
    """Whether the hypothesis has as many lines as the reference."""
    return line_count(ref) == line_count(hyp)


def segmentation_errors(stroke_line_true: np.ndarray, predicted_lines: list[list[int]]) -> int:
    """Strokes put on the wrong line: known strokes minus those in a predicted line matched to theirs.

    `stroke_line_true[s]` is the true line of stroke s (-1: unknown, not counted);
    `predicted_lines[j]` lists the strokes the segmenter put on line j. Both are ordered top to
    bottom, so when they have the same number of lines, predicted line j is matched to the j-th
    true line: a segmentation that gets every line's content right but their order wrong is
    wrong. With different counts, lines are matched one to one by greedy largest overlap
    (repeatedly the pair sharing the most strokes, ties to the earlier lines). It is simple and
    deterministic; it can miss the best matching only when a predicted line straddles two true
    lines about equally, and then it counts more errors, never fewer (the optimal assignment
    would need scipy, which is not a dependency). A stroke no predicted line holds counts as an
    error. Raises `InputError` for a stroke index that is not one of the page's strokes or a
    stroke put on two lines.
    """
    truth = np.asarray(stroke_line_true)
    if truth.ndim != 1 or (len(truth) and not np.issubdtype(truth.dtype, np.integer)):
        raise InputError("stroke_line_true must be a 1-D array of integer line indices")
    owner = np.full(len(truth), -1, np.int64)
    for j, strokes in enumerate(predicted_lines):
        for s in strokes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < len(truth):
                raise InputError(f"predicted line {j} holds stroke {s}, but the page has {len(truth)} strokes")
            if owner[s] >= 0:
                raise InputError(f"stroke {s} is on predicted lines {owner[s]} and {j}; each stroke has one line")
            owner[s] = j
    true_lines = np.unique(truth[truth >= 0])  # sorted: top to bottom
    known = truth >= 0
    if not len(true_lines):
        return 0
    # overlap[j, l]: strokes of true line true_lines[l] that predicted line j holds
    overlap = np.zeros((len(predicted_lines), len(true_lines)), np.int64)
    held = known & (owner >= 0)
    np.add.at(overlap, (owner[held], np.searchsorted(true_lines, truth[held])), 1)
    if len(predicted_lines) == len(true_lines):
        matched = int(np.trace(overlap))
    else:
        matched = 0
        work = overlap.copy()
        while work.size and work.max() > 0:
            j, l = np.unravel_index(np.argmax(work), work.shape)  # first maximum: earliest lines win ties
            matched += int(work[j, l])
            work[j, :] = -1
            work[:, l] = -1
    return int(known.sum()) - matched


def page_summary(refs: list[str], hyps: list[str], stroke_lines: list[np.ndarray | None] | None = None,
                 predicted_lines: list[list[list[int]]] | None = None) -> dict:
    """Page metrics of a corpus in one dict: `cer` (newlines as characters), `cer_newline_as_space`,
    `line_count_right` (share of pages), and where stroke lines are known for some pages,
    `segmentation_errors` (strokes on a wrong line, summed), `segmented_strokes` (strokes
    with a known line) and `segmentation_error_rate` (their ratio). Pages without stroke lines
    (None) are left out of the segmentation figures, not counted as right."""
    if len(refs) != len(hyps):
        raise InputError(f"{len(refs)} reference pages but {len(hyps)} hypotheses")
    out = {"pages": len(refs), "cer": page_cer(refs, hyps, "char"),
           "cer_newline_as_space": page_cer(refs, hyps, "space"),
           "line_count_right": sum(map(line_count_right, refs, hyps)) / max(len(refs), 1)}
    if stroke_lines is not None and predicted_lines is not None:
        if not len(stroke_lines) == len(predicted_lines) == len(refs):
            raise InputError("give stroke lines and predicted lines for every page")
        pairs = [(t, p) for t, p in zip(stroke_lines, predicted_lines) if t is not None]
        if pairs:
            errors = sum(segmentation_errors(t, p) for t, p in pairs)
            strokes = sum(int((np.asarray(t) >= 0).sum()) for t, _ in pairs)
            out.update(segmentation_errors=errors, segmented_strokes=strokes,
                       segmentation_error_rate=errors / max(strokes, 1))
    return out
