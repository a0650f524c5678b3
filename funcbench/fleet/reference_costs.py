"""The cost table's seconds (funcbench.catalogue.cost_table) from a reference run's asv results files:
``funcbench shard-costs``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from funcbench.measurement import policy
from funcbench.catalogue import registry
from funcbench.results import result_files, result_rows
from funcbench.measurement.instructions import COUNTING
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.param_sets import ParamSet

FORK_S = 0.02  # what asv spends on a parameter set's process even when it is n/a (measured: ~19 ms)


def costs_from_results(paths: Sequence[Path], machine: Optional[str] = None) -> Dict[str, float]:
    """Seconds per parameter set from a reference run's results files (asv run --record-samples).

    asv records a duration per benchmark (all its parameter sets and rounds), and for counted
    cells the duration of setup_cache. Each is shared among the benchmark's measured parameter
    sets by what each cost inside it: per asv process (round) a fork, the checked first call
    and the warm-up, plus the samples themselves; a counted cell by its instructions times its
    calls. n/a parameter sets keep only their fork."""
    out: Dict[str, float] = {}
    for path in paths:
        path = Path(path)
        name = machine or path.parent.name
        results = result_files.load_results(str(path), name)
        rows = result_rows.rows_of(str(path.parent.parent), results)
        by_benchmark: Dict[str, List[result_rows.Row]] = {}
        op_seconds: Dict[Cell, float] = {}  # the cell's time per call, by either clock: a one-value class's weight
        for row in rows:
            by_benchmark.setdefault(row.benchmark, []).append(row)
            if row.method.startswith("time_") and row.measured and row.cell:
                op_seconds.setdefault(row.cell, row.value)
        setup_cache = sum(v for k, v in results.duration.items() if k.startswith("<setup_cache"))
        for benchmark, group in by_benchmark.items():
            total = results.duration.get(benchmark) or 0.0
            if benchmark.endswith(".track_instructions"):
                total += setup_cache
            ran = [r for r in group if r.value is not None and not math.isnan(r.value)]
            idle = len(group) - len(ran)
            weights = [_weight(benchmark, r, op_seconds) for r in ran]
            share = max(total - idle * FORK_S, 0.0)
            scale = share / sum(weights) if sum(weights) > 0 else 0.0
            for row, weight in zip(ran, weights):
                out[ParamSet(row.benchmark, tuple(raw for _, raw in row.params)).name] = round(weight * scale, 3)
    return out


def _weight(benchmark: str, row: result_rows.Row, op_seconds: Dict[Cell, float]) -> float:
    method = benchmark.rsplit(".", 1)[-1]
    if method.startswith("time_"):
        cell = row.cell
        tier = registry.model_spec(cell.model).tier if cell and cell.model in registry.MODELS else "light"
        attrs = policy.COMPILED_POLICY if "compiled" in method else policy.TIER_POLICIES[tier]
        sampled = sum(row.samples) if row.samples else row.value * (row.stats or {}).get("repeat", 10)
        per_round = FORK_S + attrs["warmup_time"] + 3 * row.value  # the checked call, the warm-up, setup's share
        return attrs["rounds"] * per_round + sampled
    if method == "track_instructions":  # what valgrind executes for the cell: every call (checked, uncounted,
        cell = row.cell                  # counted), plus the fork and build every counted cell pays
        tier = registry.model_spec(cell.model).tier if cell and cell.model in registry.MODELS else "light"
        return float(row.value) * (1 + sum(COUNTING[tier])) + 1e8
    if method == "track_compile_seconds":
        return FORK_S + float(row.value)
    # One process that builds the model and calls the op a few times (the checked call and one
    # more; the cost ratio about 0.3 s of calls more): the op's time says which cells are heavy.
    op = op_seconds.get(row.cell, 0.01)
    return FORK_S + 0.2 + 3 * op + (min(0.3, 21 * op) if method == "track_cost_ratio" else 0.0)

