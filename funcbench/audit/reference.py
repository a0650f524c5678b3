"""The audit's reference: the suite's ops timed with torch.utils.benchmark in this process."""
from __future__ import annotations

import importlib.util
import statistics
import time
import timeit
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.measurement import cases, process, timing
from funcbench.util import text
from funcbench.catalogue import registry
from funcbench.fleet.asv_driver import load_avg
from funcbench.catalogue.config import ROOT
from funcbench.catalogue.registry import Cell
from funcbench.results.result_rows import Row
from funcbench.audit.stats import fidelity_row


def torch_medians(cell: Cell, device: str, preset: str, min_run_time: float = 0.5) -> Tuple[float, float]:
    """The op timed by torch.utils.benchmark, warmed up first: (blocked_autorange median,
    median of single-call ``Timer.timeit(1)`` measurements). blocked_autorange's median is a
    median of block means, so every preemption inside a block counts; the single-call median,
    like asv's median of single-call samples (number = 1), drops the preempted calls. On a
    quiet machine both agree; their gap is a measure of the load while auditing."""
    with process.threads(process.THREADS):  # fidelity compares harnesses, not thread counts
        case = cases.build_case(cell, device=device, preset=preset)
        case.call_checked()
        timer = timing.benchmark_timer(case.call)
        blocked = timer.blocked_autorange(min_run_time=min_run_time).median
        calls = max(5, min(200, int(min_run_time / max(blocked, 1e-6))))
        single = statistics.median(timer.timeit(1).median for _ in range(calls))
    return blocked, single


def fidelity_rows(asv_times: Dict[Cell, Row], device: str, preset: str) -> List[dict]:
    """One row per cell: asv's time_op median against the reference timed now."""
    rows = []
    for cell, entry in asv_times.items():
        blocked, single = torch_medians(cell, device, preset)
        rows.append(fidelity_row(cell, entry, blocked, single, load_avg()))
    return rows


def clock_rows(cells: Sequence[Cell], device: str, preset: str, min_run_time: float = 0.5) -> List[dict]:
    """Per cell: the wall clock and the calling thread's CPU clock read around the same calls
    (about ``min_run_time`` of them, 5 to 200), the medians and the median per-call ratio. On a
    quiet machine the two should agree: what the CPU clock drops is waiting, which a
    single-threaded CPU op does not do. Also the CPU share outside the calling thread."""
    if device.startswith("cuda"):
        return []  # GPU work is not CPU time
    rows = []
    with process.threads(process.THREADS):
        for cell in cells:
            try:
                case = cases.build_case(cell, device=device, preset=preset)
                case.call_checked()
            except registry.Unsupported:
                continue
            unseen = timing.unseen_share(case.call)
            first = time.perf_counter()
            case.call()
            calls = max(5, min(200, int(min_run_time / max(time.perf_counter() - first, 1e-6))))
            walls, cpus = [], []
            for _ in range(calls):
                w0, c0 = time.perf_counter(), timing.CPU_CLOCK()
                case.call()
                c1, w1 = timing.CPU_CLOCK(), time.perf_counter()
                walls.append(w1 - w0)
                cpus.append(c1 - c0)
            rows.append(dict(cell=str(cell), tier=registry.model_spec(cell.model).tier, calls=calls,
                             wall_s=statistics.median(walls), cpu_s=statistics.median(cpus),
                             ratio=statistics.median(c / w for c, w in zip(cpus, walls)), unseen=unseen,
                             load=load_avg()))
            cases.forget_builds()
    return rows


def load_benchmarks_module():
    """The asv suite module, loaded from its file (no sys.path change). Importing it applies
    the suite's process policy (steady allocator, pre-imports) to this process, as the audit's
    reference timing wants anyway."""
    spec = importlib.util.spec_from_file_location("funcbench_asv_benchmarks", ROOT / "benchmarks" / "benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def harness_overhead_us(calls: int = 20000) -> dict:
    """What the suite adds to one timed sample, with a no-op op: the generated ``time_op``
    called the way asv_runner calls it (``timeit`` with number = 1 per sample), minus the bare
    no-op. Setup (the cached look-up) runs outside the timed sample, so it is not part of it."""
    benchmarks = load_benchmarks_module()

    def noop():
        return None

    bench = getattr(benchmarks, next(iter(registry.MODELS)))()
    benchmarks._sample = noop  # what a time method's setup sets: the prepared op's sample
    params = (next(iter(registry.MODELS)), "vjp", "autograd", "small", "cpu")

    def per_call(stmt) -> float:
        timer = timeit.Timer(stmt)
        return min(timer.timeit(1) for _ in range(calls))  # number = 1, as in the suite

    harness, bare = per_call(lambda: bench.time_op(*params)), per_call(noop)
    return dict(time_op_noop_us=harness * 1e6, bare_noop_us=bare * 1e6, overhead_us=(harness - bare) * 1e6)


def cuda_events_vs_wall(case: cases.Case, iters: int = 20) -> Optional[dict]:
    """Median op time by CUDA events and by synchronised wall time; None without CUDA."""
    import torch

    if not torch.cuda.is_available() or torch.device(case.device).type != "cuda":
        return None
    case.call_checked()
    torch.cuda.synchronize(case.device)
    events, walls = [], []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(case.device)
        t0 = time.perf_counter()
        start.record()
        case.call()
        end.record()
        torch.cuda.synchronize(case.device)
        walls.append(time.perf_counter() - t0)
        events.append(start.elapsed_time(end) / 1e3)
    event_s, wall_s = statistics.median(events), statistics.median(walls)
    return dict(cell=str(case.cell), events_s=event_s, wall_s=wall_s, wall_over_events=wall_s / event_s)


def gpu_rows(device: str, preset: str, cells: Sequence[Cell]) -> Optional[List[dict]]:
    """CUDA events vs wall time for every cell that runs on CUDA; None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    dev = device if device.startswith("cuda") else "cuda"
    rows = []
    with process.threads(process.THREADS):
        for cell in cells:
            try:
                case = cases.build_case(cell, device=dev, preset=preset)
                rows.append(cuda_events_vs_wall(case))
            except registry.Unsupported:
                continue
            except Exception as error:  # one cell's failure is a row of the table, not the end of the part
                rows.append(dict(cell=str(cell), error=text.first_line(error)))
    return rows
