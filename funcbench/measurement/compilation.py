"""Compile cost: the seconds torch.compile takes to make a cell's op, from an empty cache.

Inductor caches compiled graphs on disk (by default under /tmp/torchinductor_<user>), so how
long a compile takes depends on what ran before, on this machine or in the user's other
projects. The suite therefore gives each run a cache folder of its own (``use_run_cache``, in
the process asv forks every benchmark from), and ``compile_seconds`` measures each cell in an
empty folder inside it: the series is comparable from commit to commit. The other processes of
the run (time_op of compiled cells) share the run's folder, so only the first compile of a cell
in a run is cold.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from funcbench.measurement import cases, timing

CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")  # inductor's, and triton's on CUDA


def _point_caches_at(folder: Path) -> None:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")


def use_run_cache() -> Path:
    """Point inductor's and triton's caches at a new folder of this process (and every process
    forked from it); the folder is removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix="funcbench-compile-cache-"))
    _point_caches_at(folder)
    owner = os.getpid()

    def remove():  # only the process that made it: forked benchmark processes inherit the handler
        if os.getpid() == owner:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder


@contextlib.contextmanager
def empty_cache():
    """Inside the block, inductor and triton cache into a new empty folder (inside the run's
    folder when there is one); the previous folders afterwards."""
    previous = {name: os.environ.get(name) for name in CACHE_VARS}
    parent = previous["TORCHINDUCTOR_CACHE_DIR"]
    folder = Path(tempfile.mkdtemp(prefix="cold-", dir=parent if parent and os.path.isdir(parent) else None))
    _point_caches_at(folder)
    try:
        yield folder
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


def compile_seconds(case: cases.Case) -> float:
    """Wall seconds of a compiled cell's first call from an empty cache: tracing, inductor's
    code generation and C++/triton compilation, and one run of the op. ``case`` is a compiled
    cell not yet called (``cases.build_case(..., metric="compile_seconds")`` checks and binds
    it; the first call compiles). The result is checked (shape, finite, against eager
    torch.func) after the clock stops."""
    with empty_cache():
        clock = timing.clock_for(case.device)
        start = clock()
        case.call()
        seconds = clock() - start
        case.call_checked()  # the guard, once the clock has stopped
    return seconds
