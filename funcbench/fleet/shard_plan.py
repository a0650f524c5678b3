"""Which parameter sets an asv run measures, and their plan over N shards (``funcbench shard``,
funcbench.fleet.shard_run runs one).

- The unit is one benchmark *parameter set* (``param_sets.ParamSet``): the suite's ~75 eager
  cells, its counted cells and every one-value class spread over the shards.
- The items are what asv would run (asv_runner's own discovery of the suite, the user's
  ``--bench`` matched as asv matches it, against ``name(params)``), less what the run's settings
  leave n/a (``registry.why_not(..., here=False)``: never what one machine lacks, so every
  runner makes the same plan).
- The plan is deterministic and balanced by cost: the committed cost table (funcbench.catalogue.cost_table,
  seconds per parameter set from a reference run, ``funcbench shard-costs`` regenerates it), greedy
  longest-first onto the least loaded shard, ties broken by name; an item the table does not
  know costs the median of those it does. Never Python's ``hash()``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from funcbench.catalogue import config, cost_table, metrics, registry
from funcbench.results import result_rows
from funcbench.util.packing import longest_first
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.param_sets import ParamSet


def discover(benchmark_dir: Path = config.ROOT / "benchmarks") -> List[Tuple[str, List[str], List[List[str]]]]:
    """(name, param names, params as asv writes them) of every benchmark, by asv_runner's own discovery."""
    from asv_runner.discovery import disc_benchmarks

    parent = str(Path(benchmark_dir).resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return [(b.name, list(b.param_names), [list(values) for values in b.params])  # asv_runner writes each as its repr
            for b in disc_benchmarks(str(benchmark_dir))]


def _measured(name: str, names: Sequence[str], params: Sequence[str], run: config.RunSettings) -> bool:
    """Whether the run's settings measure this parameter set (the same answer on every machine)."""
    method = name.rsplit(".", 1)[-1]
    values = dict(zip(names, (result_rows.param_value(p) for p in params)))
    if method not in metrics.METHOD_METRICS:
        return True
    cell = Cell.parse(values["cell"]) if "cell" in values else Cell(values["model"], values["task"], values["api"])
    return registry.why_not(cell, values["preset"], values["device"], metrics.METHOD_METRICS[method], run,
                            here=False) is None


def items(run: config.RunSettings, bench: Sequence[str] = (), benchmarks=None) -> List[ParamSet]:
    """The parameter sets an asv run with ``--bench bench`` (every one without) measures, in name order."""
    found = []
    for name, names, params in (discover() if benchmarks is None else benchmarks):
        for combo in itertools.product(*params) if params else [()]:
            item = ParamSet(name, tuple(combo))
            if bench and not any(re.search(regex, item.name) for regex in bench):
                continue
            if _measured(name, names, combo, run):
                found.append(item)
    return sorted(found)


@dataclasses.dataclass
class Plan:
    shards: List[List[Tuple[ParamSet, float]]]  # per shard: its items and their estimated seconds
    unknown: int  # items the cost table does not know (costed at its median)

    @property
    def seconds(self) -> List[float]:
        return [sum(cost for _, cost in shard) for shard in self.shards]

    @property
    def digest(self) -> str:
        """The same for every shard of one plan: merge-results refuses shards of different plans."""
        text = json.dumps([[item.to_json() for item, _ in shard] for shard in self.shards])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        mean = sum(self.seconds) / len(self.shards)
        worst = max(self.seconds)
        lines = [f"plan {self.digest}: {sum(len(s) for s in self.shards)} parameter sets over {len(self.shards)} "
                 f"shards, estimated {sum(self.seconds):.0f} s in all; slowest shard {worst:.0f} s = "
                 f"{worst / mean if mean else 1:.2f}x the mean ({self.unknown} unknown to the cost table, at its median)"]
        for index, (shard, seconds) in enumerate(zip(self.shards, self.seconds), start=1):
            lines.append(f"shard {index}/{len(self.shards)}: {len(shard)} parameter sets, ~{seconds:.0f} s")
            lines += [f"  {cost:8.1f} s  {item.name}" for item, cost in sorted(shard, key=lambda p: (-p[1], p[0]))]
        return "\n".join(lines)


def plan(work: Sequence[ParamSet], count: int, costs: Dict[str, float]) -> Plan:
    """``work`` over ``count`` shards: longest first, each onto the least loaded shard (the lowest
    index among equals); equal costs in name order. Deterministic on every machine."""
    median = cost_table.median_seconds(costs, (item.name for item in work))
    priced = [(item, costs.get(item.name, median)) for item in work]
    shards = longest_first(priced, count, cost=lambda p: p[1], order=lambda p: p[0])
    return Plan([sorted(shard) for shard in shards], sum(item.name not in costs for item in work))
