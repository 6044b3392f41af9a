"""Character and word error rates, corpus-level: total edits / total reference units."""

from __future__ import annotations

from collections.abc import Iterable

import editdistance


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
