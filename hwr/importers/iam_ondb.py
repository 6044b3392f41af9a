"""IAM On-Line Handwriting Database (IAM-OnDB) importer.

Reads the official download as it comes: the tarballs `lineStrokes-all.tar.gz` and
`ascii-all.tar.gz` (streamed, never unpacked), or the unpacked `lineStrokes/` and `ascii/`
folders, or a folder holding either. A line's label is the k-th non-empty line after `CSR:`
in its form's ascii file. `splits_dir` holds the IAM-OnDB-t1 lists (trainset.txt, ...); form
ids are matched exactly, never by prefix (h01-030 and h01-030z are different forms).

A sample's id is its line id (a01-000u-01), unique in the database; a second file with the same
id is reported and left out. A broken line file (not XML, a point without `time`, a coordinate
that is not a number) is named in the report with the reason, and the import goes on.

With `pages=True` (`hwr data import iam-ondb --pages`) each form becomes one sample, its lines'
strokes merged in time order by `hwr.pages.form_pages` (the line files share the whiteboard's
frame and clock), labelled with the lines joined by "\n", with each stroke's line kept in
`stroke_lines`. A form missing a line is left out whole and named in the report.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ..ink import Ink, InkError, Stroke
from ..pages import form_id, form_pages
from ..store import Sample
from . import DataImportError, Report
from . import FileNotes
from .parallel import ordered_map

LINE_ID = re.compile(r"^([a-z]\d\d-\d\d\d[a-z]?)-(\d\d)$")
NO_TRANSCRIPTION = "please enter transcription here"


def read(sources: list[str], report: Report, splits_dir: str | None = None, pages: bool = False,
         **_) -> Iterator[Sample]:
    """Line samples (ids a01-000u-01), or with `pages` one page sample per form (id a01-000u)."""
    strokes_src, ascii_src = _locate(sources)
    notes = FileNotes(report)
    labels = _read_ascii(ascii_src, notes)
    split_of = _read_splits(splits_dir) if splits_dir else {}
    if splits_dir:
        report.notes.append(f"splits from {splits_dir}: " + ", ".join(sorted(set(split_of.values()))))
    lines = _read_lines(strokes_src, labels, split_of, report, notes, pages)
    if pages:
        yield from _pages(lines, labels, report)
    else:
        yield from (sample for _, _, sample, _ in lines if sample is not None)
    notes.finish()


def _read_lines(strokes_src: str, labels: dict[str, dict[int, str]], split_of: dict[str, str], report: Report,
                notes: FileNotes, pages: bool) -> Iterator[tuple[str, int, Sample | None, str]]:
    """(form, line number, sample, "") per line file, or (form, number, None, why it was skipped):
    a page needs to know which of its lines are missing. Skips are counted in `report` as lines."""
    jobs = _iter_files(strokes_src, ".xml", notes)
    repaired = placeholders = 0
    seen: set[str] = set()

    def skip(name: str, form: str, k: int, reason: str, detail: str = "") -> tuple[str, int, None, str]:
        report.skip(reason)
        if detail:
            notes.add(name, reason, detail)
        return form, k, None, reason

    for name, ink_or_error in ordered_map(_parse_job, jobs, chunk=32):
        line_id = Path(name).stem
        m = LINE_ID.match(line_id)
        if not m:
            report.skip("file name is not an IAM-OnDB line id")
            continue
        form, k = m.group(1), int(m.group(2))
        text = labels.get(form, {}).get(k)
        if text is None:
            yield skip(name, form, k, "no usable transcription (no CSR line for it)")
            continue
        if isinstance(ink_or_error, str):
            yield skip(name, form, k, "unreadable stroke XML", ink_or_error)
            continue
        ink = ink_or_error
        try:
            ink.validate()
        except InkError:
            try:  # IAM-OnDB's clock glitches inside a few strokes while the point order is right
                ink.validate(repair_time="clamp")
            except InkError as e:
                yield skip(name, form, k, "invalid ink", str(e))
                continue
            repaired += 1
        if line_id in seen:  # the first file of this id stands for the line: the page stays whole
            report.skip("duplicate line id (imported once)")
            notes.add(name, "duplicate line id (imported once)", line_id)
            continue
        seen.add(line_id)
        if text.strip().lower() == NO_TRANSCRIPTION:
            if pages:  # a page label that is mostly placeholder teaches nothing
                yield skip(name, form, k, "labelled with the CSR placeholder 'Please Enter Transcription here'")
                continue
            placeholders += 1  # kept, as the data's own rule defines the label; in no split
        ink.text = text
        split = split_of.get(form, "")
        yield form, k, Sample(ink, id=line_id, writer="", split=split, source="iam-ondb"), ""
    if placeholders:
        report.notes.append(f"{placeholders} lines are labelled with the CSR placeholder "
                            f"'Please Enter Transcription here' (kept; they are in no split)")
    if repaired:
        report.notes.append(f"clamped backwards timestamps in {repaired} lines (point order kept)")


def _pages(lines: Iterator[tuple[str, int, Sample | None, str]], labels: dict[str, dict[int, str]],
           report: Report) -> Iterator[Sample]:
    """One page per form whose every line (every CSR line, every line file) was imported.

    A form with a line left out (no transcription, unreadable, invalid, placeholder label) or a
    CSR line without its file is skipped whole, counted, and named with the reason in the notes:
    its page ink and label would not show the same text.
    """
    good: list[Sample] = []
    bad: dict[str, list[tuple[int, str]]] = {}
    for form, k, sample, why in lines:
        if sample is None:
            bad.setdefault(form, []).append((k, why))
        else:
            good.append(sample)
    named: list[str] = []

    def skip(form: str, why: str) -> None:
        report.skip("page of a form left out: a line is missing or was not imported (forms named below)")
        named.append(f"{form} ({why})")

    counts = {form: len(csr) for form, csr in labels.items()}
    made = joined = 0
    for page in form_pages((s for s in good if form_id(s.id)[0] not in bad), counts, skip):
        made += 1
        joined += int(page.stroke_lines.max()) + 1
        yield page
    for form, problems in sorted(bad.items()):
        k, why = min(problems)
        skip(form, f"line {k:02d}: {why}" + (f"; {len(problems) - 1} more lines left out" if len(problems) > 1 else ""))
    report.notes.append(f"--pages: {made:,} pages made of {joined:,} lines")
    if named:
        report.notes.append("pages left out: " + ", ".join(named[:20])
                            + (f" and {len(named) - 20} more" if len(named) > 20 else ""))


def _parse_job(job: tuple[str, bytes]) -> tuple[str, Ink | str]:
    name, data = job
    try:
        return name, parse_line_xml(data)
    except InkError as e:
        return name, str(e)


def parse_line_xml(data: bytes) -> Ink:
    """One IAM-OnDB line XML (StrokeSet/Stroke/Point@x,y,time in seconds) -> Ink (t in ms).

    Raises `InkError` saying what is wrong: not well-formed or unsafe XML (entities are refused),
    a point without x, y or time, a value that is not a finite number, no strokes.
    """
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as e:
        raise InkError(f"unsafe XML refused ({type(e).__name__}: entities and DTDs are not read)") from None
    except (SafeET.ParseError, LookupError, ValueError) as e:  # LookupError, ValueError: its declared encoding
        raise InkError(f"not well-formed XML ({e})") from None
    strokes = []
    for i, st in enumerate(root.iter("Stroke")):
        pts = []
        for j, p in enumerate(st.iter("Point")):
            vals = [p.get(a) for a in ("x", "y", "time")]
            if None in vals:
                missing = ("x", "y", "time")[vals.index(None)]
                raise InkError(f"point {j} of stroke {i} has no {missing} attribute")
            try:
                x, y, t = (float(v) for v in vals)
            except ValueError:
                raise InkError(f"point {j} of stroke {i}: {vals} are not all numbers") from None
            if not np.isfinite([x, y, t]).all():
                raise InkError(f"point {j} of stroke {i}: {vals} are not all finite numbers")
            pts.append((x, y, t * 1000.0))
        if pts:
            arr = np.full((len(pts), 4), np.nan)
            arr[:, :3] = pts
            strokes.append(Stroke(arr, "pen"))
    if not strokes:
        raise InkError("no strokes with points")
    return Ink(strokes)


def _locate(sources: list[str]) -> tuple[str, str]:
    """Find the lineStrokes and ascii sources (tarball or folder) among `sources`."""
    strokes = ascii_ = None
    candidates: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise DataImportError(f"{s}: no such file or folder")
        candidates.append(p)
        if p.is_dir():
            candidates.extend(sorted(p.iterdir()))
    for p in candidates:
        name = p.name
        if strokes is None and name.startswith("lineStrokes"):
            strokes = p
        elif ascii_ is None and name.startswith("ascii"):
            ascii_ = p
    if strokes is None or ascii_ is None:
        raise DataImportError("IAM-OnDB needs both lineStrokes (lineStrokes-all.tar.gz or lineStrokes/) and "
                           "ascii (ascii-all.tar.gz or ascii/); pass them or the folder holding them")
    return os.fspath(strokes), os.fspath(ascii_)


def _iter_files(src: str, suffix: str, notes: FileNotes) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every `suffix` file in a tarball or folder tree; unreadable files are noted."""
    if os.path.isdir(src):
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(suffix):
                    path = os.path.join(root, f)
                    name = os.path.relpath(path, src)
                    if not os.path.isfile(path):  # a pipe would block the import forever
                        notes.add(name, "not a regular file")
                        continue
                    try:
                        with open(path, "rb") as fh:
                            yield name, fh.read()
                    except OSError as e:
                        notes.add(name, "unreadable file", e.strerror or type(e).__name__)
        return
    try:
        with tarfile.open(src, "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(suffix):
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataImportError(f"{src}: unreadable archive ({e}); download it again") from None


def _read_ascii(src: str, notes: FileNotes) -> dict[str, dict[int, str]]:
    """form id -> {line number (1-based): CSR text}."""
    out: dict[str, dict[int, str]] = {}
    for name, data in _iter_files(src, ".txt", notes):
        text = data.decode("latin-1")
        if "CSR:" not in text:
            continue
        csr = [ln.strip() for ln in text.split("CSR:", 1)[1].splitlines()]
        csr = [ln for ln in csr if ln]
        out[Path(name).stem] = {k + 1: ln for k, ln in enumerate(csr)}
    return out


def _read_splits(splits_dir: str) -> dict[str, str]:
    """form id -> split name (the list file's stem), matching ids exactly."""
    d = Path(splits_dir)
    files = sorted(d.glob("*.txt"))
    if not files:
        raise DataImportError(f"{splits_dir}: no split lists (*.txt) found")
    out: dict[str, str] = {}
    for f in files:
        for ln in f.read_text(encoding="latin-1").splitlines():
            form = ln.strip()
            if form:
                out[form] = f.stem
    return out
