"""Importers: read the formats people really have and write an hwr store.

Each format module offers `read(sources, report, **options)`, a generator of `Sample`s that
counts what it skipped in `report`. `import_to_store` drives one into an all-or-nothing
`StoreWriter` with a progress bar.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from ..errors import HwrError
from ..ink import InkError
from ..store import Sample, StoreWriter

FORMATS = ("iam-ondb", "unipen", "inkml", "json")


class DataImportError(HwrError, ValueError):
    """An import that cannot go on (missing input, wrong layout); one-line message."""


@dataclass
class Report:
    """What an importer did: samples written, things skipped and why."""

    imported: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)
    splits: collections.Counter = field(default_factory=collections.Counter)
    notes: list[str] = field(default_factory=list)
    failed_files: int = 0  # input files with a problem (named in the notes or skip reasons): exit status 1

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def lines(self) -> list[str]:
        out = [f"imported {self.imported:,} samples"]
        if self.splits:
            out.append("splits: " + ", ".join(f"{k or '(none)'} {v:,}" for k, v in sorted(self.splits.items())))
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped {n:,}: {reason}")
        out.extend(self.notes)
        return out


class FileNotes:
    """Report lines naming a file and a reason: one per (file, reason) with its count, at most
    `cap` files per reason (then one line with how many more), so a broken corpus cannot flood it."""

    def __init__(self, report: Report, cap: int = 20):
        self.report, self.cap = report, cap
        self.files: collections.Counter = collections.Counter()  # reason -> files with it
        self.line: dict[tuple[str, str], int] = {}  # (file, reason) -> its index in report.notes
        self.count: collections.Counter = collections.Counter()
        self.detail: dict[tuple[str, str], str] = {}

    def add(self, where: str, reason: str, detail: str = "", n: int = 1) -> None:
        key = (where, reason)
        if key not in self.count:
            self.files[reason] += 1
            self.report.failed_files += 1
            self.detail[key] = detail
            if self.files[reason] <= self.cap:
                self.line[key] = len(self.report.notes)
                self.report.notes.append("")
        self.count[key] += n
        if key in self.line:
            d, k = self.detail[key], self.count[key]
            self.report.notes[self.line[key]] = (f"{where}: {reason}" + (f" ({d})" if d else "")
                                                 + (f", {k:,} times" if k > 1 else ""))

    def finish(self) -> None:
        for reason, k in self.files.items():
            if k > self.cap:
                self.report.notes.append(f"{reason}: {k - self.cap:,} more files not listed")
        self.files.clear()


def reader(fmt: str):
    """The format's `read(sources, report, **options)`: a generator of `Sample`s. IAM-OnDB and
    UNIPEN parse on worker processes while it is read (`parallel.ordered_map`); a caller that stops
    early should close it (`with contextlib.closing(read(...)) as samples:`) so they end then."""
    if fmt == "iam-ondb":
        from . import iam_ondb as m
    elif fmt == "unipen":
        from . import unipen as m
    elif fmt == "inkml":
        from . import inkml as m
    elif fmt == "json":
        from . import jsonink as m
    else:
        raise DataImportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return m.read


def import_to_store(fmt: str, sources: Iterable[str | os.PathLike], out: str | os.PathLike,
                    split: str | None = None, progress: bool = True, **options) -> Report:
    """Import `sources` in format `fmt` into a new store at `out` (replaced only on success)."""
    report = Report()
    sources = [os.fspath(s) for s in sources]
    samples: Iterator[Sample] = reader(fmt)(sources, report, **options)

    def tagged() -> Iterator[Sample]:
        for s in tqdm(samples, desc=f"import {fmt}", unit=" samples", disable=not progress,
                      mininterval=1.0, delay=1.0):
            try:
                s.validate()
            except InkError as e:
                report.skip(f"invalid ink ({str(e).split(':')[0]})")
                continue
            if split is not None and not s.split:
                s.split = split
            report.splits[s.split] += 1
            yield s

    with StoreWriter(out, mode="w", created_by=f"hwr data import {fmt}") as w:
        report.imported = w.add(tagged())
        if not report.imported:  # raising inside the writer leaves `out` exactly as it was
            why = "; ".join(report.lines()[1:]) or "no samples found"
            raise DataImportError(f"nothing imported from {', '.join(sources)} ({why}); "
                                  f"{out} left as it was")
    return report
