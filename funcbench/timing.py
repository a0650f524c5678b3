"""Measuring time: per-call wall times that include the device's queued work.

CUDA runs asynchronously, so a timed call must wait for the device before the clock is
read. torch.utils.benchmark's ``timer`` does exactly that; on the CPU there is nothing to
wait for and the plain ``timeit`` clock is used, so CPU timings never touch CUDA.
"""
from __future__ import annotations

import statistics
import timeit
from typing import Callable, List

import torch


def clock_for(device) -> Callable[[], float]:
    """A clock that reads after all work queued on ``device`` has finished."""
    if torch.device(device).type == "cpu":
        return timeit.default_timer
    # Imported here: torch.utils.benchmark pulls in cpp_extension, slow and noisy at start-up.
    from torch.utils.benchmark.utils.timer import timer as synchronizing_timer
    return synchronizing_timer


def time_calls(run: Callable[[], object], num_iters: int, device) -> List[float]:
    """Seconds of each of ``num_iters`` calls of ``run`` (the caller warms up first)."""
    clock = clock_for(device)
    times = []
    for _ in range(num_iters):
        start = clock()
        run()
        times.append(clock() - start)
    return times


def median_seconds(run: Callable[[], object], device, calls: int) -> float:
    return statistics.median(time_calls(run, calls, device))


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
