"""Canonical-JSON importer: one ink per .json file, or one per line of a .jsonl file.

Each object is the canonical form (see ink.py); optional keys `id`, `writer` and `split` are
kept. A bad line is skipped and counted; the rest of the file still imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..ink import Ink, InkError
from ..store import Sample
from . import Report
from .inkml import _files


def read(sources: list[str], report: Report, **_) -> Iterator[Sample]:
    for path in _files(sources, (".json", ".jsonl", ".ndjson")):
        lines = path.read_text(encoding="utf-8").splitlines() if path.suffix != ".json" else None
        chunks = [path.read_text(encoding="utf-8")] if lines is None else lines
        for i, chunk in enumerate(chunks):
            if not chunk.strip():
                continue
            try:
                obj = json.loads(chunk)
                ink = Ink.from_json_dict(obj)
            except (json.JSONDecodeError, InkError) as e:
                report.skip(f"unreadable JSON ink ({str(e).split(':')[0][:60]})")
                continue
            default_id = path.stem if lines is None else f"{path.stem}#{i}"
            yield Sample(ink, id=str(obj.get("id") or default_id), writer=str(obj.get("writer") or ""),
                         split=str(obj.get("split") or ""), source="json")
