"""The importers' process pool: order, bounded reading ahead, early stops, errors, threads."""

import contextlib
import multiprocessing
import os
import signal
import threading
import time

import pytest

from hwr.importers.parallel import ordered_map


def square(x: int) -> int:
    return x * x


def pid(_) -> int:
    return os.getpid()


def parent_pid(_) -> int:
    return os.getppid()


def ignores_ctrl_c(_) -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def gated(job) -> int:
    """Jobs after the first two wait for the test's gate file, so what was queued when the caller
    stopped cannot have run by then, however slow the machine."""
    folder, i = job
    (folder / f"started-{i}").touch()
    deadline = time.monotonic() + 60
    while i >= 2 and not (folder / "gate").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)
    return i


def fail_on_7(x: int) -> int:
    if x == 7:
        raise ValueError("job 7 is bad")
    return x


def die_on_5(x: int) -> int:
    if x == 5:
        os._exit(3)  # a worker killed (for memory, say) in the middle of a chunk
    return x


def counted(n: int, taken: list[int]):
    for i in range(n):
        taken.append(i)
        yield i


def test_results_come_in_order_on_two_processes():
    assert list(ordered_map(square, iter(range(1000)), chunk=7, processes=2)) == [x * x for x in range(1000)]
    assert multiprocessing.active_children() == []  # the workers ended with the reading


def test_a_few_jobs_or_one_process_run_here():
    assert set(ordered_map(pid, range(8), chunk=8, processes=2)) == {os.getpid()}
    assert set(ordered_map(pid, range(100), chunk=8, processes=1)) == {os.getpid()}
    assert os.getpid() not in set(ordered_map(pid, range(100), chunk=8, processes=2))


def test_jobs_are_read_a_bounded_way_ahead_and_an_early_stop_ends_the_workers():
    taken: list[int] = []
    results = ordered_map(square, counted(100_000, taken), chunk=10, window=2, processes=2)
    with contextlib.closing(results):
        assert [next(results) for _ in range(25)] == [x * x for x in range(25)]
        assert len(taken) <= 25 + (2 * 2 + 1) * 10  # read: what came out, the window, one chunk being read
    assert multiprocessing.active_children() == []


def test_a_job_error_comes_out_as_it_is():
    with pytest.raises(ValueError, match="job 7 is bad"):
        list(ordered_map(fail_on_7, range(200), chunk=4, processes=2))
    assert multiprocessing.active_children() == []


def test_a_dead_worker_raises_instead_of_hanging():
    from concurrent.futures.process import BrokenProcessPool
    with pytest.raises(BrokenProcessPool):
        list(ordered_map(die_on_5, range(200), chunk=4, processes=2))


def test_workers_are_never_forked_from_the_caller():
    """A forked child inherits every lock another thread held at that moment (this process has
    other threads: pytest-timeout's timer, tqdm's monitor, onnxruntime's workers); the
    forkserver starts workers from a process of its own."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        parents = set(ordered_map(parent_pid, range(300), chunk=16, processes=2))
        assert os.getpid() not in parents
    finally:
        stop.set()
        other.join()


def test_ctrl_c_reaches_the_caller_alone():
    """A worker interrupted halfway through sending its result would leave the pool waiting for
    the rest of it; the caller's KeyboardInterrupt ends the import instead."""
    assert set(ordered_map(ignores_ctrl_c, range(100), chunk=8, processes=2)) == {True}


def test_an_early_stop_cancels_the_queued_jobs(tmp_path):
    results = ordered_map(gated, ((tmp_path, i) for i in range(1000)), chunk=1, window=10, processes=2)
    assert [next(results), next(results)] == [0, 1]
    # 20 jobs are queued now; two run (held at the gate) and the executor has handed 3 more to its workers
    opener = threading.Timer(1.0, (tmp_path / "gate").touch)  # after the close has cancelled the rest
    opener.start()
    results.close()
    opener.join()
    assert len(list(tmp_path.glob("started-*"))) <= 2 + 2 + 3


def test_an_error_reading_the_jobs_comes_after_every_result_before_it():
    def jobs():
        yield from range(100)
        raise ValueError("archive truncated")
    got = []
    with pytest.raises(ValueError, match="archive truncated"):
        for r in ordered_map(square, jobs(), chunk=4, processes=2):
            got.append(r)
    assert got == [x * x for x in range(100)]
    assert multiprocessing.active_children() == []
    got = []
    with pytest.raises(ValueError, match="archive truncated"):  # inside the second chunk, before any process
        for r in ordered_map(square, jobs(), chunk=64, processes=2):
            got.append(r)
    assert got == [x * x for x in range(64)]
