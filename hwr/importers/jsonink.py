"""Canonical-JSON importer: one ink per .json file, or one per line of a .jsonl file.

Each object is the canonical form (see ink.py); optional keys `id`, `writer` and `split` are
kept, and `stroke_lines` (a page's line of each stroke, -1 unknown, as `hwr data export`
writes it). Files are read by `hwr.inkfile.read_inks`, as `hwr transcribe` and the app's upload
read them: without an `id`, a sample's id is the file's path inside the folder given (the path
as given, for a file), plus `#k` for line k (from 0) of a .jsonl file. Files are UTF-8 (a
byte-order mark is honoured, and marks UTF-16 and UTF-32 too). A file that cannot be read, and
each bad line, are reported with the file's name and the reason (one report line per file);
the rest still imports.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import inkfile
from ..store import Sample
from . import Report
from .inkml import read_files


def read(sources: list[str], report: Report, repair_time: str | None = None, **_) -> Iterator[Sample]:
    """Samples of every JSON / JSON-lines file in `sources`; bad ones reported in `report`."""
    return read_files(sources, report, inkfile.suffixes_of(inkfile.JSON, inkfile.JSONL), repair_time=repair_time)
