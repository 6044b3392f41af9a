"""Parse an importer's files on other processes while it reads the next ones.

A process with one thread (`hwr data import`) forks its workers: quick, and nothing else is
running to leave a lock held. A process with other threads (the app, a test session with
onnxruntime's workers, a notebook) starts them from a forkserver instead, since a forked child
can inherit a lock that another thread held and wait on it forever; like every forkserver or
spawn start, that imports the caller's main module again in the workers, so a script that
imports there must keep its work under `if __name__ == "__main__":`.

At most `window` chunks per process are in flight, so memory stays bounded however large the
archive; a caller that stops reading (close the reader, e.g. with `contextlib.closing`, when
stopping early) or an error cancels what is still queued and ends the workers; a worker that
dies (killed for memory, say) raises `BrokenProcessPool` instead of hanging.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


def ordered_map(fn: Callable[[J], R], jobs: Iterable[J], chunk: int, window: int = 4,
                processes: int | None = None) -> Iterator[R]:
    """`fn(job)` for every job, in order, `chunk` jobs to a task on up to `processes` processes
    (default: the usable cores, at most 2: parsing is quick and the caller's own thread, which
    reads the files and stores the samples, needs a core too). Jobs that fit in one chunk, or a
    single process, run here: a process would cost more than it saves. `fn` must be a
    module-level function (it is sent to the workers by name)."""
    processes = processes or min(2, _usable_cores())
    it = iter(jobs)
    first = list(itertools.islice(it, chunk))
    second = list(itertools.islice(it, chunk))
    if not second or processes < 2:
        yield from map(fn, itertools.chain(first, second, it))
        return
    chunks = itertools.chain((first, second), iter(lambda: list(itertools.islice(it, chunk)), []))
    pending: collections.deque[Future] = collections.deque()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context(_start_method())) as pool:
        try:
            for part in chunks:
                if len(pending) >= window * processes:
                    yield from pending.popleft().result()
                pending.append(pool.submit(_run_chunk, fn, part))
            while pending:
                yield from pending.popleft().result()
        finally:  # an error, or a caller that stopped reading: nothing of this call left queued
            for f in pending:
                f.cancel()


def _run_chunk(fn: Callable[[J], R], part: list[J]) -> list[R]:
    return [fn(job) for job in part]


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use, not all the machine's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
