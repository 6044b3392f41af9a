"""W3C InkML importer (and the parser the exporter's round trip relies on).

Supports `<traceFormat>` channels (X, Y, T, F; others read and dropped; X Y when absent; an X or Y
channel with `orientation="-ve"` is negated, so y grows downward as hwr's features expect, InkML's own default),
`<trace>` text in the spec's value syntax (explicit numbers, `'` first differences and `"`
second differences, `!` explicit, `?`/`*` unknown and repeat are not used by writers we know
of and are rejected), `<traceGroup>` nesting and `<traceView traceDataRef="#id">` references
(to a trace, a traceGroup or another traceView). Labels and writers are read the way real
corpora write them (see `TRUTH_TYPES`, `WRITER_TYPES`): the type is compared without case,
spaces, underscores or hyphens, so `truth`, `Ground truth`, `Ground_Truth` and `groundTruth`
are one type; their text is stripped of surrounding white space (files are pretty-printed)
unless the annotation says `xml:space="preserve"`, as the exporter writes a label with edge
spaces. Line breaks inside a label (a page's lines) are kept. A file's label is its `<ink>`'s,
else that of its one outermost labelled traceGroup (a paragraph split into labelled word
groups); `groups=True` gives one ink per innermost labelled traceGroup. The writer comes from an annotation, else from the folders
(`writer042/`, or the file's folder inside the input root). XML is parsed by defusedxml: no
DTD entities, no external references, no expansion bombs.

Files are read by `hwr.inkfile.read_inks`, as `hwr transcribe` and the app's upload read them.
Sample ids are the file's path relative to the folder given (or the path as given, for a
file), plus `#k` for the k-th ink of a file that holds several; a file that cannot be read is
reported with its name and the reason, and the others go on. `read_files` and the helpers
below it are shared with the JSON importer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from .. import inkfile
from ..ink import Ink, InkError, Stroke, check_text
from ..inkfile import safe_name
from ..store import Sample
from . import DataImportError, Report

TRUTH_TYPES = frozenset({"truth", "groundtruth", "transcription", "label"})
WRITER_TYPES = frozenset({"writer", "writerid", "writername", "author", "authorid"})
_NUM = re.compile(r"[!'\"]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[TF?*]")
_JUNK = re.compile(r"[\s,]+")
_WRITERISH = re.compile(r"(?i)writer|^(?:author|user|subject|participant|person|w)[-_ ]?\d+[a-z]?$")
_NOT_WRITERS = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "data",
                          "inkml", "ink", "words", "word", "lines", "line", "paragraphs", "paragraph", "text",
                          "texts", "all", "files", "samples", "docs", "documents"})
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
MAX_VIEW_DEPTH = 16  # traceView -> traceView -> ... chains; deeper is refused, cycles included


class InkMLError(InkError):
    """An InkML document that cannot be read; the message says what is wrong with it."""


def read(sources: list[str], report: Report, groups: bool = False, repair_time: str | None = None,
         **_) -> Iterator[Sample]:
    """Samples of every InkML file in `sources`; bad files are reported one line each in `report`."""
    return read_files(sources, report, inkfile.suffixes_of(inkfile.INKML), groups=groups,
                      repair_time=repair_time, folder_writers=True)


# ---------------------------------------------------------------- shared by the file readers
class InputFile(NamedTuple):
    path: Path
    name: str  # the base of its sample ids: the same on every run
    folders: tuple[str, ...]  # the input folder's own name, then the folders inside it down to the file's


def read_files(sources: list[str], report: Report, suffixes: tuple[str, ...], groups: bool = False,
               repair_time: str | None = None, folder_writers: bool = False) -> Iterator[Sample]:
    """Samples of the ink files in `sources` that end in one of `suffixes`, each read by
    `inkfile.read_inks`; a file or an ink that cannot be read is reported in `report` by name and
    the rest goes on. `folder_writers`: a sample without a writer takes one from its folders."""
    ids = IdRegistry()
    for path, name, folders in input_files(sources, suffixes):
        source = "inkml" if inkfile.kind(path) == inkfile.INKML else "json"
        folder_writer = writer_from_folders(folders) if folder_writers else ""
        problems: list[str] = []
        try:
            for item in inkfile.read_inks(path, name, groups=groups):
                sample = _sample(item, repair_time, source, folder_writer, ids, problems)
                if sample is not None:
                    yield sample
        except InkError as e:  # the file as a whole: nothing of it was read
            problems = [file_reason(name, str(e))]
        if problems:
            report_problems(report, name, problems)


def _sample(item: inkfile.InkItem, repair_time: str | None, source: str, folder_writer: str,
            ids: IdRegistry, problems: list[str]) -> Sample | None:
    """The validated sample of one item, or None with the reason added to `problems`."""
    if isinstance(item.ink, InkError):
        problems.append(f"{item.where}: {item.ink}")
        return None
    ink = item.ink
    before = {id(s): k for k, s in enumerate(ink.strokes)}
    try:
        ink.validate(repair_time)
    except InkError as e:
        problems.append(f"{item.where}: invalid ink ({e})")
        return None
    dup = ids.claim(item.id, item.where)
    if dup:
        problems.append(dup)
        return None
    sample = Sample(ink, id=item.id, writer=item.meta.get("writer") or folder_writer,
                    split=item.meta.get("split", ""), source=source)
    lines = item.meta.get("stroke_lines")
    if lines is not None:  # repair_time="sort" may reorder the strokes: each keeps its line
        sample.stroke_lines = lines[[before[id(s)] for s in ink.strokes]]
    return sample


_IMPORT_AS = {inkfile.INKML: ("an InkML", "inkml"), inkfile.JSON: ("a JSON ink", "json"),
              inkfile.JSONL: ("a JSON Lines", "json")}


def input_files(sources: list[str], suffixes: tuple[str, ...]) -> list[InputFile]:
    """Every input file: a folder's files that end in one of `suffixes`, named by their path
    inside it; a file given by its path as given, refused when its suffix is not one of them."""
    out = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            top = p.resolve().name
            for f in inkfile.files_in(p, suffixes):
                rel = f.relative_to(p)
                out.append(InputFile(f, safe_name(rel.as_posix()), (top, *rel.parts[:-1])))
        elif p.is_file():
            _check_suffix(s, suffixes)
            out.append(InputFile(p, safe_name(s), (p.resolve().parent.name,)))
        elif p.exists():
            raise DataImportError(f"{s}: not a regular file or folder; give files or folders")
        else:
            raise DataImportError(f"{s}: no such file or folder")
    return out


def _check_suffix(s: str, suffixes: tuple[str, ...]) -> None:
    """Refuse a file this format does not read, saying which command reads it."""
    try:
        k = inkfile.kind(s)
    except InkError as e:  # the same sentence as the app's upload and hwr transcribe
        raise DataImportError(f"{s}: {e}") from None
    if Path(s).suffix.lower() in suffixes:
        return
    if k in _IMPORT_AS:
        what, fmt = _IMPORT_AS[k]
        raise DataImportError(f"{s} is {what} file; import it with `hwr data import {fmt}`")
    raise DataImportError(f"{s} is an hwr store already; use it as it is (`hwr data export` writes it as ink files)")


def one_line(text: str, limit: int = 160) -> str:
    """`text` on one printable line, cut to `limit` characters."""
    flat = "".join(c if c.isprintable() else "?" for c in " ".join(str(text).split()))
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def file_reason(name: str, why: str) -> str:
    """The one-line skip reason for a file: its name, then what was wrong."""
    return f"{one_line(name, 100)}: {one_line(why)}"


def report_problems(report: Report, name: str, problems: list[str]) -> None:
    """One report line for a file whose inks or lines were skipped, counting all of them."""
    more = f" (and {len(problems) - 1} more from this file)" if len(problems) > 1 else ""
    report.skip(one_line(problems[0], 200) + more, len(problems))
    report.failed_files += 1


class IdRegistry:
    """Remembers the ids handed out in one import, so a second sample with one is reported."""

    def __init__(self) -> None:
        self._where: dict[str, str] = {}

    def claim(self, sample_id: str, name: str) -> str | None:
        """None if `sample_id` is new (it is now taken), else the reason to skip the sample."""
        first = self._where.get(sample_id)
        if first is None:
            self._where[sample_id] = name
            return None
        return (f"duplicate id {one_line(sample_id, 80)!r} in {one_line(name, 80)} (first given by "
                f"{one_line(first, 80)}); give every ink its own id")


def writer_from_folders(folders: tuple[str, ...]) -> str:
    """The writer a corpus names only in its folders: the innermost folder that looks like a
    writer (`writer042`, `w7`, `subject_3`), else the file's own folder when it lies in a
    subfolder of the input folder (`0042/p01.inkml`) and is not named like a split or a level."""
    for part in reversed(folders):
        if _WRITERISH.search(part):
            return safe_name(part)
    if len(folders) > 1 and folders[-1].lower() not in _NOT_WRITERS:
        return safe_name(folders[-1])
    return ""


# ---------------------------------------------------------------- InkML
def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _kind(value: str | None) -> str:
    """An annotation type compared the way corpora vary it: 'Ground_Truth' == 'groundtruth'."""
    return re.sub(r"[\s_\-]+", "", value or "").lower()


def parse_inkml(data: bytes | str, groups: bool = False) -> list[tuple[Ink, dict]]:
    """Inks in an InkML document: one for the file, or one per innermost labelled traceGroup.

    Each comes with a dict holding "writer" when the document names one. Raises `InkMLError`
    (an `InkError`) with a one-line reason for anything that is not readable InkML.
    """
    try:
        root = SafeET.fromstring(data)
    except SafeET.ParseError as e:
        raise InkMLError(f"not well-formed XML: {e}") from None
    except DefusedXmlException as e:
        raise InkMLError(f"refused XML ({type(e).__name__}: {e})") from None
    except (LookupError, ValueError) as e:  # an unknown or multi-byte encoding declared
        raise InkMLError(f"unsupported XML encoding: {e}") from None
    if _local(root.tag) != "ink":
        raise InkMLError("root element is not <ink>")
    elements = list(root.iter())  # document order, without recursion (nesting may be deep)
    channels, flip = ["X", "Y"], set()
    for el in elements:
        if _local(el.tag) == "traceformat":
            defs = [c for c in el if _local(c.tag) == "channel"]
            if defs:
                channels = [(c.get("name") or "").upper() for c in defs]
                flip = {n for n, c in zip(channels, defs) if n in ("X", "Y") and (c.get("orientation") or "").strip() == "-ve"}
            break
    if "X" not in channels or "Y" not in channels:
        raise InkMLError(f"the traceFormat has no X and Y channels (it has {', '.join(channels)[:60]})")
    strokes: dict = {}  # trace element -> its stroke (pen-up traces are left out)
    by_id: dict[str, object] = {}
    for el in elements:
        tag = _local(el.tag)
        tid = el.get(_XML_ID) or el.get("id")
        if tid and tag in ("trace", "tracegroup", "traceview"):
            by_id.setdefault(tid, el)
        if tag == "trace" and (el.get("type") or "").lower() != "penup":
            strokes[el] = _parse_trace(el.text or "", channels, flip)
    meta = {}
    writer = _writer(elements)
    if writer:
        meta["writer"] = writer
    if not groups:
        if not strokes:
            raise InkMLError("no traces")
        label = _label(root)
        if label is None:
            outer = _outermost_labelled_groups(root)
            label = _label(outer[0]) if len(outer) == 1 else None
        return [(Ink(list(strokes.values()), label), meta)]
    out = []
    budget = [10 * len(elements) + 10_000]  # work allowed to traceView expansion (no blow-ups)
    for g in _innermost_labelled_groups(root, elements):
        group_strokes = _group_strokes(g, strokes, by_id, budget)
        if group_strokes:
            out.append((Ink(group_strokes, _label(g)), meta))
    if not out:
        raise InkMLError("no labelled traceGroup found (drop --groups to import whole files)")
    return out


def _text(el) -> str:
    """An element's text, stripped (files are pretty-printed), unless it says xml:space="preserve"
    (the exporter's way to keep a label's edge spaces)."""
    text = "".join(el.itertext())
    return text if el.get(_XML_SPACE) == "preserve" else text.strip()


def _label(el) -> str | None:
    """The ground truth written directly on `el` (an <ink> or a <traceGroup>), if any."""
    for child in el:
        tag = _local(child.tag)
        if tag not in ("annotation", "annotationxml") or _kind(child.get("type")) not in TRUTH_TYPES:
            continue
        if tag == "annotation":
            return check_text(_text(child), "the label")
        for sub in child.iter():
            if _local(sub.tag) == "label":
                return check_text(_text(sub), "the label")
        if len(child) == 0:  # <annotationXML type="truth">text</annotationXML>
            return check_text(_text(child), "the label")
    return None


def _writer(elements) -> str:
    for el in elements:
        if _local(el.tag) in ("annotation", "annotationxml") and _kind(el.get("type")) in WRITER_TYPES:
            name = _text(el)
            if name:
                return check_text(name, "the writer")
    return ""


def _outermost_labelled_groups(root) -> list:
    found, todo = [], [root]
    while todo:
        el = todo.pop()
        for child in reversed(list(el)):
            if _local(child.tag) != "tracegroup":
                continue
            if _label(child) is not None:
                found.append(child)
            else:
                todo.append(child)
    return found


def _innermost_labelled_groups(root, elements) -> list:
    parent = {c: p for p in elements for c in p}
    labelled = [el for el in elements if _local(el.tag) == "tracegroup" and _label(el) is not None]
    has_labelled_inside = set()
    for g in labelled:  # mark ancestors; stop at one already marked, so each is visited once
        p = parent.get(g)
        while p is not None and p not in has_labelled_inside:
            has_labelled_inside.add(p)
            p = parent.get(p)
    return [g for g in labelled if g not in has_labelled_inside]


def _group_strokes(group, strokes: dict, by_id: dict, budget: list[int], depth: int = 0) -> list[Stroke]:
    out = []
    for el in group.iter():
        budget[0] -= 1
        if budget[0] < 0:
            raise InkMLError("traceView references expand to far more ink than the file holds")
        tag = _local(el.tag)
        if tag == "trace":
            if el in strokes:
                out.append(strokes[el])
        elif tag == "traceview" and el.get("traceDataRef") is not None:
            out.extend(_view_strokes(el, strokes, by_id, budget, depth))
    return out


def _view_strokes(view, strokes: dict, by_id: dict, budget: list[int], depth: int) -> list[Stroke]:
    ref = (view.get("traceDataRef") or "").strip().lstrip("#")
    target = by_id.get(ref)
    if target is None:
        raise InkMLError(f"traceView refers to unknown trace {ref[:40]!r}")
    if depth >= MAX_VIEW_DEPTH:
        raise InkMLError(f"traceView references nest more than {MAX_VIEW_DEPTH} deep (or refer to themselves)")
    lo, hi = view.get("from"), view.get("to")
    if _local(target.tag) != "trace":
        if lo or hi:
            raise InkMLError("traceView from/to are supported on references to traces only")
        if target is view or any(el is view for el in target.iter()):
            raise InkMLError(f"traceView {ref[:40]!r} refers to itself")
        if _local(target.tag) == "traceview":
            return _view_strokes(target, strokes, by_id, budget, depth + 1)
        return _group_strokes(target, strokes, by_id, budget, depth + 1)
    if target not in strokes:
        raise InkMLError(f"traceView refers to pen-up trace {ref[:40]!r}")
    s = strokes[target]
    if not (lo or hi):
        return [s]
    try:  # from/to are point indices ("2" or hierarchical "1:2"; we take the last part, 0-based)
        a = int(lo.split(":")[-1]) if lo else 0
        b = int(hi.split(":")[-1]) + 1 if hi else len(s)
    except ValueError:
        raise InkMLError(f"traceView from/to {lo!r:.20}/{hi!r:.20} are not point indices") from None
    if not 0 <= a < b <= len(s):
        raise InkMLError(f"traceView from/to {lo}/{hi} lie outside trace {ref[:40]!r} of {len(s)} points")
    return [Stroke(s.points[a:b], s.pointer_type)]


def _parse_trace(text: str, channels: list[str], flip: set[str] = frozenset()) -> Stroke:
    """Trace text -> stroke; points are comma-separated, values space-separated, with the
    spec's prefixes: `!` explicit, `'` first difference, `"` second difference (sticky).
    Channels named in `flip` (X, Y with orientation "-ve") are negated."""
    junk = _JUNK.sub("", _NUM.sub("", text))
    if junk:  # "12px", "NaN", "inf": a value that is not a number refuses the file
        raise InkMLError(f"trace holds {junk[:20]!r}, which is not an InkML value")
    n = len(channels)
    rows = []
    prev = [0.0] * n  # Python floats: overflow becomes inf quietly, refused by validation
    vel = [0.0] * n
    mode = ["!"] * n
    for pt in text.split(","):
        toks = _NUM.findall(pt)
        if not toks:
            continue
        vals = [float("nan")] * n
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
        rows.append(vals)
        prev = vals
    if not rows:
        raise InkMLError("empty trace")
    cols = {"X": 0, "Y": 1, "T": 2, "F": 3}
    pts = [[float("nan")] * 4 for _ in rows]
    for j, name in enumerate(channels):
        col = cols.get(name)
        if col is not None:
            sign = -1.0 if name in flip else 1.0
            for r, row in zip(pts, rows):
                r[col] = sign * row[j]
    return Stroke(pts, "")
