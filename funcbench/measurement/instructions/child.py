"""The counting process, run under valgrind by funcbench.measurement.instructions.parent:

    cd FOLDER && valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no python -m funcbench.measurement.instructions.child

Each valgrind process (a *worker*) imports torch and funcbench and warms up once, the same way
whatever it is asked to count, then forks one child per cell, one after the other: every cell
starts from that same state, so its count is the same counted alone, within its tier, or in any
shard. (Counted in one process, cells shaped each other's heap: ppl_simple_reg vjp counted +4.8 %
within the light tier against alone.) The worker reads nothing of the request but how many cells
it holds, so that what it allocates is the same for every request; the child reads its own cell.

Per cell, in its child: build, check, and the warm-up calls, the last of them after
``gc.collect()`` to settle the heap, all with instrumentation off (cheaper: light cells counted
18 % sooner than with an instrumented settling call); then with instrumentation on: a no-op
between the collection toggles (the baseline, subtracted), and the counted calls, each toggled
on and off around exactly the op that ``time_op`` times, with garbage collection off as in asv's
timeit. The child writes its
CellDumps into the folder and exits; its dumps are ``callgrind.out.<child pid>.<n>``.

Instrumentation is switched on from inside with callgrind's client request, compiled once by the
parent from the callgrind.h torch ships; without it the worker runs instrumented from the start
and toggles collection through torch._C._valgrind_toggle.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Callable, Optional

from funcbench.measurement import cases, injection, process
from funcbench.catalogue import registry
from funcbench.catalogue.registry import Cell
from funcbench.util.text import first_line
from funcbench.measurement.instructions.protocol import CellDumps, CountRequest, CountResponse, dump_total

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


def count_calls(controls: Controls, run: Callable[[], object], calls: int, settle: bool = True) -> CellDumps:
    """The baseline and ``calls`` counted calls of ``run`` (dump numbers), garbage collection off;
    ``settle``: one uncounted call first, after the collection."""
    gc.collect()
    gc.disable()  # as asv's timeit: a collection inside a counted call would be noise
    try:
        if settle:
            run()  # uncounted and uninstrumented: the heap settles after the collection
        controls.start()  # instrumented from here on (a no-op when it already is)
        baseline = controls.measure(_noop)
        return CellDumps("", baseline, [controls.measure(run) for _ in range(calls)])
    finally:
        gc.enable()


class Child:
    """One cell, counted in a process forked from the worker."""

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

    def count(self) -> CellDumps:
        (wanted,) = self.request.cells
        cell = Cell.parse(wanted.cell)
        case = cases.build_case(cell, device="cpu", preset=self.request.preset)
        case.call_checked()
        for _ in range(wanted.warmup - 1):
            case.call()
        call = case.call
        op = injection.injected_op(cell, self.request.injected_op)
        if op:  # TEST-ONLY: one real ATen op after the cell's, warmed up with it
            call = injection.with_op(case.call, op)
            for _ in range(max(1, wanted.warmup)):
                call()
        counted = count_calls(self.controls, call, wanted.calls, settle=wanted.warmup > 0)
        factor = injection.injected_factor(cell, self.request.injection)
        if factor != 1.0:  # TEST-ONLY: the op followed by spin() worth (factor - 1) of its instructions
            baseline = self.total(counted.baseline)
            op = statistics.median(self.total(n) - baseline for n in counted.dumps)
            iterations = injection.spin_iterations(factor, op, self.price_of_spin())
            counted = count_calls(self.controls, injection.with_spin(call, iterations), wanted.calls)
            counted.injected_iterations = iterations
        self.controls.stop()
        return dataclasses.replace(counted, cell=wanted.cell, pid=self.pid)


def _in_child(folder: Path, index: int) -> None:
    """The forked child: count cell ``index`` of the request, write its CellDumps, exit."""
    result_path = folder / f"cell-{index:04d}.json"
    try:
        request = CountRequest.read_cell(folder, index)
        try:
            result = Child(folder, request).count()
        except Exception as error:  # one broken cell never stops the others
            result = CellDumps(request.cells[0].cell, error=f"{type(error).__name__}: {first_line(error)}",
                               pid=os.getpid())
        result_path.write_text(json.dumps(dataclasses.asdict(result)))
    finally:
        os._exit(0)  # no atexit handlers, no flush of the worker's state: only the cell's own work


def warm_up() -> None:
    """What every cell needs and the worker does once, whatever the request: the same imports,
    the allocator and thread policy, the model getters' modules."""
    import torch

    process.steady_allocator()
    torch.set_num_threads(process.THREADS)
    for module in process.LAZY_TORCH_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    registry.import_getters()
    gc.collect()


def _fork_and_wait(index: int) -> None:
    pid = os.fork()
    if pid == 0:
        if index < 0:
            os._exit(0)
        _in_child(folder=_FOLDER[0], index=index)
    os.waitpid(pid, 0)


_FOLDER = []  # the worker's folder, set once before the forks (a global: the loop allocates nothing per cell)


def flush_translations() -> None:
    """Switch instrumentation on and off once in the worker: callgrind then drops the code it
    translated for the imports, so that a child's own switch-on (which drops everything
    translated so far) has only the child's code to drop: measured 2.2-3.5 s per cell before."""
    shim = Path(CONTROLS)
    if shim.is_file():
        lib = ctypes.CDLL(f"./{shim.name}")
        lib.funcbench_start_instrumentation()
        lib.funcbench_stop_instrumentation()


CONTROLS = "libfuncbench_callgrind.so"  # the shim, beside every worker (parent.count puts it there)


def main(folder: Path) -> int:
    warm_up()
    flush_translations()
    size = CountRequest.size(folder)  # how many cells, and nothing else of the request, in the worker
    _FOLDER.append(folder)
    # Two forks that count nothing first: the first fork and wait leave objects in the interpreter's
    # free lists that every later one finds, so that every counted cell forks from the same state.
    # A range, not a list: a list's size would depend on the request, and so would the heap.
    for index in range(-2, size):
        _fork_and_wait(index)
    cells = []
    for index in range(size):  # after every fork: reading the results shapes no child's heap
        path = folder / f"cell-{index:04d}.json"
        if path.is_file():
            cells.append(CellDumps(**json.loads(path.read_text())))
        else:
            cells.append(CellDumps(CountRequest.read_cell(folder, index).cells[0].cell,
                                   error="its counting process died before it wrote a result"))
    CountResponse(os.getpid(), cells).write(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(".")))  # the worker's folder, named only relatively (parent.child_environment)
