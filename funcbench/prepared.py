"""The prepared op of a benchmark process: built, checked and warmed up once, then what every
timed sample runs.

asv calls a benchmark's setup before every timed call; the first call of a parameter set in a
process builds the model, runs the op once and checks its result (a wrong result is never
timed), later ones are a dict look-up. A parameter set this run does not measure raises
registry.Unsupported (a NotImplementedError: asv shows n/a) with registry.why_not's reason.

Words: the *op* is one call of the cell's functional op that waits for the device's queued
work; a *sample* runs the op, plus the injected work of a test (funcbench.injection), if any.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

from . import config, injection, process, registry, timing
from .registry import Cell


@dataclasses.dataclass
class Prepared:
    """One cell ready to time in this process."""
    case: registry.Case
    op: Callable[[], None]  # one call, waiting for the device's queued work
    first_call_s: float  # the checked first call, warm-up included: an upper bound of the op's cost
    extra_iterations: int = 0  # TEST-ONLY injected work per sample (FUNCBENCH_INJECT_SLOWDOWN)
    sample: Callable[[], None] = dataclasses.field(init=False)  # what one timed sample runs

    def __post_init__(self):
        self.sample = injection.with_spin(self.op, self.extra_iterations)


def _prepare(cell: Cell, preset: str, device: str, run: config.RunSettings) -> Prepared:
    process.use_suite_threads()
    case = registry.prepare(*cell, device=device, preset=preset, run=run)  # Unsupported: n/a
    op = timing.synchronized(case.run, case.device)
    clock = timing.clock_for(case.device)
    start = clock()
    case.run_checked()  # warm-up and guard: a wrong result is never timed
    first_call_s = clock() - start
    factor = injection.injected_factor(cell)
    extra = 0
    if factor != 1.0:
        extra = injection.spin_iterations(factor, timing.median_seconds(op, case.device, 5),
                                          injection.seconds_per_spin_iteration())
    return Prepared(case, op, first_call_s, extra)


_PREPARED: Dict[Tuple[Cell, str, str], Prepared] = {}  # one per process: asv runs setup before every timed call


def prepared(cell: Cell, preset: str, device: str, run: Optional[config.RunSettings] = None) -> Prepared:
    """The prepared op of a parameter set (built and checked on the first call in this process);
    registry.Unsupported (asv: n/a) saying why if ``run`` (default: this process's FUNCBENCH_*
    settings) does not measure it."""
    key = (cell, preset, device)
    if key not in _PREPARED:
        _PREPARED[key] = _prepare(cell, preset, device, run or config.RunSettings.from_environ())
    return _PREPARED[key]


def forget() -> None:
    _PREPARED.clear()
