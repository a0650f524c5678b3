"""The steps of a release history: for every cell, each release-to-release change of one metric
beyond that metric's noise, largest first (``funcbench releases steps``).

A step is between two releases that both measured the cell, next to each other on the axis
among those that did (a release where the cell is n/a is stepped over, and says so).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Sequence

from funcbench.catalogue import metrics, registry
from funcbench.catalogue.registry import Cell
from funcbench.results import result_rows

# Where a step starts, per metric: counts see 1 % (identical on every rerun, docs/instruction-counts.md);
# a time is read against the gate docs/cpu-time.md sets for two sides on an idle 2-core VM (1.15),
# and a history's releases are measured apart, not interleaved.
STEP_AT = {"instructions": 1.01, "cpu": 1.15, "time": 1.15, "compile_seconds": 1.15}


@dataclasses.dataclass(frozen=True)
class Step:
    cell: Cell
    before: str  # release
    after: str
    before_value: float
    after_value: float
    skipped: int  # releases between them where the cell was not measured

    @property
    def ratio(self) -> float:
        return self.after_value / self.before_value

    @property
    def size(self) -> float:
        return abs(math.log(self.ratio))


def series(rows_by_release: Dict[str, Sequence[result_rows.Row]], metric: str) -> Dict[Cell, Dict[str, float]]:
    """cell -> release -> value, for the rows of ``metric``'s methods that were measured."""
    methods = set(metrics.METRICS[metric].methods)
    out: Dict[Cell, Dict[str, float]] = {}
    for release, rows in rows_by_release.items():
        for row in rows:
            if row.method in methods and row.cell and row.measured:
                out.setdefault(row.cell, {})[release] = float(row.value)
    return out


def steps(values: Dict[Cell, Dict[str, float]], order: Sequence[str], at: float) -> List[Step]:
    """Every step of at least ``at`` (either way), largest first; ``order``: the releases on the axis."""
    found = []
    for cell, by_release in values.items():
        measured = [(index, name) for index, name in enumerate(order) if name in by_release]
        for (i, a), (j, b) in zip(measured, measured[1:]):
            step = Step(cell, a, b, by_release[a], by_release[b], j - i - 1)
            if step.before_value > 0 and max(step.ratio, 1 / step.ratio) >= at:
                found.append(step)
    return sorted(found, key=lambda s: (-s.size, registry.row_order(s.cell), s.before))


def _value(metric: str, value: float) -> str:
    unit = metrics.METRICS[metric].unit
    if unit == "instructions":
        return f"{value:,.0f}"
    if unit == "seconds":
        return f"{value * 1e3:.3f} ms" if value < 1 else f"{value:.3f} s"
    return f"{value:.4g}"


def table(found: Sequence[Step], metric: str, at: float) -> str:
    lines = ["| cell | from | to | before | after | after / before |", "|---|---|---|---:|---:|---:|"]
    for s in found:
        skipped = f" ({s.skipped} release(s) between without it)" if s.skipped else ""
        lines.append(f"| {s.cell} | {s.before} | {s.after}{skipped} | {_value(metric, s.before_value)} | "
                     f"{_value(metric, s.after_value)} | {s.ratio:.3f} |")
    if not found:
        lines.append(f"| (no step of {at}x or more) | | | | | |")
    return "\n".join(lines)


def largest_per_task_api(found: Sequence[Step]) -> Dict[tuple, Step]:
    """(task, api) -> its largest step (the history's summary)."""
    out: Dict[tuple, Step] = {}
    for s in found:
        key = (s.cell.task, s.cell.api)
        if key not in out or s.size > out[key].size:
            out[key] = s
    return out
