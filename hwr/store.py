"""The HDF5 ink store: one file, one dataset of labelled inks, in CSR form.

Layout (documented for plain-h5py readers in datasets/FORMAT.md):

    points          float32 (N, 4)   x, y, t (ms since the sample's first point), pressure; NaN = absent
    stroke_offsets  int64  (S + 1,)  points of stroke s are points[stroke_offsets[s]:stroke_offsets[s+1]]
    stroke_pointer  uint8  (S,)      index into POINTER_TYPES ("", pen, mouse, touch)
    sample_offsets  int64  (M + 1,)  strokes of sample i are sample_offsets[i]:sample_offsets[i+1]
    t0              float64 (M,)     absolute time of the sample's first point (ms), NaN if untimed
    text, id, writer, split, source  UTF-8 strings (M,)
    stroke_line     int32  (S,)      optional: the line of a page that stroke s belongs to, -1 = unknown

`stroke_line` exists only in stores that hold pages (several lines in one ink, the label's lines
joined by "\n"): it is the truth that page segmentation is scored against. It is created the
first time a sample with `stroke_lines` is written, with -1 for the strokes already there, so
line stores stay as they were and older files read as before. A writer that does not know it
(an older hwr appending) leaves it shorter than the strokes: the missing tail reads as -1.

Why CSR: millions of samples stay a handful of datasets, random access is two offset lookups
and one slice, and appending is a resize. Writes never touch the live file: a writer works on
a temporary copy that is renamed over the original only once it is complete and flushed, so
an interrupted import or append (even kill -9) leaves the previous file exactly as it was.
"""

from __future__ import annotations

import collections
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from filelock import FileLock, Timeout

from . import __version__
from .errors import HwrError
from .fileutil import publish, temp_beside
from .ink import CHANNELS, POINTER_TYPES, Ink, InkError

FORMAT_NAME = "hwr-ink-store"
FORMAT_VERSION = 1
STRING_FIELDS = ("text", "id", "writer", "split", "source")
LINE_MAX = 2**31 - 1  # stroke_line is int32
WRITE_LOCK_TIMEOUT = 600.0  # seconds a writer waits for another one (an import of all UNIPEN takes ~2 min)
POINT_CHUNK = 16384  # rows per chunk: small enough that one random read decompresses little
_STR = h5py.string_dtype("utf-8")


class StoreError(HwrError, ValueError):
    """A store file that cannot be used; the message says why in one line."""


@dataclass
class Sample:
    """An ink with the metadata the store keeps beside it."""

    ink: Ink
    id: str = ""
    writer: str = ""
    split: str = ""
    source: str = ""
    stroke_lines: np.ndarray | None = None  # per stroke, its line in a page (-1 unknown); None: not a page

    @property
    def text(self) -> str:
        return self.ink.text or ""

    def validate(self) -> Sample:
        """The ink's checks, and strings HDF5 can hold (a NUL cannot be stored); raises InkError."""
        self.ink.validate()
        for name in STRING_FIELDS:
            value = self.text if name == "text" else getattr(self, name)
            if "\x00" in value:
                raise InkError(f"the {name} of sample {self.id[:40]!r} holds a NUL character, which a store cannot keep")
        if self.stroke_lines is not None:
            lines = np.asarray(self.stroke_lines)
            if lines.shape != (len(self.ink.strokes),) or not np.issubdtype(lines.dtype, np.integer):
                raise InkError(f"sample {self.id[:40]!r}: stroke_lines must hold one integer per stroke "
                               f"({len(self.ink.strokes)}), not {lines.dtype} {lines.shape}")
            if len(lines) and not -1 <= lines.min() <= lines.max() <= LINE_MAX:
                raise InkError(f"sample {self.id[:40]!r}: stroke_lines must be line indices from 0 "
                               f"(or -1 for unknown), not {lines.min()}..{lines.max()}")
        return self


@dataclass
class Summary:
    samples: int = 0
    strokes: int = 0
    points: int = 0
    characters: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    characters_per_split: dict[str, int] = field(default_factory=dict)
    charset: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Store:
    """Read access to a store file. Open with `Store(path)`; use as a context manager.

    `len(store)`, `store[i]` (a `Sample`, O(1)), iteration, `store.indices(split)`,
    `store.summary()`. Strings and offsets are loaded once on open (small); points are read
    lazily through HDF5's chunk cache, sized by `cache_mb`.
    """

    def __init__(self, path: str | os.PathLike, cache_mb: int = 256):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such file")
        try:
            self._f = h5py.File(self.path, "r", rdcc_nbytes=cache_mb << 20, rdcc_nslots=100003)
        except OSError as e:
            raise StoreError(f"{self.path}: not a readable HDF5 file ({str(e).splitlines()[0]}); "
                             "re-create it with `hwr data import`") from None
        try:
            self._check_header()
            f = self._f
            self.stroke_offsets = f["stroke_offsets"][:]
            self.sample_offsets = f["sample_offsets"][:]
            self.stroke_pointer = f["stroke_pointer"][:]
            self.t0 = f["t0"][:]
            self.stroke_line = _stroke_line(f, len(self.stroke_pointer), self.path)
            self.meta = {k: [s.decode("utf-8") for s in f[k][:]] for k in STRING_FIELDS}
            self._points = f["points"]
            n = len(self.t0)
            if len(self.sample_offsets) != n + 1 or any(len(v) != n for v in self.meta.values()):
                raise StoreError(f"{self.path}: inconsistent lengths between datasets; the file is damaged")
        except StoreError:
            self._f.close()
            raise
        except (OSError, KeyError, ValueError) as e:
            self._f.close()
            raise StoreError(f"{self.path}: damaged or truncated store ({str(e).splitlines()[0]})") from None

    def _check_header(self) -> None:
        a = self._f.attrs
        if a.get("format") != FORMAT_NAME:
            raise StoreError(f"{self.path}: an HDF5 file, but not an hwr ink store")
        version = int(a.get("format_version", -1))
        if version > FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format version {version} is newer than this hwr "
                             f"understands ({FORMAT_VERSION}); upgrade hwr")
        if version < 1:
            raise StoreError(f"{self.path}: store format version {version} is not supported")

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.t0)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    @property
    def attrs(self) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._f.attrs.items()}

    def ink(self, i: int) -> Ink:
        """The ink of sample i, with absolute time restored."""
        s0, s1 = self.sample_offsets[i], self.sample_offsets[i + 1]
        offs = self.stroke_offsets[s0:s1 + 1]
        pts = self._points[offs[0]:offs[-1]].astype(np.float64)
        if not np.isnan(self.t0[i]):
            pts[:, 2] += self.t0[i]
        lengths = np.diff(offs)
        types = [POINTER_TYPES[c] for c in self.stroke_pointer[s0:s1]]
        return Ink.from_arrays(pts, lengths, self.meta["text"][i], types)

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range (store has {len(self)})")
        i = i % len(self)
        m = self.meta
        return Sample(self.ink(i), m["id"][i], m["writer"][i], m["split"][i], m["source"][i],
                      self.stroke_lines(i))

    def stroke_lines(self, i: int) -> np.ndarray | None:
        """The line of each stroke of sample i (int32, -1 unknown), or None when no stroke's is known."""
        if self.stroke_line is None:
            return None
        lines = self.stroke_line[self.sample_offsets[i]:self.sample_offsets[i + 1]]
        return lines.copy() if (lines >= 0).any() else None

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def splits(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(self.meta["split"]).items()))

    def indices(self, split: str | None = None) -> np.ndarray:
        """Indices of the samples in `split` (all samples when None)."""
        if split is None:
            return np.arange(len(self))
        return np.array([i for i, s in enumerate(self.meta["split"]) if s == split], dtype=np.int64)

    def summary(self) -> Summary:
        s = Summary(samples=len(self), strokes=int(self.sample_offsets[-1]),
                    points=int(self.stroke_offsets[-1]) if len(self.stroke_offsets) else 0)
        chars: collections.Counter = collections.Counter()
        for text, split in zip(self.meta["text"], self.meta["split"]):
            s.splits[split] = s.splits.get(split, 0) + 1
            s.characters_per_split[split] = s.characters_per_split.get(split, 0) + len(text)
            chars.update(text)
        s.characters = sum(chars.values())
        s.charset = dict(chars.most_common())
        s.splits = dict(sorted(s.splits.items()))
        return s


class StoreWriter:
    """All-or-nothing writer: `with StoreWriter(path) as w: w.add(samples)`.

    mode "w" starts an empty store; mode "a" starts from a copy of the existing one. Either
    way the work happens in a temporary file beside `path`, renamed into place on a clean
    exit; an exception or a kill leaves `path` untouched (and removes the temporary file
    when Python still can).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w", created_by: str = "hwr"):
        if mode not in ("w", "a"):
            raise ValueError("mode must be 'w' or 'a'")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one writer at a time, across processes: copy + append + rename by two writers at once
        # would let the last rename win and silently drop the other's samples
        self._lock = FileLock(f"{self.path}.lock")
        try:
            self._lock.acquire(timeout=WRITE_LOCK_TIMEOUT)
        except Timeout:
            raise StoreError(f"{self.path}: another process has been writing it for {WRITE_LOCK_TIMEOUT:.0f} s; "
                             f"try again when it is done (lock: {self.path}.lock)") from None
        try:
            self.tmp = temp_beside(self.path)
            if mode == "a" and self.path.exists():
                Store(self.path).close()  # refuse to append to something that is not a store
                shutil.copyfile(self.path, self.tmp)
                self._f = h5py.File(self.tmp, "a")
            else:
                self._f = h5py.File(self.tmp, "w")
                self._init_layout(created_by)
        except BaseException:
            if hasattr(self, "tmp"):
                self.tmp.unlink(missing_ok=True)
            self._lock.release()
            raise
        self.added = 0

    def _init_layout(self, created_by: str) -> None:
        f = self._f
        f.attrs.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, channels=list(CHANNELS),
                       pointer_types=list(POINTER_TYPES), created_by=created_by, hwr_version=__version__)
        f.create_dataset("points", shape=(0, 4), maxshape=(None, 4), dtype="float32",
                         chunks=(POINT_CHUNK, 4), compression="lzf", shuffle=True)
        f.create_dataset("stroke_offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(65536,))
        f.create_dataset("stroke_pointer", shape=(0,), maxshape=(None,), dtype="uint8", chunks=(65536,))
        f.create_dataset("sample_offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(65536,))
        f.create_dataset("t0", shape=(0,), maxshape=(None,), dtype="float64", chunks=(65536,))
        for k in STRING_FIELDS:
            f.create_dataset(k, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(4096,))

    def add(self, samples: Iterable[Sample], batch: int = 2048) -> int:
        """Append samples (validated first); returns how many were added."""
        buf: list[Sample] = []
        n = 0
        for s in samples:
            buf.append(s)
            if len(buf) >= batch:
                n += self._flush(buf)
                buf = []
        if buf:
            n += self._flush(buf)
        return n

    def _flush(self, samples: list[Sample]) -> int:
        f = self._f
        pts, stroke_lens, pointer, n_strokes, t0, lines = [], [], [], [], [], []
        for s in samples:
            s.validate()
            p = s.ink.points()
            start = p[0, 2]
            t0.append(start)
            if not np.isnan(start):
                p = p.copy()
                p[:, 2] -= start
            pts.append(p.astype(np.float32))
            stroke_lens.extend(len(st) for st in s.ink.strokes)
            pointer.extend(POINTER_TYPES.index(st.pointer_type) for st in s.ink.strokes)
            n_strokes.append(len(s.ink.strokes))
            lines.append(np.full(len(s.ink.strokes), -1, np.int32) if s.stroke_lines is None
                         else np.asarray(s.stroke_lines, np.int32))
        new_pts = np.concatenate(pts)
        _extend(f["points"], new_pts)
        so = f["stroke_offsets"]
        self._extend_stroke_line(len(so) - 1, np.concatenate(lines))
        _extend(so, so[-1] + np.cumsum(stroke_lens))
        _extend(f["stroke_pointer"], np.array(pointer, np.uint8))
        sa = f["sample_offsets"]
        _extend(sa, sa[-1] + np.cumsum(n_strokes))
        _extend(f["t0"], np.array(t0, np.float64))
        for k in STRING_FIELDS:
            vals = [s.text if k == "text" else getattr(s, k) for s in samples]
            _extend(f[k], np.array(vals, dtype=object))
        self.added += len(samples)
        return len(samples)

    def _extend_stroke_line(self, before: int, new: np.ndarray) -> None:
        """Append the new strokes' lines; `before` strokes are in the file already. The dataset is
        created (-1 for those) only once a sample knows its lines, and a tail an older writer left
        out is filled with -1 first, so stroke s always has entry s."""
        f = self._f
        if "stroke_line" not in f:
            if (new < 0).all():
                return
            f.create_dataset("stroke_line", data=np.full(before, -1, np.int32), maxshape=(None,),
                             chunks=(65536,))
        ds = f["stroke_line"]
        _extend(ds, np.concatenate([np.full(before - ds.shape[0], -1, np.int32), new]))

    def commit(self) -> None:
        try:
            self._f.flush()
            self._f.close()
            publish(self.tmp, self.path)
        finally:
            self._lock.release()

    def abort(self) -> None:
        try:
            if self._f.id.valid:
                self._f.close()
            self.tmp.unlink(missing_ok=True)
        finally:
            self._lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _extend(ds: h5py.Dataset, values: np.ndarray) -> None:
    n = ds.shape[0]
    ds.resize(n + len(values), axis=0)
    ds[n:] = values


def _stroke_line(f: h5py.File, strokes: int, path: Path) -> np.ndarray | None:
    """The optional `stroke_line` dataset, one entry per stroke (a missing tail is -1); None if absent."""
    if "stroke_line" not in f:
        return None
    lines = f["stroke_line"][:].astype(np.int32)
    if len(lines) > strokes:
        raise StoreError(f"{path}: stroke_line has {len(lines)} entries for {strokes} strokes; the file is damaged")
    return np.concatenate([lines, np.full(strokes - len(lines), -1, np.int32)])


def append_samples(path: str | os.PathLike, samples: Iterable[Sample]) -> int:
    """Append to `path` (created if missing) all-or-nothing; returns the new sample count."""
    with StoreWriter(path, mode="a") as w:
        w.add(samples)
    with Store(path) as s:
        return len(s)
