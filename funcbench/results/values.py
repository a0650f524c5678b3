"""Holding results: one measured parameter set, its raw values and what they are.

Like torch.utils.benchmark's ``Measurement``: the values and the identity of what was measured
travel together, and every producer (``funcbench run``, asv results, the audit) and every
consumer (the report table, the comparison, the gate) uses this one holder.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Optional, Sequence, Tuple

from funcbench.catalogue import metrics
from funcbench.catalogue.registry import Cell


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Per-call values of one cell at one preset and device.

    ``samples`` are the raw per-call values when kept (seconds, or instructions per call);
    ``mean`` and ``var`` summarise them (the original report's columns: mean and unbiased
    variance; 0 for a single value). A source that kept no samples (asv without
    --record-samples) gives mean and var only. ``stats`` is asv's own statistics of the
    result, for asv's significance test."""
    cell: Cell
    preset: str
    device: str
    metric: str
    mean: float
    var: float
    samples: Optional[Tuple[float, ...]] = None
    stats: Optional[dict] = None

    @classmethod
    def from_samples(cls, cell: Cell, preset: str, device: str, metric: str, samples: Sequence[float],
                     stats: Optional[dict] = None) -> "Measurement":
        values = tuple(float(s) for s in samples)
        if not values:
            raise ValueError(f"{cell}: no samples")
        var = statistics.variance(values) if len(values) > 1 else 0.0
        return cls(cell, preset, device, metric, statistics.fmean(values), var, values, stats)

    @property
    def unit(self) -> str:
        return metrics.METRICS[self.metric].unit

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else self.mean
