"""Measuring: per-call wall times that include the device's queued work.

CUDA runs asynchronously, so a timed call must wait for the device before the clock is
read. torch.utils.benchmark's ``timer`` does exactly that; on the CPU there is nothing to
wait for and the plain ``timeit`` clock is used, so CPU timings never touch CUDA.
"""
from __future__ import annotations

import contextlib
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


def benchmark_timer(run: Callable[[], object]) -> torch.utils.benchmark.Timer:
    """torch.utils.benchmark's Timer for ``run``, at the thread count the process uses
    (Timer's own default is one thread, which would time other work than the suite)."""
    import torch.utils.benchmark

    return torch.utils.benchmark.Timer(stmt="run()", globals={"run": run},
                                       num_threads=torch.get_num_threads())


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_TRIM_THRESHOLD = 2**31 - 1  # largest int mallopt takes: in practice never trim


_pinned = False  # whether steady_allocator() pinned this process (or the parent it was forked from)


def allocator_is_pinned() -> bool:
    return _pinned


def steady_allocator() -> bool:
    """Pin glibc malloc so every process times ops in the same allocator state.

    By default glibc serves blocks over a *dynamic* threshold (128 KiB at start, raised as
    blocks are freed) with a fresh mmap and unmaps them on free, and trims the heap top. A
    multi-MB activation then costs thousands of page faults on every call, and how many
    depends on the process's allocation history: resnet18 vjp (small preset) took 20-37 ms
    with 1-13,000 faults per call across fresh processes, 22.4 ms with none once pinned.
    Pinned, every block comes from the heap (no mmap at all: pinning the threshold alone
    is not enough, glibc caps it at 32 MiB and wav2letter's blocks are larger) and nothing
    is trimmed, so freed memory is reused as in a long-running training process. Affects
    this process and children forked after it; glibc offers no way back.
    Returns False (and changes nothing) where the C library is not glibc."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    no_mmap = mallopt(_M_MMAP_MAX, 0)  # no block is ever mmapped, whatever the threshold
    no_trim = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    global _pinned
    _pinned = bool(no_mmap and no_trim)
    return _pinned


@contextlib.contextmanager
def threads(count: int):
    """torch's intra-op thread count set to ``count`` inside the block, restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
