"""Cost ratio: an op's time over its model's no-grad forward time, measured in one process.

A ratio of two medians taken side by side in the same process is steadier than either time
across processes, and says how much a functional transform costs relative to the model itself.
"""
from __future__ import annotations

import torch

from funcbench.measurement import timing
from funcbench.measurement.prepared import Prepared

BUDGET_S = 0.3  # seconds of op calls per cost ratio (policy v3: 1 s; 98 s of a run at v6)


def cost_ratio(prepared: Prepared) -> float:
    """Op time / no-grad forward time, medians of a few calls each in this one process (about
    0.3 s of op calls, at most 21; a single call for ops over 0.3 s, already stable there)."""
    case = prepared.case
    calls = max(1, min(21, int(BUDGET_S / max(prepared.first_call_s, 1e-6))))

    def no_grad_forward():
        with torch.no_grad():
            case.forward(*case.params)

    forward = timing.synchronized(no_grad_forward, case.device)
    forward()  # warm-up of the no-grad path
    return timing.median_seconds(prepared.op, case.device, calls) / timing.median_seconds(forward, case.device, calls)
