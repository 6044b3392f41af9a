"""Exporters: a store as InkML files (one per sample) or as canonical JSON Lines.

JSON Lines carry everything a store keeps (a page's `stroke_lines` too); InkML carries the ink,
its label (newlines and edge spaces included), writer and id, not the line of each stroke.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from tqdm import tqdm

from .errors import ConfigError
from .fileutil import atomic_path
from .ink import Ink, InkError, check_text
from .store import Store


def ink_to_inkml(ink: Ink, sample_id: str = "", writer: str = "") -> str:
    """InkML text for one ink; channels T and F are written only when the ink has them.

    A label keeps its newlines (a page's lines) as they are: XML keeps line breaks inside an
    element. Readers strip the white space around an annotation (files are pretty-printed), so
    a value that starts or ends with white space is written with xml:space="preserve", which
    `importers.inkml` honours. Raises InkError for a label, writer or id that XML cannot hold
    (control characters: a "\r" would read back as "\n").
    """
    for what, value in (("label", ink.text), ("writer", writer), ("id", sample_id)):
        check_text(value or "", f"the {what} {value!r} (InkML cannot carry it; fix it or export as jsonl)")
    pts = ink.points()
    has_t = len(pts) and not np.isnan(pts[:, 2]).any()
    has_f = len(pts) and not np.isnan(pts[:, 3]).any()
    chans = ["X", "Y"] + (["T"] if has_t else []) + (["F"] if has_f else [])
    cols = [0, 1] + ([2] if has_t else []) + ([3] if has_f else [])
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<ink xmlns="http://www.w3.org/2003/InkML">',
             "  <traceFormat>"]
    lines += [f'    <channel name="{c}" type="decimal"/>' for c in chans]
    lines.append("  </traceFormat>")
    if ink.text is not None:
        lines.append(_annotation("truth", ink.text))
    if writer:
        lines.append(_annotation("writer", writer))
    if sample_id:
        lines.append(_annotation("id", sample_id))
    for k, s in enumerate(ink.strokes):
        body = ", ".join(" ".join(repr(float(v)) for v in row) for row in s.points[:, cols])
        lines.append(f'  <trace xml:id={quoteattr(f"t{k}")}>{body}</trace>')
    lines.append("</ink>")
    return "\n".join(lines) + "\n"


def _annotation(kind: str, value: str) -> str:
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return f'  <annotation type="{kind}"{space}>{escape(value)}</annotation>'


def export_store(path: str | os.PathLike, fmt: str, out: str | os.PathLike) -> tuple[int, list[str]]:
    """Write every sample of the store at `path`; returns (how many, one line per sample refused)."""
    out = Path(out)
    refused: list[str] = []
    with Store(path) as store:
        if fmt == "inkml":
            out.mkdir(parents=True, exist_ok=True)
            for i in tqdm(range(len(store)), desc="export", delay=1.0):
                s = store[i]
                name = "".join(c if c.isalnum() or c in "-_." else "_" for c in s.id) or f"sample{i}"
                try:
                    text = ink_to_inkml(s.ink, s.id, s.writer)
                except InkError as e:
                    refused.append(f"sample {i} ({s.id}): {e}")
                    continue
                (out / f"{i:06d}_{name}.inkml").write_text(text, encoding="utf-8")
        elif fmt == "jsonl":
            target = out / (Path(path).stem + ".jsonl") if out.is_dir() or not out.suffix else out
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
                for i in tqdm(range(len(store)), desc="export", delay=1.0):
                    s = store[i]
                    obj = s.ink.to_json_dict()
                    obj.update(id=s.id, writer=s.writer, split=s.split)
                    if s.stroke_lines is not None:  # a page: the line of each stroke
                        obj["stroke_lines"] = s.stroke_lines.tolist()
                    f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            raise ConfigError(f"unknown export format {fmt!r}; use inkml or jsonl")
        return len(store) - len(refused), refused
