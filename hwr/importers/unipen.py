"""UNIPEN importer: a `data/` + `include/` tree (or its .tar/.tar.xz), WORD and TEXT segments.

The facts it honours: `.INCLUDE` paths are relative to `include/`; `.SEGMENT LEVEL RANGE
QUALITY "label"` names components, numbered over the `.PEN_DOWN` and `.PEN_UP` blocks that
hold at least one point and restarted by `.START_SET`; a range item is `c`, `c-d`, `c:p-d:q`
(component:point), items joined by commas; y grows upward (negated here); `.COORD` names the
channels (X Y, with T and P sometimes); labels escape `"` and `\\` with a backslash and mark
character boundaries with `\\@` (removed); quality BAD is skipped. Missing include files are
counted, not fatal. Pen-up blocks count for numbering but are not ink.

A broken file never stops the others: it is named in the report with the reason, and only
the exceptions that mean "bad input" are caught. Includes resolve inside `include/` only
(no `../` or absolute escapes, no cycles). A sample's id is its data file's path relative to
the tree root plus the number of its `.SEGMENT` line, so it does not move when other segments
are skipped or other levels asked for.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..ink import Ink, InkError, Stroke
from ..store import Sample
from . import DataImportError, FileNotes, Report
from .parallel import ordered_map

DEFAULT_LEVELS = ("WORD", "TEXT")
SEGMENT = re.compile(r'^\.SEGMENT\s+(\S+)\s+(\S+)\s+(\S+)\s*(?:"(.*)")?\s*$')
MAX_INCLUDE_DEPTH = 16  # real trees nest includes 2 deep
MAX_INCLUDES = 256      # per data file (real ones have 3 at most); a diamond of includes must not explode
COLUMNS = {"X": 0, "Y": 1, "T": 2, "P": 3}


def read(sources: list[str], report: Report, levels=None, repair_time: str | None = None,
         **_) -> Iterator[Sample]:
    levels = tuple(levels or DEFAULT_LEVELS)
    tmp = None
    notes = FileNotes(report)
    try:
        roots = []
        for s in sources:
            p = Path(s)
            if p.is_file() and tarfile.is_tarfile(p):
                tmp = tmp or tempfile.mkdtemp(prefix="hwr-unipen-")
                dest = Path(tmp) / p.name
                try:
                    with tarfile.open(p) as tar:
                        tar.extractall(dest, filter="data")  # the data filter refuses ../ and links out
                except (tarfile.TarError, OSError) as e:
                    raise DataImportError(f"{p}: a damaged or unsafe archive ({type(e).__name__}: "
                                          f"{' '.join(str(e).split())[:120]})") from None
                roots.append(_find_root(dest))
            elif p.is_dir():
                roots.append(_find_root(p))
            else:
                raise DataImportError(f"{s}: not a UNIPEN folder (data/ + include/) or archive")
        jobs = []
        for root in roots:
            for f in sorted((root / "data").rglob("*.dat")):
                jobs.append((str(root), str(f), levels, repair_time))
        seen: set[tuple] = set()
        ids: set[str] = set()
        for samples, skipped, missing, problems in ordered_map(_read_data_file, jobs, chunk=4):
            for reason, n in skipped.items():
                report.skip(reason, n)
            for m in missing:
                _note_missing(report, m)
            for (where, reason), (n, detail) in problems.items():
                notes.add(where, reason, detail, n)
            for key, sample in samples:
                # categories 6 and 7 reference the same segments of the same include files
                if key in seen:
                    report.skip("duplicate segment (already imported from another data file)")
                    continue
                if sample.id in ids:  # the same data file path in two trees
                    report.skip("duplicate id (imported once)")
                    notes.add(sample.id, "duplicate id (imported once)")
                    continue
                seen.add(key)
                ids.add(sample.id)
                yield sample
    finally:
        notes.finish()
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


class _Refused(Exception):
    """A file that cannot be read as UNIPEN text; args: (reason, detail)."""


class _BadRange(Exception):
    """A segment whose range cannot be applied; args: (reason,)."""


def _decode(data: bytes) -> tuple[str, str]:
    """A file's text and, when it is not UTF-8, why (it is then read as Latin-1: UNIPEN predates UTF-8)."""
    if b"\0" in data:
        raise _Refused("not a text file", "NUL bytes: binary or UTF-16?")
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as e:
        return data.decode("latin-1"), f"byte 0x{data[e.start]:02x} at offset {e.start}"


def _has_control(s: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in s)


class _Parser:
    """Reads one data file with its includes; collects components, segments and problems in order."""

    def __init__(self, root: Path, levels: tuple[str, ...], repair_time: str | None = None):
        self.root = root.resolve()
        self.include_root = self.root / "include"
        self.levels = levels
        self.repair_time = repair_time
        self.components: list[tuple[bool, np.ndarray | None]] = []  # (pen_down, points (n, 4) or None if unreadable)
        self.component_file = ""   # the file whose pen data the components came from
        self.set_number = 0
        self.coord = ["X", "Y"]
        self.writer = ""
        self.data_id = ""          # the data file's path relative to the root: the ids' stem
        self.segment_no = 0
        self.samples: list[tuple[tuple, Sample]] = []
        self.skipped: Counter = Counter()
        self.missing: list[str] = []
        self.problems: dict[tuple[str, str], list] = {}  # (file, reason) -> [count, first detail]
        self.include_problem = ""  # why segments after the last include are skipped ("" = none)
        self.stack: list[Path] = []
        self.includes = 0
        self._block: list[tuple[int, str]] | None = None
        self._block_down = False
        self._block_where = ""

    def problem(self, where: str, reason: str, detail: str = "") -> None:
        self.problems.setdefault((where, reason), [0, detail])[0] += 1

    def _skip(self, where: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        self.problem(where, reason, detail)

    def parse_data_file(self, path: Path, where: str) -> None:
        self.data_id = where
        try:
            if not path.resolve().is_relative_to(self.root):  # a symlink out of the tree
                raise _Refused("data file outside the tree refused", "")
            if not path.is_file():
                raise _Refused("not a regular file", "")
            text, latin1 = _decode(path.read_bytes())
        except _Refused as e:
            self._skip(where, *e.args)
            return
        except OSError as e:
            self._skip(where, "unreadable file", e.strerror or type(e).__name__)
            return
        wanted = "|".join(map(re.escape, self.levels))
        if not re.search(rf"\.SEGMENT\s+(?:{wanted})(?!\S)", text):  # no segment of ours: skip its includes too
            return
        if latin1:
            self.problem(where, "not UTF-8, read as Latin-1", latin1)
        self.stack.append(path.resolve())
        self._parse_text(text, where)

    def _parse_text(self, text: str, where: str) -> None:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.startswith("."):
                if self._block is not None and line.strip():
                    self._block.append((lineno, line))
                continue
            self._end_block()
            word = line.split(None, 1)
            key, rest = word[0], (word[1] if len(word) > 1 else "")
            if key == ".INCLUDE":
                self._include(rest.strip(), where)
            elif key in (".PEN_DOWN", ".PEN_UP"):
                self._block, self._block_down, self._block_where = [], key == ".PEN_DOWN", where
                if self.component_file != where:
                    self.component_file, self.set_number = where, 0
            elif key == ".START_SET":
                self.components = []
                self.set_number += 1
            elif key == ".COORD":
                self.coord = rest.split()
            elif key == ".WRITER_ID":
                self.writer = rest.strip()
                if _has_control(self.writer):
                    self.problem(where, "writer id with control characters (left out)")
                    self.writer = ""
            elif key == ".SEGMENT":
                self._segment(line, where)
        self._end_block()

    def _include(self, arg: str, where: str) -> None:
        try:
            path = self._resolve(arg)
            if not path.exists():
                self.missing.append(arg)
                self.include_problem = "segment in a missing include file"
                return
            if not path.is_file():  # a folder, a pipe: reading it would fail or hang
                raise _Refused("include is not a regular file", arg)
            text, latin1 = _decode(path.read_bytes())
        except _Refused as e:
            self.problem(where, e.args[0], e.args[1] or arg)
            self.include_problem = "segment after a refused include"
            return
        except OSError as e:
            self.problem(where, "unreadable include file", f"{arg}: {e.strerror or type(e).__name__}")
            self.include_problem = "segment after a refused include"
            return
        inc = path.relative_to(self.root).as_posix()
        if latin1:
            self.problem(inc, "not UTF-8, read as Latin-1", latin1)
        self.includes += 1
        self.include_problem = ""
        self.stack.append(path)
        try:
            self._parse_text(text, inc)
        finally:
            self.stack.pop()

    def _resolve(self, arg: str) -> Path:
        """The include's path, refused unless it lies inside include/ and closes no cycle."""
        if not arg:
            raise _Refused("include without a file name", "")
        if "\0" in arg or os.path.isabs(arg):
            raise _Refused("include outside include/ refused", arg)
        try:
            path = (self.include_root / arg).resolve()
        except (OSError, RuntimeError, ValueError) as e:  # RuntimeError: a symlink loop
            raise _Refused("unresolvable include path", f"{arg}: {e}") from None
        if not path.is_relative_to(self.include_root):
            raise _Refused("include outside include/ refused", arg)
        if path in self.stack:
            raise _Refused("include cycle", f"{arg} while it is being read")
        if len(self.stack) > MAX_INCLUDE_DEPTH:
            raise _Refused("includes nested too deep", f"more than {MAX_INCLUDE_DEPTH}")
        if self.includes >= MAX_INCLUDES:
            raise _Refused("too many includes", f"more than {MAX_INCLUDES}")
        return path

    def _end_block(self) -> None:
        if self._block is None:
            return
        lines, self._block = self._block, None
        rows = [(n, ln.split()) for n, ln in lines]
        rows = [(n, r) for n, r in rows if len(r) >= 2]
        if not rows:
            return
        width = min(len(r) for _, r in rows)
        try:
            arr = np.array([r[:width] for _, r in rows], dtype=np.float64)
        except ValueError:
            n, bad = next((n, tok) for n, r in rows for tok in r[:width] if not _is_number(tok))
            self.problem(self._block_where, "pen data that is not numbers", f"line {n}: {bad[:40]!r}")
            self.components.append((self._block_down, None))  # still counted: later numbers stay right
            return
        pts = np.full((len(arr), 4), np.nan)
        for j, name in enumerate(self.coord[:width]):
            col = COLUMNS.get(name.upper())
            if col is not None:
                pts[:, col] = arr[:, j]
        pts[:, 1] = -pts[:, 1]  # UNIPEN's y grows upward
        self.components.append((self._block_down, pts))

    def _segment(self, line: str, where: str) -> None:
        number = self.segment_no
        self.segment_no += 1
        m = SEGMENT.match(line.strip())
        if not m:
            self._skip(where, "unparsable .SEGMENT line", repr(line[:60]))
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
        if self.include_problem == "segment in a missing include file":
            self.skipped[self.include_problem] += 1  # common in real trees: noted once per missing file
            return
        if self.include_problem:
            self._skip(where, self.include_problem)
            return
        text = unescape(label).strip()
        try:
            strokes = [Stroke(p.copy(), "pen") for p in self._select(rng) if len(p)]
        except _BadRange as e:
            self._skip(where, e.args[0], rng[:40])
            return
        if not strokes:
            self.skipped["segment with no pen-down ink"] += 1
            return
        if not text:
            self.skipped["empty label"] += 1
            return
        if _has_control(text):
            self._skip(where, "label with control characters", repr(text[:40]))
            return
        has_t = all(not np.isnan(s.points[:, 2]).any() for s in strokes)
        if not has_t:  # time partly missing is no time
            for s in strokes:
                s.points[:, 2] = np.nan
        ink = Ink(strokes, text)
        try:
            ink.validate(self.repair_time)
        except InkError as e:
            self._skip(where, "invalid ink", str(e))
            return
        key = (self.component_file, self.set_number, rng, level, text)
        self.samples.append((key, Sample(ink, id=f"{self.data_id}#{number}", writer=self.writer,
                                         source=f"unipen:{level.lower()}")))

    def _select(self, rng: str) -> list[np.ndarray]:
        out = []
        for item in rng.split(","):
            a, dash, b = item.partition("-")
            if dash and not b:
                raise _BadRange("unreadable segment range")
            ca, pa = _comp_point(a)
            cb, pb = _comp_point(b or a)
            if cb < ca or cb >= len(self.components):
                raise _BadRange("segment range outside its components")
            for c in range(ca, cb + 1):
                down, pts = self.components[c]
                if pts is None:
                    raise _BadRange("segment uses pen data that is not numbers")
                lo = pa if c == ca and pa is not None else 0
                hi = pb + 1 if c == cb and pb is not None else len(pts)
                if down:
                    out.append(pts[lo:hi])
        return out


def _comp_point(s: str) -> tuple[int, int | None]:
    c, colon, p = s.partition(":")
    try:
        comp, point = int(c), (int(p) if colon else None)
    except ValueError:  # empty, not a number, or thousands of digits
        raise _BadRange("unreadable segment range") from None
    if comp < 0 or (point is not None and point < 0):
        raise _BadRange("unreadable segment range")
    return comp, point


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


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


def _read_data_file(job) -> tuple[list[tuple[tuple, Sample]], Counter, list[str], dict]:
    root, path, levels, repair_time = job
    p = _Parser(Path(root), levels, repair_time)
    p.parse_data_file(Path(path), Path(path).relative_to(root).as_posix())
    return p.samples, p.skipped, p.missing, p.problems
