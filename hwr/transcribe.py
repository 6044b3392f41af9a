"""Batch transcription: any mix of stores, InkML and JSON inks -> one JSON line per ink.

Resumable: ids already in the output file are skipped, and each result line is flushed as
it is written, so an interrupted run loses nothing it wrote (a line cut mid-write is dropped
and redone). One run at a time writes an output (a lock file beside it); ids are unique.
Bad inputs are reported one per line and the rest goes on. `shard=(i, n)` takes every n-th item, for n processes or machines
(under torchrun the rank and world size are used); `merge` joins their files.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm import tqdm

from . import inkfile
from .decode import DecoderConfig
from .errors import HwrError
from .evaluate import EvalConfig
from .fileutil import write_atomic
from .ink import Ink, InkError
from .recognizer import Recognizer


@dataclass(frozen=True)
class TranscribeConfig:
    """Defaults of `transcribe` and `hwr transcribe` (the CLI reads them from here)."""

    batch_size: int = EvalConfig.batch_size  # inks per recognize call, as in evaluation
    nbest: int = DecoderConfig.nbest  # candidates per line, whatever the model's decoder.json says
    layout: str = "page"              # page: cut each ink into lines; line: read it as one line


def iter_inputs(inputs: list[str]) -> Iterator[tuple[str, str, Ink | Exception]]:
    """(id, source, ink or the error that prevented reading it) for every ink in `inputs`.

    Stores, InkML, JSON and JSON Lines files, and folders of them: a file and a folder's files
    are read alike, by `inkfile.read_inks` (other files in a folder are ignored). Ids are unique
    and stable: a file's path relative to the folder given (or the path as given, for a file),
    `#k` for the k-th ink of a file that holds several, a store's own sample ids; a JSON ink's
    own "id" wins. Two inputs that still share an id are reported by `transcribe`.
    """
    for src in inputs:
        p = Path(src)
        if p.is_dir():
            for f in inkfile.files_in(p):
                yield from _file_items(f, inkfile.safe_name(f.relative_to(p).as_posix()))
        elif not p.exists():
            yield src, src, FileNotFoundError(f"{src}: no such file")
        else:
            yield from _file_items(p, inkfile.safe_name(src))


def _file_items(p: Path, name: str) -> Iterator[tuple[str, str, Ink | Exception]]:
    """The inks of one file, with ids built from `name`."""
    src = str(p)
    try:
        for item in inkfile.read_inks(p, name):
            yield item.id, src, item.ink
    except HwrError as e:  # the file as a whole cannot be read: this input's failure, not the run's
        yield name, src, e


class OutputBusy(HwrError, ValueError):
    """Another process holds the output file; one-line message."""


def shard_from_env() -> tuple[int, int] | None:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    return None


def transcribe(inputs: list[str], out: str | os.PathLike, recognizer: Recognizer,
               decoder: DecoderConfig | None = None, nbest: int = TranscribeConfig.nbest,
               batch_size: int = TranscribeConfig.batch_size, shard: tuple[int, int] | None = None,
               progress: bool = True, layout: str = TranscribeConfig.layout) -> dict:
    """Write results to `out` (appending, skipping ids already there); returns counts.

    Each row is `Result.as_dict()` with the id and source: `text` (lines joined by newlines),
    `lines` (per line: text, candidates, strokes), `words` (per-word alternatives)."""
    out = Path(out)
    shard = shard or shard_from_env()
    if shard and shard[1] > 1:
        out = out.with_name(f"{out.stem}.shard{shard[0]}of{shard[1]}{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _output_lock(out):
        return _transcribe(inputs, out, recognizer, decoder, nbest, batch_size, shard, progress, layout)


@contextlib.contextmanager
def _output_lock(out: Path):
    """One writer per output file, across processes; a second one is refused at once."""
    lock = FileLock(f"{out}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputBusy(f"{out} is being written by another hwr transcribe; wait for it, or give each run its own "
                         "--out (--shard I/N splits one job)") from None
    try:
        yield
    finally:
        lock.release()


def _done_ids(out: Path) -> set[str]:
    """Ids already in `out`; a last line cut by a crash (no newline) is removed, to be redone."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(out, "r+b") as f:
            f.truncate(keep)
        data = data[:keep]
    return {i for i in map(_row_id, data.decode("utf-8", errors="replace").splitlines()) if i is not None}


def _row_id(line: str) -> str | None:
    """The id of one result line, None for a line that is not a result (cut, foreign)."""
    try:
        return json.loads(line)["id"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def _transcribe(inputs, out: Path, recognizer, decoder, nbest, batch_size, shard, progress, layout) -> dict:
    done = _done_ids(out)
    seen: dict[str, str] = {}  # id -> source, in this run
    cfg = replace(decoder or recognizer.decoder_config, nbest=nbest)
    counts = {"written": 0, "skipped_done": 0, "failed": 0, "out": str(out)}
    with open(out, "a", encoding="utf-8") as f:
        batch: list[tuple[str, str, Ink]] = []

        def flush():
            try:
                results = recognizer.recognize([b[2] for b in batch], decoder=cfg, layout=layout)
            except InkError:  # find the bad one(s) by doing the batch one at a time
                results = []
                for b in batch:
                    try:
                        results.append(recognizer.recognize(b[2], decoder=cfg, layout=layout))
                    except InkError as e:
                        results.append(e)
            for (id_, src, _), r in zip(batch, results):
                if isinstance(r, Exception):
                    _fail(id_, src, r)
                    continue
                row = {"id": id_, "source": src, **r.as_dict()}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                counts["written"] += 1
            batch.clear()

        def _fail(id_, src, e):
            counts["failed"] += 1
            tqdm.write(f"hwr transcribe: {id_} ({src}): {e}", file=sys.stderr)

        bar = tqdm(desc="transcribe", unit=" inks", disable=not progress, delay=1.0)
        for n, (id_, src, ink) in enumerate(iter_inputs(inputs)):
            if shard and shard[1] > 1 and n % shard[1] != shard[0]:
                continue
            bar.update(1)
            if isinstance(ink, Exception):
                _fail(id_, src, ink)
                continue
            if id_ in seen:  # two inputs of this run share an id: never silently skip one
                _fail(id_, src, InkError(f"duplicate id: {seen[id_]} has it too; rename one file or give the "
                                         "inks distinct ids"))
                continue
            seen[id_] = src
            if id_ in done:
                counts["skipped_done"] += 1
                continue
            try:  # time only orders points here: a clock that runs backwards is clamped, not refused
                ink.validate(repair_time="clamp")
            except InkError as e:
                _fail(id_, src, e)
                continue
            batch.append((id_, src, ink))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        bar.close()
    return counts


def merge(parts: list[str], out: str | os.PathLike) -> int:
    """Concatenate shard files into `out`, dropping duplicate ids; returns the line count."""
    seen, rows = set(), []
    for p in parts:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            id_ = _row_id(line)
            if id_ is not None and id_ not in seen:
                seen.add(id_)
                rows.append(line + "\n")
    with _output_lock(Path(out)):  # a transcribe appending to `out` must not lose rows to the rename
        write_atomic(out, "".join(rows))
    return len(rows)
