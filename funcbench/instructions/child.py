"""The counting child, run under valgrind by funcbench.instructions.parent:

    valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no python -m funcbench.instructions.child FOLDER

reads FOLDER's CountRequest, counts, writes a CountResponse. Per cell: build, check, warm up
with instrumentation off (fast), then with instrumentation on: one uncounted call to settle the
heap after ``gc.collect()``, a no-op between the same collection toggles (the baseline,
subtracted), and the counted calls, each toggled on and off around exactly the op that
``time_op`` times, with garbage collection off as in asv's timeit.

Instrumentation is switched on from inside with callgrind's client request, compiled once by the
parent from the callgrind.h torch ships; without it the child runs instrumented from the start
(~40 s slower) and toggles collection through torch._C._valgrind_toggle.
"""
from __future__ import annotations

import ctypes
import gc
import os
import statistics
import sys
from pathlib import Path
from typing import Callable, List, Optional

from .. import injection, process, registry
from ..registry import Cell
from .protocol import CellDumps, CountRequest, CountResponse, dump_total

SPIN_CALIBRATION = 10_000  # spin() iterations counted to price one iteration (injected work)


class Controls:
    """callgrind's client requests: the compiled shim, or torch's bindings (collection only)."""

    def __init__(self, library: Optional[str]):
        self.dumps = 0
        if library:
            lib = ctypes.CDLL(library)
            self.start, self.stop = lib.funcbench_start_instrumentation, lib.funcbench_stop_instrumentation
            toggle, dump = lib.funcbench_toggle_collect, lib.funcbench_dump_stats

            def toggle_and_dump():
                toggle()
                dump()
        else:  # instrumented from the start (--instr-atstart=yes)
            import torch
            self.start = self.stop = lambda: None
            toggle, toggle_and_dump = torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats
        self.toggle, self.toggle_and_dump = toggle, toggle_and_dump

    def measure(self, run: Callable[[], object]) -> int:
        """Collect exactly ``run()``, then dump; returns the dump's number (callgrind counts from 1)."""
        self.toggle()
        run()
        self.toggle_and_dump()
        self.dumps += 1
        return self.dumps


def _noop() -> None:
    return None


def count_calls(controls: Controls, run: Callable[[], object], calls: int) -> CellDumps:
    """The baseline and ``calls`` counted calls of ``run`` (dump numbers), garbage collection off."""
    gc.collect()
    gc.disable()  # as asv's timeit: a collection inside a counted call would be noise
    try:
        run()  # instrumented but uncounted: the heap settles after the collection
        baseline = controls.measure(_noop)
        return CellDumps("", baseline, [controls.measure(run) for _ in range(calls)])
    finally:
        gc.enable()


class Child:
    def __init__(self, folder: Path, request: CountRequest):
        self.folder, self.request = folder, request
        self.controls = Controls(request.controls)
        self.pid = os.getpid()

    def total(self, dump: int) -> int:
        return dump_total(self.folder / f"callgrind.out.{self.pid}.{dump}")

    def price_of_spin(self) -> float:
        """Instructions per spin() iteration: two sizes counted (after warming the loop up: the
        interpreter specialises it after a few runs); the call's own cost cancels."""
        for _ in range(10):
            injection.spin(SPIN_CALIBRATION)
        single, double = (self.total(self.controls.measure(lambda n=n: injection.spin(n)))
                          for n in (SPIN_CALIBRATION, 2 * SPIN_CALIBRATION))
        return (double - single) / SPIN_CALIBRATION

    def count(self, cell: Cell, run: Callable[[], object], calls: int) -> CellDumps:
        counted = count_calls(self.controls, run, calls)
        factor = injection.injected_factor(cell, self.request.injection)
        if factor != 1.0:  # TEST-ONLY: the op followed by spin() worth (factor - 1) of its instructions
            baseline = self.total(counted.baseline)
            op = statistics.median(self.total(n) - baseline for n in counted.dumps)
            iterations = injection.spin_iterations(factor, op, self.price_of_spin())
            counted = count_calls(self.controls, injection.with_spin(run, iterations), calls)
            counted.injected_iterations = iterations
        counted.cell = str(cell)
        return counted

    def run(self) -> CountResponse:
        response = CountResponse(self.pid)
        requests = [(Cell.parse(c.cell), c) for c in self.request.cells]
        for model in dict.fromkeys(cell.model for cell, _ in requests):
            ready: List[tuple] = []
            for cell, wanted in ((c, r) for c, r in requests if c.model == model):
                try:
                    case = registry.prepare(*cell, device="cpu", preset=self.request.preset)
                    case.run_checked()
                    for _ in range(wanted.warmup):
                        case.run()
                    ready.append((cell, case, wanted.calls))
                except Exception as error:  # one broken cell never stops the others
                    response.cells.append(CellDumps(str(cell), error=f"{type(error).__name__}: {_first_line(error)}"))
            self.controls.start()
            for cell, case, calls in ready:
                response.cells.append(self.count(cell, case.run, calls))
            self.controls.stop()
            registry.forget_builds()  # one model in memory at a time
        return response


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def main(folder: Path) -> int:
    import torch

    request = CountRequest.read(folder)
    process.steady_allocator()
    torch.set_num_threads(process.THREADS)
    Child(folder, request).run().write(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
