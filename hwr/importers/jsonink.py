"""Canonical-JSON importer: one ink per .json file, or one per line of a .jsonl file.

Each object is the canonical form (see ink.py); optional keys `id`, `writer` and `split` are
kept, and `stroke_lines` (a page's line of each stroke, -1 unknown, as `hwr data export`
writes it). Without an `id`, a sample's id is the file's path inside the folder given (the path
as given, for a file), plus `#k` for line k (from 0) of a .jsonl file, as `hwr transcribe` does.
Files are UTF-8 (a byte-order mark is honoured, and marks UTF-16 and UTF-32 too). A file that
cannot be read, and each bad line, are reported with the file's name and the reason (one
report line per file); the rest still imports.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..ink import Ink, InkError, check_text, loads_json
from ..store import LINE_MAX, Sample
from . import Report
from .inkml import IdRegistry, file_reason, input_files, report_problems

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read(sources: list[str], report: Report, repair_time: str | None = None, **_) -> Iterator[Sample]:
    """Samples of every JSON / JSON-lines file in `sources`; bad ones reported in `report`."""
    ids = IdRegistry()
    for path, name, _ in input_files(sources, (".json", ".jsonl", ".ndjson")):
        try:
            text = decode(path.read_bytes())
        except OSError as e:
            report.skip(file_reason(name, f"cannot read the file ({e.strerror or e})"))
            continue
        except UnicodeError as e:
            report.skip(file_reason(name, str(e)))
            continue
        whole = path.suffix.lower() == ".json"
        chunks = [(None, text)] if whole else enumerate(text.split("\n"))
        problems: list[str] = []
        for k, chunk in chunks:
            if not chunk.strip():
                continue
            where = name if k is None else f"{name} line {k + 1}"
            try:
                sample = _sample(chunk, name if k is None else f"{name}#{k}", repair_time)
            except InkError as e:
                problems.append(f"{where}: {e}")
                continue
            dup = ids.claim(sample.id, where)
            if dup:
                problems.append(dup)
                continue
            yield sample
        if problems:
            report_problems(report, name, problems)


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


def _sample(text: str, default_id: str, repair_time: str | None) -> Sample:
    """One JSON text -> a validated sample; `InkError` with a one-line reason for anything bad."""
    obj = loads_json(text)
    ink = Ink.from_json_dict(obj)
    meta = {k: _meta(obj.get(k), k) for k in ("id", "writer", "split")}
    lines = _stroke_lines(obj.get("stroke_lines"))
    before = {id(s): k for k, s in enumerate(ink.strokes)}
    ink.validate(repair_time)
    sample = Sample(ink, id=meta["id"] or default_id, writer=meta["writer"], split=meta["split"], source="json")
    if lines is not None:
        if len(lines) != len(ink.strokes):
            raise InkError(f'"stroke_lines" has {len(lines)} entries for {len(ink.strokes)} strokes; '
                           "give one per stroke")
        # repair_time="sort" may reorder the strokes: each keeps its line
        sample.stroke_lines = lines[[before[id(s)] for s in ink.strokes]]
    return sample


def _stroke_lines(value: Any) -> np.ndarray | None:
    """The optional `stroke_lines` list as int64, None when absent."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(type(v) is int and -1 <= v <= LINE_MAX for v in value):
        raise InkError('"stroke_lines" must be a list of line indices (integers from 0, -1 for unknown)')
    return np.array(value, dtype=np.int64)


def _meta(value: Any, key: str) -> str:
    if value is None:
        return ""
    if key == "id" and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10 ** 18:
        return str(value)  # ids written as numbers are common; kept as their decimal text
    return check_text(value, f'"{key}"')
