"""Measuring time: two clocks, and per-call times.

- The wall clock includes the device's queued work: CUDA runs asynchronously, so a timed call
  must wait for the device before the clock is read. torch.utils.benchmark's ``timer`` does
  exactly that; on the CPU there is nothing to wait for and the plain ``timeit`` clock is used,
  so CPU timings never touch CUDA.
- The CPU clock (``CPU_CLOCK``) is the calling thread's CPU time: what the thread ran, user and
  system, and nothing else. Neighbour processes cannot move it (a wall time on a loaded 2-core
  machine grew 1.5-1.9x where this clock moved 0-4 %). It does not see work on other threads or processes, nor waiting (sleep, I/O, a GPU): such a cell is
  never timed with it (``unseen_share``).
"""
from __future__ import annotations

import os
import statistics
import time
import timeit
from typing import Callable, List, Tuple

import torch


def clock_for(device) -> Callable[[], float]:
    """A clock that reads after all work queued on ``device`` has finished."""
    if torch.device(device).type == "cpu":
        return timeit.default_timer
    # Imported here: torch.utils.benchmark pulls in cpp_extension, slow and noisy at start-up.
    from torch.utils.benchmark.utils.timer import timer as synchronizing_timer
    return synchronizing_timer


# The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not the process's: a background thread
# of the runtime can add nothing, and a cell that does work elsewhere is refused by unseen_share.
CPU_CLOCK = time.thread_time
# More of an op's CPU time than this outside the calling thread and the op is not timed by CPU_CLOCK.
UNSEEN_LIMIT = 0.02


def cpu_usage() -> Tuple[float, float]:
    """(the calling thread's CPU seconds, the process's and its reaped children's)."""
    times = os.times()
    return time.thread_time(), time.process_time() + times.children_user + times.children_system


def unseen_between(before: Tuple[float, float], after: Tuple[float, float]) -> float:
    """The share of the CPU time spent between two ``cpu_usage()`` readings that the calling
    thread's clock does not see: work on other threads (or their spin-waits) and in child processes."""
    thread, total = after[0] - before[0], after[1] - before[1]
    return max(0.0, 1.0 - thread / total) if total > 0 else 0.0


def unseen_share(run: Callable[[], object], calls: int = 1) -> float:
    """unseen_between around ``calls`` calls of ``run``."""
    before = cpu_usage()
    for _ in range(calls):
        run()
    return unseen_between(before, cpu_usage())


def time_calls(run: Callable[[], object], num_iters: int, device, clock: Callable[[], float] = None) -> List[float]:
    """Seconds of each of ``num_iters`` calls of ``run`` by ``clock`` (default: the device's wall
    clock); the caller warms up first."""
    clock = clock or clock_for(device)
    times = []
    for _ in range(num_iters):
        start = clock()
        run()
        times.append(clock() - start)
    return times


def median_seconds(run: Callable[[], object], device, calls: int, clock: Callable[[], float] = None) -> float:
    return statistics.median(time_calls(run, calls, device, clock))


def synchronized(run: Callable[[], object], device) -> Callable[[], None]:
    """``run`` followed by waiting for ``device``'s queued work (``run`` itself on the CPU)."""
    if torch.device(device).type != "cuda":
        return run

    def run_synchronized():
        run()
        torch.cuda.synchronize(device)

    return run_synchronized


def benchmark_timer(run: Callable[[], object]) -> torch.utils.benchmark.Timer:
    """torch.utils.benchmark's Timer for ``run``, at the thread count the process uses
    (Timer's own default is one thread, which would time other work than the suite)."""
    import torch.utils.benchmark

    return torch.utils.benchmark.Timer(stmt="run()", globals={"run": run},
                                       num_threads=torch.get_num_threads())
