"""Pages: the lines of one handwritten form put back together as the ink they were written as.

Recognising a page (several lines in one ink) needs labelled pages to train and score on, but
the corpora we have come cut into lines. In IAM-OnDB the line files of a form share the
whiteboard's coordinate frame and clock, so the strokes of all its lines, in time order, are the
page exactly as it was written: nothing has to be invented or shifted. `compose_page` does that
merge and remembers, for every page stroke, the line it came from (`stroke_line`): the truth a
page's line segmentation is scored against. `form_pages` turns a line store's samples into pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import InputError
from .ink import Ink, InkError, Stroke
from .store import Sample

LINE_ID = re.compile(r"^(.+)-(\d\d)$")  # a01-000u-01: form a01-000u, line 1 (h01-030 is a form, not a line)


def compose_page(lines: Sequence[Ink], texts: Sequence[str] | None = None) -> tuple[Ink, np.ndarray]:
    """Merge line inks into one page ink; returns (page, stroke_line).

    The inks must share one coordinate frame and one clock (absolute coordinates and times,
    as `Store.ink` returns them): strokes are not moved, only interleaved by start time, so the
    page shows the order the writer really wrote in (a late i-dot on line 1 comes after line 2
    began). The sort is stable, so equal start times keep line order; untimed inks keep line
    order entirely (there is nothing to interleave by). The label is `texts` (default: each
    ink's `.text`) joined by "\\n", or None when no line is labelled. `stroke_line[s]` is the
    index in `lines` of page stroke s. Strokes are copied: repairing the page never alters
    the line inks. Raises `InputError` for no lines, an empty line, a label holding a newline
    (it would make the page's label lines disagree with its ink lines), lines labelled only in
    part, and timed and untimed lines mixed (an ink gives time for all points or none).
    """
    if not lines:
        raise InputError("a page needs at least one line ink")
    if texts is None:
        texts = [ink.text for ink in lines]
    elif len(texts) != len(lines):
        raise InputError(f"{len(texts)} texts for {len(lines)} line inks; give one label per line")
    labelled = [t is not None for t in texts]
    if any(labelled) and not all(labelled):
        raise InputError(f"line {labelled.index(False)} of the page has no label; label every line or none")
    for k, t in enumerate(texts):
        if t is not None and "\n" in t:
            raise InputError(f"the label of line {k} holds a newline; a page takes one single-line label per line")
    strokes: list[Stroke] = []
    owner: list[int] = []
    for k, ink in enumerate(lines):
        if not ink.strokes:
            raise InputError(f"line {k} of the page has no strokes")
        strokes += [Stroke.trusted(s.points.copy(), s.pointer_type) for s in ink.strokes]
        owner += [k] * len(ink.strokes)
    timed = [s.has_time for s in strokes]
    if all(timed):
        order = np.argsort([s.points[0, 2] for s in strokes], kind="stable")
    elif any(timed):
        raise InputError("some lines of the page are timed and some are not; give times for all lines or none")
    else:
        order = np.arange(len(strokes))
    text = "\n".join(texts) if all(labelled) else None
    return Ink([strokes[i] for i in order], text), np.asarray(owner, np.int32)[order]


def form_id(sample_id: str) -> tuple[str, int] | None:
    """(form id, line number) of a line id such as a01-000u-01, else None."""
    m = LINE_ID.match(sample_id)
    return (m.group(1), int(m.group(2))) if m else None


def form_pages(samples: Iterable[Sample], line_counts: Mapping[str, int] | None = None,
               on_skip: Callable[[str, str], None] | None = None) -> Iterator[Sample]:
    """Page samples, one per form, from line samples with ids FORM-NN (IAM-OnDB's a01-000u-01).

    Lines are put in line-number order (which is top to bottom), so the page's label lines and
    its `stroke_lines` (0 = line 01) follow the form. Each page keeps its lines' writer, split
    and source, takes the form id as its id, and comes in form-id order. Lines of a form may
    arrive in any order (an archive's order is not sorted), so every sample is held in memory
    until all are read: for IAM-OnDB some hundreds of MB.

    A page missing a line would pair an ink with a label that does not show all of it, so a
    form with a gap in its line numbers, fewer lines than `line_counts[form]` (what its
    transcription lists), a line given twice, an unlabelled line, lines of different writers
    or splits, or a page ink that fails validation is left out: `on_skip(form, reason)` is
    told why, and without `on_skip` it is an `InputError`, so no form disappears unnoticed.
    """
    forms: dict[str, dict[int, list[Sample]]] = {}
    for s in samples:
        key = form_id(s.id)
        if key is None:
            raise InputError(f"sample id {s.id[:40]!r} is not a line id FORM-NN (as a01-000u-01); "
                             "pages are made from a line store such as IAM-OnDB's")
        if s.stroke_lines is not None:
            raise InputError(f"sample {s.id[:40]!r} is a page already; pages are made from line samples")
        forms.setdefault(key[0], {}).setdefault(key[1], []).append(s)
    for form in sorted(forms):
        lines = forms[form]
        why = _incomplete(lines, (line_counts or {}).get(form, 0))
        page = None
        if why is None:
            ordered = [lines[k][0] for k in sorted(lines)]
            ink, stroke_line = compose_page([s.ink for s in ordered])
            first = ordered[0]
            page = Sample(ink, id=form, writer=first.writer, split=first.split, source=first.source,
                          stroke_lines=stroke_line)
            try:
                page.validate()
            except InkError as e:
                why = f"the page ink is invalid ({e})"
        if why is None:
            yield page
        elif on_skip is None:
            raise InputError(f"form {form}: {why}; its page cannot be made")
        else:
            on_skip(form, why)


def _incomplete(lines: dict[int, list[Sample]], expected: int) -> str | None:
    """Why these lines (number -> samples) do not make a whole page, or None if they do."""
    missing = sorted(set(range(1, max(max(lines), expected) + 1)) - set(lines))
    if missing:
        return "line" + ("s " if len(missing) > 1 else " ") + ", ".join(f"{k:02d}" for k in missing) + " missing"
    for k in sorted(lines):
        if len(lines[k]) > 1:
            return f"line {k:02d} given {len(lines[k])} times"
        if not lines[k][0].text:
            return f"line {k:02d} has no label"
    for field in ("writer", "split"):
        values = {getattr(s[0], field) for s in lines.values()}
        if len(values) > 1:
            return f"its lines have different {field}s ({', '.join(sorted(map(repr, values)))})"
    return None
