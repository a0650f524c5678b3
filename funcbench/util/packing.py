"""Longest-first packing: the one greedy that balances shards and valgrind workers (here, at the
lowest floor, so that the counting parent need not import the shard plan)."""
from __future__ import annotations

from typing import Callable, List, Sequence, TypeVar

T = TypeVar("T")


def longest_first(things: Sequence[T], bins: int, cost: Callable[[T], float], order: Callable) -> List[List[T]]:
    """``things`` over ``bins`` lists: longest first (equal costs by ``order``), each onto the
    least loaded list (the lowest index among equals). Deterministic on every machine."""
    parts: List[List[T]] = [[] for _ in range(bins)]
    loads = [0.0] * bins
    for thing in sorted(things, key=lambda t: (-cost(t), order(t))):
        target = min(range(bins), key=lambda index: (loads[index], index))
        parts[target].append(thing)
        loads[target] += cost(thing)
    return parts
