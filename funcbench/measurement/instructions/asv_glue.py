"""What the asv suite's ``benchmarks.Instructions`` calls: ``count_for_run`` in its setup_cache
(once per environment; the result is pickled to every benchmark process) and ``counted`` in its
setup (a look-up, n/a with registry.why_not's reason)."""
from __future__ import annotations

import time
from typing import Dict, Optional

from funcbench.catalogue import config, registry
from funcbench.catalogue.registry import Cell
from funcbench.measurement.instructions.parent import count


def count_for_run(run: Optional[config.RunSettings] = None) -> dict:
    """{"cells": {"model:task:api": per-call count or {"error": why}}, "seconds": the counting's
    wall time, "preset", "profiles": {"model:task:api": {Function: self instructions}}}: every
    cell the run's FUNCBENCH_INSTRUCTIONS picks that can be counted here. The suite keeps the
    profiles beside asv's results (funcbench.results.profiles) and pickles the rest."""
    run = run or config.RunSettings.from_environ()
    started = time.monotonic()
    cells = [c for c in registry.select(run.instructions, run.run_slow_tasks)
             if registry.why_not(c, run.preset, run.device, "instructions", run) is None]
    counts = count(cells, run.preset, injection=config.get(config.INJECT_SLOWDOWN), injected_op=config.get(config.INJECT_OP),
                   seconds=expected_seconds(cells, run.preset)) if cells else {}
    return dict(cells={str(c): ({"error": n.error} if n.error else n.per_call) for c, n in counts.items()},
                seconds=time.monotonic() - started, preset=run.preset,
                profiles={str(c): n.profile for c, n in counts.items() if not n.error})


def expected_seconds(cells, preset: str) -> Optional[Dict[Cell, float]]:
    """Each cell's counting seconds from the committed cost table (its median counted cell where
    the table does not know it), to split the cells over the valgrind processes; None without one."""
    from funcbench.catalogue import cost_table  # here: the valgrind worker never imports it
    from funcbench.catalogue.param_sets import COUNTED, ParamSet
    try:
        table, _ = cost_table.read()
    except cost_table.CostTableError:
        return None
    default = cost_table.median_seconds(table, [name for name in table if name.startswith(COUNTED + "(")])
    return {c: table.get(ParamSet(COUNTED, (repr(str(c)), repr(preset), repr("cpu"))).name, default) for c in cells}


def counted(counts: dict, cell: Cell, preset: str, device: str, run: Optional[config.RunSettings] = None) -> float:
    """The count of one parameter set from count_for_run's result; registry.Unsupported (asv:
    n/a) with the reason where there is none, RuntimeError where its counting failed."""
    reason = registry.why_not(cell, preset, device, "instructions", run or config.RunSettings.from_environ())
    if reason:
        raise registry.Unsupported(reason)
    value = counts["cells"][str(cell)]
    if isinstance(value, dict):
        raise RuntimeError(f"counting {cell.model} {cell.task} ({cell.api}) failed: {value['error']}")
    return value
