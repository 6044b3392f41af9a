"""Parse an importer's files on other processes while it reads the next ones.

The workers start from a forkserver (spawned where there is none), never by a plain fork: an
import runs in processes with other threads (tqdm's monitor, the app, a test session with
onnxruntime's workers), and a forked child can inherit a lock another thread held and wait on it
forever. Like every forkserver or spawn start, this imports the caller's main module again in
the workers, so a script that imports must keep its work under `if __name__ == "__main__":`
(the `hwr` command does).

At most `window` chunks per process are in flight, so memory stays bounded however large the
archive. A caller that stops reading (close the reader, e.g. with `contextlib.closing`, when
stopping early) or an error cancels what is still queued and waits only for the chunks already
running; Ctrl-C reaches the caller alone, so no worker dies halfway through sending a result; a
worker that dies (killed for memory, say) raises `BrokenProcessPool` instead of hanging.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import signal
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
    module-level function (it is sent to the workers by name). An error from `jobs` comes out
    after the results of every whole chunk before it, as from `Pool.imap`."""
    processes = processes or min(2, _usable_cores())
    it = iter(jobs)
    first = list(itertools.islice(it, chunk))
    try:
        second = list(itertools.islice(it, chunk))
    except Exception:  # as below: what came before still comes out
        yield from map(fn, first)
        raise
    if not second or processes < 2:
        yield from map(fn, itertools.chain(first, second, it))
        return
    chunks = itertools.chain((first, second), iter(lambda: list(itertools.islice(it, chunk)), []))
    pending: collections.deque[Future] = collections.deque()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context(_start_method()),
                             initializer=_leave_ctrl_c_to_the_caller) as pool:
        try:
            while True:
                try:
                    part = next(chunks)
                except StopIteration:
                    break
                except Exception:  # reading the next files failed: what came before still comes out
                    while pending:
                        yield from pending.popleft().result()
                    raise
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


def _leave_ctrl_c_to_the_caller() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use, not all the machine's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
