"""The prepared op of a benchmark process: built, checked and warmed up once, then what every
timed sample runs.

asv calls a benchmark's setup before every timed call; the first call of a parameter set in a
process builds the model, runs the op once and checks its result (a wrong result is never
timed), later ones are a dict look-up. A parameter set this run does not measure raises
registry.Unsupported (a NotImplementedError: asv shows n/a) with registry.why_not's reason.

Words: the *op* is one call of the cell's functional op that waits for the device's queued
work; a *sample* runs the op, plus the injected work of a test (funcbench.measurement.injection), if any.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

from funcbench.measurement import cases, injection, process, timing
from funcbench.catalogue import config, registry
from funcbench.catalogue.registry import Cell


@dataclasses.dataclass
class Prepared:
    """One cell ready to time in this process."""
    case: cases.Case
    op: Callable[[], None]  # one call, waiting for the device's queued work
    first_call_s: float  # the checked first call, warm-up included: an upper bound of the op's cost
    extra_iterations: int = 0  # TEST-ONLY injected work per sample (FUNCBENCH_INJECT_SLOWDOWN)
    sample: Callable[[], None] = dataclasses.field(init=False)  # what one timed sample runs

    def __post_init__(self):
        self.sample = injection.with_spin(self.op, self.extra_iterations)


def _make(cell: Cell, preset: str, device: str, run: config.RunSettings, metric: str) -> Prepared:
    process.use_suite_threads()
    case = cases.build_case(cell, device=device, preset=preset, run=run, metric=metric)  # Unsupported: n/a
    op = timing.synchronized(case.call, case.device)
    clock = timing.clock_for(case.device)
    usage, start = timing.cpu_usage(), clock()
    case.call_checked()  # warm-up and guard: a wrong result is never timed
    first_call_s = clock() - start
    if metric == "cpu":
        # Who did the checked call's work, at no extra call; a compiled cell's first call compiles
        # (with threads and processes of its own), so one more call tells for it.
        unseen = timing.unseen_share(op) if cell.api == "compile" else timing.unseen_between(usage, timing.cpu_usage())
        if unseen > timing.UNSEEN_LIMIT:
            raise registry.Unsupported(f"{unseen:.0%} of the op's CPU time is spent outside the calling thread "
                                       f"(other threads or processes), which the CPU clock does not see: time it "
                                       f"with the wall clock (time_op)")
    factor = injection.injected_factor(cell)
    extra = 0
    if factor != 1.0:  # priced by the metric's own clock: under load a wall second is not a CPU second
        clock = timing.CPU_CLOCK if metric == "cpu" else clock
        seconds = timing.median_seconds(op, case.device, 5, clock)
        extra = injection.spin_iterations(factor, seconds, injection.seconds_per_spin_iteration(clock=clock))
    return Prepared(case, op, first_call_s, extra)


# One per process and metric: asv runs setup before every timed call, in a process of one parameter set.
_PREPARED: Dict[Tuple[Cell, str, str, str], Prepared] = {}


def prepared(cell: Cell, preset: str, device: str, run: Optional[config.RunSettings] = None,
             metric: str = "time") -> Prepared:
    """The prepared op of a parameter set for ``metric`` (built and checked on the first call in
    this process); registry.Unsupported (asv: n/a) saying why if ``run`` (default: this process's
    FUNCBENCH_* settings) does not measure it, or (metric "cpu") if the CPU clock cannot see its work."""
    key = (cell, preset, device, metric)
    if key not in _PREPARED:
        _PREPARED[key] = _make(cell, preset, device, run or config.RunSettings.from_environ(), metric)
    return _PREPARED[key]


def forget() -> None:
    _PREPARED.clear()
