"""TEST-ONLY injected work (FUNCBENCH_INJECT_SLOWDOWN="model:task:api:factor"): that one cell
does ``factor`` times its work per call, so the audit and the tests can check that a known
slowdown is seen. Never set for real results. FUNCBENCH_INJECT_OP="model:task:api:op" instead
adds one real ATen op (``OPS``) after that cell's op in its counted calls, so that the tests can
check that ``compare --explain`` names the op's kernel.

The extra work is an interpreter loop after the op: real instructions and real time (a sleep
would show in wall time only, never in instruction counts or CPU time). It is priced in the
unit of the metric that is to see it: seconds here (``iterations_for_seconds``), instructions
under callgrind (funcbench.measurement.instructions).
"""
from __future__ import annotations

import itertools
import math
import timeit
from typing import Callable, Optional

from funcbench.catalogue import config
from funcbench.catalogue.registry import Cell


def spin(iterations: int) -> None:
    """An interpreter loop over itertools.repeat, as timeit does: range() allocates an int per
    iteration above 256, so its cost per iteration would depend on the count."""
    for _ in itertools.repeat(None, iterations):
        pass


def injected_factor(cell: Cell, injection: Optional[str] = None) -> float:
    """The factor FUNCBENCH_INJECT_SLOWDOWN (or ``injection``, as the counting process gets it)
    sets for ``cell``: 1.0 for every other cell and when unset."""
    injection = config.get(config.INJECT_SLOWDOWN) if injection is None else injection
    if not injection:
        return 1.0
    *target, factor = injection.split(":")
    return float(factor) if tuple(target) == tuple(cell) else 1.0


# The ATen ops FUNCBENCH_INJECT_OP can add, each on a seeded 64 x 64 float tensor made once: what
# its kernel's symbol says (funcbench.results.explain names it), and its self instructions under
# callgrind with ATen's portable kernels (~54,000 for cumsum's inner loop: ~6 % of a light vjp cell).
OPS = {
    "cumsum": ("cumsum_cpu_kernel", lambda x: x.cumsum(0)),
    "sort": ("sort_kernel", lambda x: x.sort(1)),
}


def injected_op(cell: Cell, injection: Optional[str] = None) -> Optional[str]:
    """The op FUNCBENCH_INJECT_OP (or ``injection``) adds to ``cell``'s counted calls; None for
    every other cell and when unset."""
    injection = config.get(config.INJECT_OP) if injection is None else injection
    if not injection:
        return None
    *target, op = injection.split(":")
    return config.choose("injected op", op, tuple(OPS)) if tuple(target) == tuple(cell) else None


def with_op(call: Callable[[], object], op: str) -> Callable[[], None]:
    """``call`` followed by the ATen op ``op`` of OPS on its own seeded input."""
    import torch

    generator = torch.Generator().manual_seed(0)
    operand = torch.randn(64, 64, generator=generator)
    extra = OPS[op][1]

    def op_and_injected_op():
        call()
        extra(operand)

    return op_and_injected_op


def spin_iterations(factor: float, op_cost: float, iteration_cost: float) -> int:
    """Loop iterations that add at least (factor - 1) x op_cost, in whatever unit the costs
    share (seconds here, instructions under callgrind)."""
    return max(0, math.ceil((factor - 1.0) * op_cost / iteration_cost))


def seconds_per_spin_iteration(iterations: int = 100_000, clock: Callable[[], float] = timeit.default_timer) -> float:
    """One spin() iteration's seconds by ``clock`` (the metric's: wall, or CPU time)."""
    return min(timeit.Timer(lambda: spin(iterations), timer=clock).repeat(repeat=3, number=1)) / iterations


def with_spin(op: Callable[[], object], iterations: int) -> Callable[[], None]:
    """``op`` followed by ``spin(iterations)`` (``op`` itself for 0)."""
    if not iterations:
        return op

    def op_and_extra_work():
        op()
        spin(iterations)

    return op_and_extra_work
