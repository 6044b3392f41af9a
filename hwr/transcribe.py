"""Batch transcription: any mix of stores, InkML and JSON inks -> one JSON line per ink.

Resumable: ids already in the output file are skipped, and each result line is flushed as
it is written, so an interrupted run loses nothing it wrote. Bad inputs are reported one per
line and the rest goes on. `shard=(i, n)` takes every n-th item, for n processes or machines
(under torchrun the rank and world size are used); `merge` joins their files.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from .decode import DecoderConfig
from .ink import Ink, InkError
from .recognizer import Recognizer

INK_SUFFIXES = (".h5", ".hdf5", ".inkml", ".json", ".jsonl", ".ndjson")


def iter_inputs(inputs: list[str]) -> Iterator[tuple[str, str, Ink | Exception]]:
    """(id, source, ink or the error that prevented reading it) for every ink in `inputs`."""
    from .importers.inkml import parse_inkml
    from .store import Store, StoreError

    for src in inputs:
        p = Path(src)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in INK_SUFFIXES)
            yield from iter_inputs([str(f) for f in files])
            continue
        if not p.exists():
            yield f"{src}", src, FileNotFoundError(f"{src}: no such file")
            continue
        suffix = p.suffix.lower()
        try:
            if suffix in (".h5", ".hdf5"):
                with Store(p) as s:
                    for i in range(len(s)):
                        yield s.meta["id"][i] or f"{p.stem}#{i}", src, s.ink(i)
            elif suffix == ".inkml" or suffix == ".xml":
                try:
                    inks = parse_inkml(p.read_bytes())
                    for k, (ink, _) in enumerate(inks):
                        yield p.stem if len(inks) == 1 else f"{p.stem}#{k}", src, ink
                except Exception as e:  # malformed XML of any kind is this item's failure
                    yield p.stem, src, InkError(f"unreadable InkML: {str(e)[:100]}")
            elif suffix in (".jsonl", ".ndjson"):
                for k, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
                    if line.strip():
                        yield from _json_item(line, f"{p.stem}#{k}", src)
            elif suffix == ".json":
                yield from _json_item(p.read_text(encoding="utf-8"), p.stem, src)
            else:
                yield p.name, src, InkError(f"{src}: unknown input type (use .h5, .inkml, .json or .jsonl)")
        except StoreError as e:
            yield p.name, src, e


def _json_item(text: str, default_id: str, src: str):
    try:
        obj = json.loads(text)
        yield str(obj.get("id") or default_id) if isinstance(obj, dict) else default_id, src, Ink.from_json_dict(obj)
    except (json.JSONDecodeError, InkError) as e:
        yield default_id, src, InkError(f"unreadable JSON ink: {str(e)[:100]}")


def shard_from_env() -> tuple[int, int] | None:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
    return None


def transcribe(inputs: list[str], out: str | os.PathLike, recognizer: Recognizer,
               decoder: DecoderConfig | None = None, nbest: int = 5, batch_size: int = 16,
               shard: tuple[int, int] | None = None, progress: bool = True) -> dict:
    """Write results to `out` (appending, skipping ids already there); returns counts."""
    out = Path(out)
    shard = shard or shard_from_env()
    if shard and shard[1] > 1:
        out = out.with_name(f"{out.stem}.shard{shard[0]}of{shard[1]}{out.suffix}")
    done = set()
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a crash: its ink is simply done again
    cfg = replace(decoder or recognizer.decoder_config, nbest=nbest)
    counts = {"written": 0, "skipped_done": 0, "failed": 0, "out": str(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        batch: list[tuple[str, str, Ink]] = []

        def flush():
            try:
                results = recognizer.recognize([b[2] for b in batch], decoder=cfg)
            except InkError:  # find the bad one(s) by doing the batch one at a time
                results = []
                for b in batch:
                    try:
                        results.append(recognizer.recognize(b[2], decoder=cfg))
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
            if id_ in done:
                counts["skipped_done"] += 1
                continue
            try:
                ink.validate()
            except InkError as e:
                _fail(id_, src, e)
                continue
            batch.append((id_, src, ink))
            done.add(id_)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        bar.close()
    return counts


def merge(parts: list[str], out: str | os.PathLike) -> int:
    """Concatenate shard files into `out`, dropping duplicate ids; returns the line count."""
    seen, n = set(), 0
    tmp = Path(f"{out}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for p in parts:
            for line in Path(p).read_text(encoding="utf-8").splitlines():
                try:
                    id_ = json.loads(line)["id"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
                if id_ not in seen:
                    seen.add(id_)
                    f.write(line + "\n")
                    n += 1
    os.replace(tmp, out)
    return n
