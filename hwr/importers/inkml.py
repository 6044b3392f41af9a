"""W3C InkML importer (and the parser the exporter's round trip relies on).

Supports `<traceFormat>` channels (X, Y, T, F; others read and dropped; X Y when absent),
`<trace>` text in the spec's value syntax (explicit numbers, `'` first differences and `"`
second differences, `!` explicit, `?`/`*` unknown and repeat are not used by writers we know
of and are rejected), `<traceGroup>` nesting and `<traceView traceDataRef="#id">` references.
Labels come from `<annotation type="truth|transcription">` or an `<annotationXML>` whose
type names the truth and holds a `<label>`. XML is parsed by defusedxml: no DTD entities,
no external references, no expansion bombs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from ..ink import Ink, InkError, Stroke
from ..store import Sample
from . import DataImportError, Report

TRUTH_TYPES = ("truth", "transcription", "label", "groundtruth", "ground_truth")
_NUM = re.compile(r"[!'\"]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[TF?*]")


class InkMLError(ValueError):
    pass


def read(sources: list[str], report: Report, groups: bool = False, **_) -> Iterator[Sample]:
    for path in _files(sources, (".inkml", ".xml")):
        try:
            data = path.read_bytes()
            for i, (ink, extra) in enumerate(parse_inkml(data, groups=groups)):
                yield Sample(ink, id=f"{path.stem}#{i}" if groups else path.stem, writer=extra.get("writer", ""),
                             source="inkml")
        except (InkMLError, InkError, SafeET.ParseError, DefusedXmlException) as e:
            report.skip(f"unreadable InkML ({type(e).__name__}: {str(e)[:80]})")


def _files(sources: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    out = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in suffixes))
        elif p.is_file():
            out.append(p)
        else:
            raise DataImportError(f"{s}: no such file or folder")
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_inkml(data: bytes | str, groups: bool = False) -> list[tuple[Ink, dict]]:
    """Inks in an InkML document: one for the file, or one per innermost labelled traceGroup."""
    root = SafeET.fromstring(data)
    if _local(root.tag) != "ink":
        raise InkMLError("root element is not <ink>")
    channels = ["X", "Y"]
    for el in root.iter():
        if _local(el.tag) == "traceFormat":
            chans = [c.get("name", "").upper() for c in el if _local(c.tag) == "channel"]
            if chans:
                channels = chans
            break
    traces: dict[str, Stroke] = {}
    order: list[Stroke] = []
    for el in root.iter():
        if _local(el.tag) == "trace":
            s = _parse_trace(el.text or "", channels)
            if el.get("type") in ("penUp",):
                continue
            tid = el.get("{http://www.w3.org/XML/1998/namespace}id") or el.get("id")
            if tid:
                traces[tid] = s
            order.append(s)
    meta = {}
    for el in root:
        if _local(el.tag) == "annotation" and el.get("type") == "writer":
            meta["writer"] = (el.text or "").strip()
    if not groups:
        if not order:
            raise InkMLError("no traces")
        return [(Ink(order, _label(root)), meta)]
    out = []
    for g in _innermost_labelled_groups(root):
        strokes = _group_strokes(g, traces)
        if strokes:
            out.append((Ink(strokes, _label(g)), meta))
    if not out:
        raise InkMLError("no labelled traceGroup found (drop --groups to import whole files)")
    return out


def _label(el) -> str | None:
    for child in el:
        tag = _local(child.tag)
        if tag == "annotation" and (child.get("type") or "").lower() in TRUTH_TYPES:
            return (child.text or "").strip()
        if tag == "annotationXML" and (child.get("type") or "").lower() in TRUTH_TYPES:
            for sub in child.iter():
                if _local(sub.tag) == "label":
                    return (sub.text or "").strip()
    return None


def _innermost_labelled_groups(root) -> list:
    found = []

    def walk(el) -> bool:
        inner = False
        for child in el:
            if _local(child.tag) == "traceGroup":
                inner = walk(child) or inner
        if _local(el.tag) == "traceGroup" and not inner and _label(el) is not None:
            found.append(el)
            return True
        return inner

    walk(root)
    return found


def _group_strokes(group, traces: dict[str, Stroke]) -> list[Stroke]:
    out = []
    for el in group.iter():
        tag = _local(el.tag)
        if tag == "trace":
            tid = el.get("{http://www.w3.org/XML/1998/namespace}id") or el.get("id")
            out.append(traces[tid] if tid in traces else _parse_trace(el.text or "", ["X", "Y"]))
        elif tag == "traceView":
            ref = (el.get("traceDataRef") or "").lstrip("#")
            if ref not in traces:
                raise InkMLError(f"traceView refers to unknown trace {ref!r}")
            s = traces[ref]
            lo, hi = el.get("from"), el.get("to")
            if lo or hi:  # from/to are point indices (1-based in the spec's examples? we take 0-based)
                a = int(lo.split(":")[-1]) if lo else 0
                b = int(hi.split(":")[-1]) + 1 if hi else len(s)
                s = Stroke(s.points[a:b], s.pointer_type)
            out.append(s)
    return out


def _parse_trace(text: str, channels: list[str]) -> Stroke:
    """Trace text -> stroke; points are comma-separated, values space-separated, with the
    spec's prefixes: `!` explicit, `'` first difference, `"` second difference (sticky)."""
    n = len(channels)
    rows = []
    prev = np.zeros(n)
    vel = np.zeros(n)
    mode = ["!"] * n
    for pt in text.split(","):
        toks = _NUM.findall(pt)
        if not toks:
            continue
        vals = np.zeros(n)
        j = 0
        for tok in toks:
            if tok in ("!", "'", '"'):
                if j < n:
                    mode[j] = tok
                continue
            if tok in ("T", "F"):
                v = 1.0 if tok == "T" else 0.0
            elif tok in ("?", "*"):
                raise InkMLError("InkML '?' and '*' trace values are not supported")
            else:
                v = float(tok)
            if j >= n:
                raise InkMLError(f"a point has more values than the {n} channels of its traceFormat")
            if mode[j] == "'":
                vel[j] = v
                v = prev[j] + v
            elif mode[j] == '"':
                vel[j] = vel[j] + v
                v = prev[j] + vel[j]
            vals[j] = v
            j += 1
        if j < min(2, n):
            raise InkMLError("a trace point lacks X or Y")
        if j < n:
            vals[j:] = np.nan
        rows.append(vals)
        prev = vals
    if not rows:
        raise InkMLError("empty trace")
    arr = np.array(rows)
    pts = np.full((len(arr), 4), np.nan)
    for j, name in enumerate(channels):
        col = {"X": 0, "Y": 1, "T": 2, "F": 3}.get(name)
        if col is not None:
            pts[:, col] = arr[:, j]
    return Stroke(pts, "")
