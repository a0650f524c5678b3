"""The audit's figures, computed from asv's results and the reference timings (no I/O here)."""
from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional, Sequence

from funcbench.catalogue import registry
from funcbench.fleet.asv_driver import Run
from funcbench.results.asv_results import Marked
from funcbench.catalogue.registry import Cell
from funcbench.results.result_rows import Row

FIDELITY_BAND = (0.95, 1.05)  # the goal: asv within 5 % of the reference
SUB_MS = 1e-3  # below this, a ratio says little and the overhead in µs is reported instead


def fidelity_row(cell: Cell, entry: Row, blocked_s: float, single_s: float, load: str) -> dict:
    suite_s = entry.value
    return dict(cell=str(cell), tier=registry.model_spec(cell.model).tier, asv_s=suite_s,
                torch_s=blocked_s, ratio=suite_s / blocked_s, overhead_us=(suite_s - blocked_s) * 1e6,
                torch_single_s=single_s, ratio_single=suite_s / single_s,
                samples=len(entry.samples or ()), load=load)


def _median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def band_summary(ratios: Sequence[float], overheads_us: Sequence[float]) -> dict:
    """Cells >= 1 ms: how many ratios fall in FIDELITY_BAND, their median and range; sub-ms
    cells: the median overhead in µs."""
    low, high = FIDELITY_BAND
    return dict(cells_ge_1ms=len(ratios), in_goal_ge_1ms=sum(low <= r <= high for r in ratios),
                median_ratio_ge_1ms=_median(ratios), range_ge_1ms=(min(ratios), max(ratios)) if ratios else None,
                cells_sub_ms=len(overheads_us), median_overhead_us_sub_ms=_median(overheads_us))


def fidelity_summary(rows: List[dict]) -> dict:
    """The band summary against blocked_autorange, plus the same against single-call timeit."""
    big = [r for r in rows if r["torch_s"] >= SUB_MS]
    small = [r for r in rows if r["torch_s"] < SUB_MS]
    summary = band_summary([r["ratio"] for r in big], [r["overhead_us"] for r in small])
    single = band_summary([r["ratio_single"] for r in big],
                          [(r["asv_s"] - r["torch_single_s"]) * 1e6 for r in small])
    summary.update(cells=len(rows), in_goal_ge_1ms_single=single["in_goal_ge_1ms"],
                   median_ratio_single_ge_1ms=single["median_ratio_ge_1ms"],
                   median_overhead_us_sub_ms_single=single["median_overhead_us_sub_ms"])
    return summary


def bracket_fidelity(rows: List[dict], asv_times_after: Dict[Cell, Row]) -> dict:
    """Adds to each row the ratio of the geometric mean of the asv runs before and after the
    reference (torch is timed between them) to the reference: the VM's speed drifts by several
    per cent over minutes, and a reference timed only after one asv run reads that drift as
    harness error. Returns the band summary of the bracketed ratios."""
    for row in rows:
        after = asv_times_after.get(registry.Cell.parse(row["cell"]))
        if after is not None:
            row["asv_after_s"] = after.value
            row["ratio_bracketed"] = math.sqrt(row["asv_s"] * after.value) / row["torch_s"]
    bracketed = [r for r in rows if "ratio_bracketed" in r]
    return band_summary([r["ratio_bracketed"] for r in bracketed if r["torch_s"] >= SUB_MS],
                        [(math.sqrt(r["asv_s"] * r["asv_after_s"]) - r["torch_s"]) * 1e6
                         for r in bracketed if r["torch_s"] < SUB_MS])


def noise_summary(rows: List[Marked]) -> dict:
    """Per benchmark method: rows compared, false regressions and improvements, and rows beyond
    the factor that asv's test did not call significant."""
    by_method: Dict[str, dict] = {}
    for row in rows:
        counts = by_method.setdefault(row.method, dict(compared=0, false_regressions=0, false_improvements=0,
                                                       not_significant_beyond_factor=0, not_comparable=0,
                                                       beyond_1_03=0, beyond_1_05=0, worst=None))
        if row.mark == "x":  # benchmark versions differ: asv refuses to compare
            counts["not_comparable"] += 1
            continue
        if row.ratio is None or row.mark == "!":
            continue
        counts["compared"] += 1
        counts["false_regressions"] += row.mark == "+"
        counts["false_improvements"] += row.mark == "-"
        counts["not_significant_beyond_factor"] += row.beyond_factor
        spread = max(row.ratio, 1 / row.ratio) if row.ratio > 0 else math.inf  # either direction, by the ratio alone
        counts["beyond_1_03"] += spread > 1.03
        counts["beyond_1_05"] += spread > 1.05
        if counts["worst"] is None or spread > counts["worst"][1]:
            counts["worst"] = (row.name, spread, row.ratio)
    return by_method


def clock_summary(rows: List[dict]) -> dict:
    """The CPU clock against the wall clock per call on a quiet machine: cells of at least 1 ms
    within 0.99-1.01, and the range of the sub-ms ones."""
    big = [r for r in rows if r["wall_s"] >= SUB_MS]
    small = [r for r in rows if r["wall_s"] < SUB_MS]
    ratios = [r["ratio"] for r in big]
    return dict(cells_ge_1ms=len(big), within_1pc_ge_1ms=sum(0.99 <= x <= 1.01 for x in ratios),
                range_ge_1ms=(min(ratios), max(ratios)) if ratios else None, cells_sub_ms=len(small),
                range_sub_ms=(min(r["ratio"] for r in small), max(r["ratio"] for r in small)) if small else None,
                unseen_max=max((r["unseen"] for r in rows), default=None))


def count_agreement(first: Dict[Cell, Row], second: Dict[Cell, Row]) -> Optional[dict]:
    """Instruction counts of the same cells in two runs: the largest relative difference, and
    how many cells agree within 0.1 % and 0.2 %. None when neither run counted."""
    both = [c for c in first if c in second]
    if not both:
        return None
    diffs = {str(c): second[c].value / first[c].value - 1 for c in both}
    worst = max(diffs, key=lambda c: abs(diffs[c]))
    return dict(cells=len(both), within_0_1=sum(abs(d) <= 0.001 for d in diffs.values()),
                within_0_2=sum(abs(d) <= 0.002 for d in diffs.values()), worst_cell=worst, worst=diffs[worst])


def cost_summary(rows: Sequence[Row], durations: Dict[str, float], run: Run) -> dict:
    """Wall time of one run and how much of it the timed samples account for, per tier."""
    sampled = 0.0
    per_tier: Dict[str, dict] = {}
    for row in rows:
        if row.method != "time_op" or not row.samples:
            continue
        number = (row.stats or {}).get("number", 1) or 1
        seconds = sum(row.samples) * number
        sampled += seconds
        tier = registry.model_spec(row.cell.model).tier if row.cell and row.cell.model in registry.MODELS \
            else row.benchmark.split(".")[1]
        per_tier.setdefault(tier, dict(timed_s=0.0, asv_duration_s=0.0))["timed_s"] += seconds
    durations = {k: v for k, v in durations.items() if k.startswith("benchmarks.")}  # not '<build>'
    for key, seconds in durations.items():
        model = key.split(".")[1]
        tier = registry.model_spec(model).tier if model in registry.MODELS else model  # one-round classes by name
        per_tier.setdefault(tier, dict(timed_s=0.0, asv_duration_s=0.0))["asv_duration_s"] += seconds
    in_benchmarks = sum(durations.values())
    return dict(wall_s=run.wall_s, timed_samples_s=sampled, benchmark_durations_s=in_benchmarks,
                outside_samples_share=1 - sampled / run.wall_s if run.wall_s else None,
                outside_benchmarks_share=1 - in_benchmarks / run.wall_s if run.wall_s else None,
                per_tier=per_tier, load=f"{run.load_before} -> {run.load_after}")


def smallest_reliable(rows: List[dict]) -> Dict[str, Optional[float]]:
    """Per cell, the smallest factor from which on every larger factor was flagged in every
    repetition (the control, factor 1.0, never counts)."""
    out: Dict[str, Optional[float]] = {}
    for cell in dict.fromkeys(r["cell"] for r in rows):
        found = None
        for row in sorted((r for r in rows if r["cell"] == cell and r["factor"] > 1.0), key=lambda r: -r["factor"]):
            if row["flagged"] == row["reps"]:
                found = row["factor"]
            else:
                break
        out[cell] = found
    return out
