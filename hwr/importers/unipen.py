"""UNIPEN importer: a `data/` + `include/` tree (or its .tar/.tar.xz), WORD and TEXT segments.

The facts it honours: `.INCLUDE` paths are relative to `include/`; `.SEGMENT LEVEL RANGE
QUALITY "label"` names components, numbered over the `.PEN_DOWN` and `.PEN_UP` blocks that
hold at least one point and restarted by `.START_SET`; a range item is `c`, `c-d`, `c:p-d:q`
(component:point), items joined by commas; y grows upward (negated here); `.COORD` names the
channels (X Y, with T and P sometimes); labels escape `"` and `\\` with a backslash and mark
character boundaries with `\\@` (removed); quality BAD is skipped. Missing include files are
counted, not fatal. Pen-up blocks count for numbering but are not ink.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..ink import Ink, Stroke
from ..store import Sample
from . import DataImportError, Report

DEFAULT_LEVELS = ("WORD", "TEXT")
SEGMENT = re.compile(r'^\.SEGMENT\s+(\S+)\s+(\S+)\s+(\S+)\s*(?:"(.*)")?\s*$')


def read(sources: list[str], report: Report, levels=None, **_) -> Iterator[Sample]:
    levels = tuple(levels or DEFAULT_LEVELS)
    tmp = None
    try:
        roots = []
        for s in sources:
            p = Path(s)
            if p.is_file() and tarfile.is_tarfile(p):
                tmp = tmp or tempfile.mkdtemp(prefix="hwr-unipen-")
                dest = Path(tmp) / p.name
                with tarfile.open(p) as tar:
                    tar.extractall(dest, filter="data")
                roots.append(_find_root(dest))
            elif p.is_dir():
                roots.append(_find_root(p))
            else:
                raise DataImportError(f"{s}: not a UNIPEN folder (data/ + include/) or archive")
        jobs = []
        for root in roots:
            for f in sorted((root / "data").rglob("*.dat")):
                jobs.append((str(root), str(f), levels))
        with multiprocessing.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
            seen: set[tuple] = set()
            for samples, skipped, missing in pool.imap(_read_data_file, jobs, chunksize=4):
                for reason, n in skipped.items():
                    report.skip(reason, n)
                for m in missing:
                    _note_missing(report, m)
                for key, sample in samples:
                    # categories 6 and 7 reference the same segments of the same include files
                    if key in seen:
                        report.skip("duplicate segment (already imported from another data file)")
                        continue
                    seen.add(key)
                    yield sample
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _note_missing(report: Report, path: str) -> None:
    line = f"missing include file: {path}"
    if line not in report.notes:
        report.notes.append(line)


def _find_root(p: Path) -> Path:
    for cand in [p, *sorted(p.iterdir())] if p.is_dir() else []:
        if (cand / "data").is_dir() and (cand / "include").is_dir():
            return cand
    raise DataImportError(f"{p}: no UNIPEN tree found (expected data/ and include/ folders)")


class _Parser:
    """Reads one data file with its includes; collects components and segments in order."""

    def __init__(self, root: Path, levels: tuple[str, ...]):
        self.root = root
        self.levels = levels
        self.components: list[tuple[bool, np.ndarray]] = []  # (pen_down, points (n, 4))
        self.component_file = ""   # the file whose pen data the components came from
        self.set_number = 0
        self.coord = ["X", "Y"]
        self.writer = ""
        self.samples: list[tuple[tuple, Sample]] = []
        self.skipped: Counter = Counter()
        self.missing: list[str] = []
        self.missing_now = False
        self._block: list[str] | None = None
        self._block_down = False

    def parse_file(self, path: Path, rel: str) -> None:
        try:
            text = path.read_text(encoding="latin-1")
        except FileNotFoundError:
            self.missing.append(rel)
            self.missing_now = True
            return
        self.missing_now = False
        for line in text.splitlines():
            if not line or not line.startswith("."):
                if self._block is not None and line.strip():
                    self._block.append(line)
                continue
            self._end_block()
            word = line.split(None, 1)
            key, rest = word[0], (word[1] if len(word) > 1 else "")
            if key == ".INCLUDE":
                inc = rest.strip()
                self.parse_file(self.root / "include" / inc, inc)
            elif key in (".PEN_DOWN", ".PEN_UP"):
                self._block, self._block_down = [], key == ".PEN_DOWN"
                if self.component_file != rel:
                    self.component_file, self.set_number = rel, 0
            elif key == ".START_SET":
                self.components = []
                self.set_number += 1
            elif key == ".COORD":
                self.coord = rest.split()
            elif key == ".WRITER_ID":
                self.writer = rest.strip()
            elif key == ".SEGMENT":
                self._segment(line, rel)
        self._end_block()

    def _end_block(self) -> None:
        if self._block is None:
            return
        rows = [ln.split() for ln in self._block]
        self._block = None
        rows = [r for r in rows if len(r) >= 2]
        if not rows:
            return
        width = min(len(r) for r in rows)
        arr = np.array([r[:width] for r in rows], dtype=np.float64)
        pts = np.full((len(arr), 4), np.nan)
        for j, name in enumerate(self.coord[:width]):
            col = {"X": 0, "Y": 1, "T": 2, "P": 3}.get(name.upper())
            if col is not None:
                pts[:, col] = arr[:, j]
        pts[:, 1] = -pts[:, 1]  # UNIPEN's y grows upward
        self.components.append((self._block_down, pts))

    def _segment(self, line: str, rel: str) -> None:
        m = SEGMENT.match(line.strip())
        if not m:
            self.skipped["unparsable .SEGMENT line"] += 1
            return
        level, rng, quality, label = m.groups()
        if level not in self.levels:
            return
        if quality.upper() == "BAD":
            self.skipped["quality BAD"] += 1
            return
        if label is None:
            self.skipped["segment without a label"] += 1
            return
        if self.missing_now:
            self.skipped["segment in a missing include file"] += 1
            return
        text = unescape(label).strip()
        try:
            strokes = [Stroke(p, "pen") for p in self._select(rng) if len(p)]
        except (ValueError, IndexError):
            self.skipped["segment range outside its components"] += 1
            return
        if not strokes:
            self.skipped["segment with no pen-down ink"] += 1
            return
        if not text:
            self.skipped["empty label"] += 1
            return
        has_t = all(not np.isnan(s.points[:, 2]).any() for s in strokes)
        if not has_t:  # time partly missing is no time
            for s in strokes:
                s.points[:, 2] = np.nan
        n = len(self.samples)
        key = (self.component_file, self.set_number, rng, level, text)
        self.samples.append((key, Sample(Ink(strokes, text), id=f"{rel}#{n}", writer=self.writer,
                                         source=f"unipen:{level.lower()}")))

    def _select(self, rng: str) -> list[np.ndarray]:
        out = []
        for item in rng.split(","):
            a, _, b = item.partition("-")
            ca, pa = _comp_point(a)
            cb, pb = _comp_point(b or a)
            if cb < ca or cb >= len(self.components):
                raise ValueError(item)
            for c in range(ca, cb + 1):
                down, pts = self.components[c]
                lo = pa if c == ca and pa is not None else 0
                hi = pb + 1 if c == cb and pb is not None else len(pts)
                if down:
                    out.append(pts[lo:hi])
        return out


def _comp_point(s: str) -> tuple[int, int | None]:
    c, _, p = s.partition(":")
    return int(c), (int(p) if p else None)


def unescape(label: str) -> str:
    """UNIPEN label -> text: drop the `\\@` boundary marks, resolve `\\"` and `\\\\`."""
    out, i = [], 0
    while i < len(label):
        ch = label[i]
        if ch == "\\" and i + 1 < len(label):
            nxt = label[i + 1]
            if nxt != "@":
                out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _read_data_file(job) -> tuple[list[tuple[tuple, Sample]], Counter, list[str]]:
    root, path, levels = job
    root, path = Path(root), Path(path)
    text = path.read_text(encoding="latin-1")
    if not any(f".SEGMENT {lv}" in text or f".SEGMENT\t{lv}" in text for lv in levels):
        return [], Counter(), []
    p = _Parser(root, levels)
    p.parse_file(path, str(path.relative_to(root)))
    return p.samples, p.skipped, p.missing
