"""The audit's experiments that drive asv (through funcbench.asv_driver)."""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from .. import config
from ..asv_driver import Workspace, bench_regex, load_avg, measured, split_name
from ..registry import Cell


def sensitivity(ws: Workspace, cells: Sequence[Cell], factors: Sequence[float], reps: int, base: str, head: str,
                method: str = "time_op", compare_factor: float = 1.1, env: Optional[Dict[str, str]] = None,
                log=print) -> List[dict]:
    """Per cell and repetition: a base run, then one injected run per factor right after it,
    each compared with the base by ``asv compare --factor compare_factor``; flagged = asv marks
    it '+'. A fresh base per repetition keeps base and injected runs side by side in time (the
    machine's load drifts over minutes); factor 1.0 is the control (nothing injected)."""
    found: Dict[Tuple[str, float], dict] = {}
    for cell in cells:
        regex = bench_regex(cell, method)
        for rep in range(reps):
            ws.forget(base)
            ws.run(base, [regex], env=env)
            base_values = measured(ws.values(base), method)
            base_value = base_values[cell]["value"] if cell in base_values else math.nan
            for factor in factors:
                ws.forget(head)
                injected = dict(env or {})
                if factor != 1.0:
                    injected[config.INJECT_SLOWDOWN.name] = f"{cell}:{factor}"
                ws.run(head, [regex], env=injected)
                row = [r for r in ws.compare(base, head, compare_factor)
                       if split_name(r.name)[0].endswith(f".{method}") and split_name(r.name)[1] == cell
                       and r.before != "n/a"]  # the other presets/devices of the cell are n/a
                entry = found.setdefault((str(cell), factor), dict(cell=str(cell), factor=factor, flagged=0, reps=0,
                                                                   ratios=[], base=[], loads=[]))
                entry["reps"] += 1
                entry["base"].append(base_value)
                entry["loads"].append(round(os.getloadavg()[0], 2))
                if row:
                    entry["flagged"] += row[0].mark == "+"
                    entry["ratios"].append(row[0].ratio)
                log(f"  sensitivity {cell} x{factor} rep {rep + 1}: {row[0].mark if row else '?'} "
                    f"{row[0].ratio if row else ''}, load {load_avg()}")
        ws.forget(head)
    return list(found.values())
