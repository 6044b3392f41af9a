"""Exporters: a store as InkML files (one per sample) or as canonical JSON Lines."""

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

    Raises InkError for a label, writer or id that would not read back exactly (control
    characters XML cannot hold, edge white space the reader strips).
    """
    for what, value in (("label", ink.text), ("writer", writer), ("id", sample_id)):
        check_text(value or "", f"the {what} {value!r} (InkML cannot carry it; fix it or export as jsonl)")
        if value and value != value.strip():  # the InkML reader strips labels: it would not read back
            raise InkError(f"the {what} {value!r} starts or ends with white space, which InkML does not keep; "
                           "strip it or export as jsonl")
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
        lines.append(f'  <annotation type="truth">{escape(ink.text)}</annotation>')
    if writer:
        lines.append(f'  <annotation type="writer">{escape(writer)}</annotation>')
    if sample_id:
        lines.append(f'  <annotation type="id">{escape(sample_id)}</annotation>')
    for k, s in enumerate(ink.strokes):
        body = ", ".join(" ".join(repr(float(v)) for v in row) for row in s.points[:, cols])
        lines.append(f'  <trace xml:id={quoteattr(f"t{k}")}>{body}</trace>')
    lines.append("</ink>")
    return "\n".join(lines) + "\n"


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
                    f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            raise ConfigError(f"unknown export format {fmt!r}; use inkml or jsonl")
        return len(store) - len(refused), refused
