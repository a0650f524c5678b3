"""A parameter set: one asv benchmark at one set of params, asv's unit of work (a process per
round) and the unit of shard plans, manifests, merges and the cost table. Named as asv names it:
the benchmark and each param value's ``repr`` as asv writes them in results files, e.g.
``benchmarks.ppl_simple_reg.time_op('ppl_simple_reg', 'vjp', 'autograd', 'small', 'cpu')``.
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

COUNTED = "benchmarks.Instructions.track_instructions"  # the benchmark whose items are counted cells


@dataclasses.dataclass(frozen=True, order=True)
class ParamSet:
    benchmark: str
    params: Tuple[str, ...] = ()  # asv's repr of each param value, in the benchmark's param order

    @property
    def name(self) -> str:
        """asv's name of the parameter set, what ``--bench`` regexes are matched against."""
        return f"{self.benchmark}({', '.join(self.params)})" if self.params else self.benchmark

    def to_json(self) -> list:
        return [self.benchmark, list(self.params)]

    @classmethod
    def from_json(cls, data) -> "ParamSet":
        benchmark, params = data
        return cls(str(benchmark), tuple(str(p) for p in params))
