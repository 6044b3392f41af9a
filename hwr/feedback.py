"""What the app makes of a user's corrections: the text with the word readings they picked, and
the labelled line inks it saves.

The model reads and learns lines, so a corrected page is saved as one sample per written line
(the line's strokes with its line of the correction), never as one page-sized sample.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from .errors import InputError
from .ink import Ink
from .store import Sample

MIN_PERSONAL_SAMPLES = 10  # saved lines before the app offers a personal fine-tuning


class _Span(Protocol):  # recognizer.Word: where a word sits in Result.text
    start: int
    end: int


class _Line(Protocol):  # recognizer.LineResult: which page strokes a line holds
    strokes: Sequence[int]


def apply_picks(text: str, words: Sequence[_Span], picks: Sequence[str]) -> str:
    """`text` with `words[i]` (its `start:end` characters) replaced by `picks[i]`.

    Words must not overlap; they may come in any order. Everything between words (spaces, the
    newlines between lines) is kept, so the lines of a page stay lines.
    """
    if len(words) != len(picks):
        raise ValueError("one pick per word is needed")
    out, pos = [], 0
    for word, pick in sorted(zip(words, picks), key=lambda wp: wp[0].start):
        if word.start < pos or word.end < word.start or word.end > len(text):
            raise ValueError(f"word span {word.start}:{word.end} overlaps another or lies outside the text")
        out += [text[pos:word.start], pick]
        pos = word.end
    out.append(text[pos:])
    return "".join(out)


def labelled_lines(ink: Ink, lines: Sequence[_Line], text: str) -> list[Ink]:
    """One labelled ink per written line: the strokes of `lines[i]` (page stroke indices) labelled
    with the i-th line of `text`; a line whose correction is left empty is skipped (a scribble
    the user does not want kept).

    Raises `InputError` when `text` has a different number of lines than the page: each label
    would then be saved under another line's ink.
    """
    texts = [t.strip() for t in text.split("\n")]
    while len(texts) > len(lines) and not texts[-1]:  # a trailing newline is not a line
        texts.pop()
    if len(texts) != len(lines):
        raise InputError(f"the correction has {len(texts)} lines but the page has {len(lines)} written lines; "
                         "give each written line one line of text")
    return [Ink([ink.strokes[k] for k in sorted(line.strokes)], label)
            for line, label in zip(lines, texts) if label and len(line.strokes)]


def feedback_samples(inks: Sequence[Ink]) -> list[Sample]:
    """Store samples of a user's corrected inks: a fresh id each (saving twice keeps both), writer
    "me", no split (a personal fine-tuning trains on all of them), source "hwr-app"."""
    return [Sample(ink, id=f"app-{uuid.uuid4().hex[:12]}", writer="me", split="", source="hwr-app") for ink in inks]
