"""The state of a benchmark process: threads, allocator, imports, a run's own compile cache.

asv's forkserver imports the suite once and forks every benchmark process from it;
``set_up_parent_process`` (called by that import) puts the parent into the state every child
should start from, cheaply, and refuses a run that would measure nothing. The counting process
under valgrind and ``funcbench run`` use the same allocator and thread policy.
"""
from __future__ import annotations

import contextlib
import importlib

import torch

from funcbench.measurement import compilation
from funcbench.catalogue import config, registry, tools

# One intra-op thread, the default of torch.utils.benchmark.Timer and of PyTorch's
# operator_benchmark. At this VM's 2 threads, fresh processes ran multiheadattn vjp at either
# 0.67 or 0.84 ms and resnet18 vjp anywhere in 19-26 ms; at 1 thread 0.96-1.00 ms and 30-34 ms.
# Thread scaling is `funcbench run --num-threads N`'s job.
THREADS = 1

# Modules torch imports lazily on the first autograd / torch.func call (sympy via symbolic
# shapes, dynamo via the decomposition wrappers): 0.3-1.0 s per benchmark process otherwise.
LAZY_TORCH_MODULES = ("torch._dynamo", "torch._decomp.decompositions_for_jvp")


class RunEnvironmentError(RuntimeError):
    """The run cannot measure anything (a bad FUNCBENCH_* value, CUDA asked for where there is
    none): raised when the suite is imported, so asv's discovery stops with this one line."""


def check_run_environment() -> config.RunSettings:
    """The run's settings; RunEnvironmentError with one line if a setting is invalid or the
    run's CUDA device missing: a run that would record every cell n/a must fail, not look like
    success."""
    try:
        config.check_environment()
        run = config.RunSettings.from_environ()
    except config.SettingError as error:
        raise RunEnvironmentError(f"funcbench: {error}") from None
    if run.device_kind == "cuda":
        count = tools.cuda_device_count_in_child()
        index = int(run.device.partition(":")[2] or 0)
        if index >= count:
            found = "no CUDA device" if count == 0 else f"only {count} CUDA device(s)"
            raise RunEnvironmentError(f"funcbench: {config.DEVICE.name}={run.device} asked for, but this machine has {found}")
    return run


def set_up_parent_process() -> config.RunSettings:
    """Process-wide policy, applied once where the suite is imported. Imports only (no tensor
    work, no CUDA): neither a used OpenMP pool nor CUDA survives fork."""
    run = check_run_environment()
    steady_allocator()  # page faults of glibc's dynamic mmap threshold: see its docstring
    compilation.use_run_cache()  # compiled cells: a cache folder of the run's own
    for module in LAZY_TORCH_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # another torch version: its first call imports what it needs
            pass
    registry.import_getters()
    return run


def use_suite_threads() -> None:
    """The benchmark process's thread count: set in the child (never in the forkserver parent,
    whose OpenMP pool must stay unused)."""
    torch.set_num_threads(THREADS)


@contextlib.contextmanager
def threads(count: int):
    """torch's intra-op thread count set to ``count`` inside the block, restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


