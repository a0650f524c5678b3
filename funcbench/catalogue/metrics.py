"""The metric vocabulary: every quantity the suite records, once. Each metric says its unit, the
asv benchmark methods that record it, the clock that times it (time metrics), the device kinds
it is measured on and what it needs beyond the cell running at all. Everyone who names a metric
(why_not, the asv glue, shard plans, the main job, the results reader, the CLI) reads it here.

A new metric is one entry here, a measuring module and a one-line benchmark method.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # of one value
    methods: Tuple[str, ...]  # the asv benchmark methods that record it
    what: str  # a few words, for help texts and tables
    clock: Optional[str] = None  # "wall" or "cpu" for seconds per call; None for the rest
    devices: Tuple[str, ...] = ("cpu", "cuda")  # device kinds it is measured on
    reported: bool = False  # `funcbench report / compare --metric` read it as a table of cells


VOCABULARY: Tuple[Metric, ...] = (
    Metric("time", "seconds", ("time_op", "time_compiled_op"), "seconds per call by the wall clock", clock="wall",
           reported=True),
    Metric("cpu", "seconds", ("time_cpu_op", "time_cpu_compiled_op"),
           "seconds per call by the calling thread's CPU clock", clock="cpu", devices=("cpu",), reported=True),
    Metric("instructions", "instructions", ("track_instructions",), "instructions per call under callgrind",
           devices=("cpu",), reported=True),
    Metric("compile_seconds", "seconds", ("track_compile_seconds",),
           "seconds of a compiled cell's first call from an empty inductor cache", reported=True),
    Metric("memory", "bytes", ("peakmem_op",), "host max RSS after one call"),
    Metric("cost_ratio", "ratio", ("track_cost_ratio",), "op time / no-grad forward time"),
    Metric("cuda_memory", "bytes", ("track_cuda_peak_memory",), "torch.cuda.max_memory_allocated over one call",
           devices=("cuda",)),
)
METRICS: Dict[str, Metric] = {m.name: m for m in VOCABULARY}
REPORTED = tuple(m.name for m in VOCABULARY if m.reported)  # report / compare's --metric choices
TIME_METRICS = tuple(m.name for m in VOCABULARY if m.clock)  # per-call seconds, with asv's samples and statistics
METHOD_METRICS: Dict[str, str] = {method: m.name for m in VOCABULARY for method in m.methods}
CLOCK_WORDS = {"wall": "the wall clock", "cpu": "the calling thread's CPU clock"}


def of_method(method: str) -> Optional[Metric]:
    """The metric an asv benchmark method records (None: no method of this suite)."""
    name = METHOD_METRICS.get(method)
    return METRICS[name] if name else None


def clock_words(metric: str) -> str:
    """'the wall clock' / "the calling thread's CPU clock" for a time metric."""
    return CLOCK_WORDS[METRICS[metric].clock]
