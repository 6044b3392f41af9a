"""Ink files: which reader a file needs is decided here, by its suffix, and nowhere else.

`read_inks` reads any ink file, from its path or from its bytes (an upload): InkML (`.inkml`,
`.xml`), canonical JSON (`.json`, one ink), JSON Lines (`.jsonl`, `.ndjson`: one ink per line,
as `hwr data export` writes them) and, from a path, an hwr store (`.h5`, `.hdf5`). The app's
upload (`canvas.ink_from_upload`), `hwr transcribe` (files and folders alike, through
`files_in`) and `hwr data import inkml|json` all call it, so they accept the same suffixes,
give the same ids and read the same inks from the same file. Nothing here validates an ink:
each caller does, with the time repair it wants.

Ids: an ink's own id (a JSON "id", a store's sample id), else the file's name, plus `#k` for
the k-th ink of a file that holds several (the k-th line, from 0, of a JSON Lines file).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any, NamedTuple

import numpy as np

from .ink import Ink, InkError, check_text, loads_json

INKML, JSON, JSONL, STORE = "inkml", "json", "jsonl", "store"
KINDS = {".inkml": INKML, ".xml": INKML, ".json": JSON, ".jsonl": JSONL, ".ndjson": JSONL,
         ".h5": STORE, ".hdf5": STORE}
SUFFIXES = tuple(KINDS)
FILE_SUFFIXES = tuple(s for s, k in KINDS.items() if k != STORE)  # what can be read from bytes alone
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class InkItem(NamedTuple):
    """One ink of a file, or the reason it cannot be read (the file's other inks still are)."""

    id: str
    ink: Ink | InkError  # not validated yet
    meta: dict  # "writer", "split", "stroke_lines" (int64 array) where the file gives them
    where: str  # where a person finds it: the id, or "NAME line N" for a JSON Lines line


def suffixes_of(*kinds: str) -> tuple[str, ...]:
    """The suffixes of the given kinds (`INKML`, `JSON`, `JSONL`, `STORE`)."""
    return tuple(s for s, k in KINDS.items() if k in kinds)


def kind(name: str | os.PathLike) -> str:
    """The kind of ink file `name` is, by its suffix; `InkError` saying which suffixes are read."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in KINDS:
        what = f"'{suffix}'" if suffix else "a name without a suffix"
        raise InkError(f"{what} is not an ink file type hwr reads; give a file ending in "
                       f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]}")
    return KINDS[suffix]


def files_in(folder: str | os.PathLike, suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """The files under `folder` (recursively, sorted) that end in one of `suffixes`; others are ignored."""
    return sorted(f for f in Path(folder).rglob("*") if f.suffix.lower() in suffixes and f.is_file())


def safe_name(name: str) -> str:
    """A file name as text a store or a JSON line can hold: bytes that are not UTF-8 become `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_inks(source: str | os.PathLike | bytes, name: str | None = None, groups: bool = False) -> Iterator[InkItem]:
    """Every ink of one file, in file order. `source` is the file's path, or its bytes; `name`
    (default: the path as given) gives the suffix and the base of the ids.

    A file that cannot be read as a whole (unknown suffix, unreadable, not InkML, not UTF-8, a
    damaged store) raises `InkError` (`StoreError` for a store) with a one-line reason before the
    first item; a JSON ink or line that cannot be read is an item whose `ink` is the error.
    `groups` (InkML): one ink per innermost labelled traceGroup instead of one per file.
    """
    if name is None:
        if isinstance(source, bytes):
            raise TypeError("read_inks needs a name (for its suffix) with bytes")
        name = safe_name(os.fspath(source))
    k = kind(name)
    if k == STORE:
        if isinstance(source, bytes):
            raise InkError("an hwr store holds many inks and is read from disk; transcribe it with "
                           "`hwr transcribe STORE.h5`")
        yield from _store_items(Path(source), name)
        return
    data = source if isinstance(source, bytes) else _read_bytes(Path(source))
    if k == INKML:
        yield from _inkml_items(data, name, groups)
        return
    try:
        text = decode(data)
    except UnicodeError as e:
        raise InkError(str(e)) from None
    if k == JSON:
        yield _json_item(text, name, name)
        return
    # split on "\n" only: a JSON string may hold U+2028 and other characters splitlines() breaks at
    for i, line in enumerate(text.split("\n")):
        if line.strip():
            yield _json_item(line, f"{name}#{i}", f"{name} line {i + 1}")


def decode(data: bytes) -> str:
    """The text of a JSON file: UTF-8, or what its byte-order mark says; `UnicodeError` else."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise UnicodeError(f"not valid {encoding.upper()} although it starts with that byte-order mark "
                                   f"(byte {e.start}); save it as UTF-8") from None
    if b"\x00" in data[:4]:
        raise UnicodeError("looks like UTF-16 or UTF-32 without a byte-order mark; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnicodeError(f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
                           "save it as UTF-8") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InkError(f"cannot read the file ({e.strerror or e})") from None


def _inkml_items(data: bytes, name: str, groups: bool) -> list[InkItem]:
    from .importers.inkml import parse_inkml
    try:
        inks = parse_inkml(data, groups=groups)
    except InkError as e:
        raise InkError(f"unreadable InkML ({e})") from None
    ids = [name] if len(inks) == 1 else [f"{name}#{k}" for k in range(len(inks))]
    return [InkItem(i, ink, meta, i) for i, (ink, meta) in zip(ids, inks)]


def _store_items(path: Path, name: str) -> Iterator[InkItem]:
    from .store import Store
    with Store(path) as s:
        for i in range(len(s)):
            x = s[i]
            sid = x.id or f"{name}#{i}"
            yield InkItem(sid, x.ink, {"writer": x.writer, "split": x.split, "stroke_lines": x.stroke_lines}, sid)


def _json_item(text: str, default_id: str, where: str) -> InkItem:
    """One JSON text -> an item; its "id" wins over `default_id`, and any problem is the item's."""
    try:
        obj = loads_json(text)
        ink = Ink.from_json_dict(obj)
        meta = {k: _meta(obj.get(k), k) for k in ("id", "writer", "split")}
        lines = _stroke_lines(obj.get("stroke_lines"))
        if lines is not None:
            if len(lines) != len(ink.strokes):
                raise InkError(f'"stroke_lines" has {len(lines)} entries for {len(ink.strokes)} strokes; '
                               "give one per stroke")
            meta["stroke_lines"] = lines
    except InkError as e:
        return InkItem(default_id, e, {}, where)
    return InkItem(meta.pop("id") or default_id, ink, meta, where)


def _stroke_lines(value: Any) -> np.ndarray | None:
    """The optional `stroke_lines` list (a page's line of each stroke, -1 unknown) as int64."""
    if value is None:
        return None
    from .store import LINE_MAX
    if not isinstance(value, list) or not all(type(v) is int and -1 <= v <= LINE_MAX for v in value):
        raise InkError('"stroke_lines" must be a list of line indices (integers from 0, -1 for unknown)')
    return np.array(value, dtype=np.int64)


def _meta(value: Any, key: str) -> str:
    if value is None:
        return ""
    if key == "id" and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10 ** 18:
        return str(value)  # ids written as numbers are common; kept as their decimal text
    return check_text(value, f'"{key}"')
