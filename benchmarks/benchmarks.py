"""asv benchmarks of funcbench, generated from funcbench.registry (no list of cells here).

Every benchmark class has params model x task x api x preset x device. The environment (asv.conf.json's
``env_nobuild`` matrix, or the shell for ``-E existing``) picks the rest of a result's identity:

- ``FUNCBENCH_DEVICE`` (default ``cpu``): ``cpu``, ``cuda`` or ``cuda:N``;
- ``FUNCBENCH_PRESET`` (default ``small``): the registry's size preset.

Importing this module does no torch work and never touches CUDA: asv imports it in the
forkserver parent, and CUDA (or a used OpenMP pool) does not survive ``fork``.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import statistics
import time
from typing import Callable, Dict, Tuple

import torch

from funcbench import registry
from funcbench.tasks import APIS, TASKS
from funcbench import timing  # module import: a bare `time_calls` here would be an asv benchmark
from funcbench.timing import clock_for

# Bump when the timing policy below changes: asv's own version hashes only this file's code
# of each benchmark, and the tier attributes are part of the version string too.
POLICY_VERSION = 5  # 4: preset and device params; 5: steady allocator, one thread, tier rounds

# Cost tier per model (small preset, 2-core CPU: fast <= 15 ms, medium <= 0.6 s per op).
# A model not listed here (a new registry entry) is timed as slow: safe, only fewer samples.
MODEL_TIERS = {
    "ppl_simple_reg": "fast", "ppl_robust_reg": "fast", "multiheadattn": "fast",
    "resnet18": "medium", "transformer": "medium", "wav2letter": "medium",
}

# One intra-op thread, the default of torch.utils.benchmark.Timer and of PyTorch's
# operator_benchmark. At this VM's 2 threads, fresh processes ran multiheadattn vjp at either
# 0.67 or 0.84 ms and resnet18 vjp anywhere in 19-26 ms; at 1 thread 0.96-1.00 ms and 30-34 ms.
# Thread scaling is `funcbench run --num-threads N`'s job.
THREADS = 1

INJECT_SLOWDOWN_VAR = "FUNCBENCH_INJECT_SLOWDOWN"

# Modules torch imports lazily on the first autograd / torch.func call (sympy via symbolic
# shapes, dynamo via the decomposition wrappers): 0.3-1.0 s per benchmark process otherwise.
LAZY_TORCH_MODULES = ("torch._dynamo", "torch._decomp.decompositions_for_jvp")


def _prepare_parent_process() -> None:
    """Process-wide policy, applied on import: asv's forkserver imports this module once and
    forks every benchmark process from it, so each one starts in the same state and cheaply.
    Imports only (no tensor work, no CUDA): neither a used OpenMP pool nor CUDA survives fork."""
    timing.steady_allocator()  # page faults of glibc's dynamic mmap threshold: see its docstring
    for module in LAZY_TORCH_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # another torch version: its first call imports what it needs
            pass
    registry.import_getters()


def device() -> str:
    return os.environ.get("FUNCBENCH_DEVICE", "cpu")


def preset() -> str:
    return os.environ.get("FUNCBENCH_PRESET", "small")


def injected_slowdown(model: str, task: str, api: str) -> float:
    """TEST-ONLY hook for the sensitivity test: FUNCBENCH_INJECT_SLOWDOWN="model:task:api:factor"
    makes that one cell's time_op take ``factor`` times its cost. Returns the factor (1.0 = off).
    Never set it for real results."""
    spec = os.environ.get(INJECT_SLOWDOWN_VAR, "")
    if not spec:
        return 1.0
    *cell, factor = spec.split(":")
    return float(factor) if tuple(cell) == (model, task, api) else 1.0


@dataclasses.dataclass
class Cell:
    case: registry.Case
    sync: Callable[[], None]
    clock: Callable[[], float]
    first_call_s: float  # the checked first call: warm-up included, an upper bound of the cost
    sleep_s: float = 0.0  # injected slowdown per call (test-only), 0 normally


# One prepared, checked cell per process: asv runs setup before every timed call.
_CELLS: Dict[Tuple[str, ...], Cell] = {}


def _median_seconds(run: Callable[[], object], device: str, calls: int) -> float:
    return statistics.median(timing.time_calls(run, calls, device))


# preset and device are params, not only environment variables: asv records no environment
# variables for `-E existing` runs, so the params are what keeps small/full and cpu/cuda
# apart in every result. The environment picks which of them this run measures.
PRESET_PARAMS = list(registry.PRESETS)
DEVICE_PARAMS = ["cpu", "cuda"]


def cell(model: str, task: str, api: str, preset_param: str, device_param: str) -> Cell:
    """The cell for this process's device and preset; NotImplementedError (asv: n/a) when the
    params name another preset or device, the registry does not run it by default, or it
    cannot run here."""
    key = (model, task, api, device(), preset())
    if (preset_param, device_param) != (key[4], key[3].split(":")[0]):
        raise NotImplementedError(f"this run measures FUNCBENCH_PRESET={key[4]}, FUNCBENCH_DEVICE={key[3]}")
    if key in _CELLS:
        return _CELLS[key]
    if task not in registry.selected_tasks(model, api):
        raise NotImplementedError(f"{model} {task} ({api}) is not in the registry's default tasks")
    torch.set_num_threads(THREADS)  # here, not on import: the forkserver parent never touches the pool
    case = registry.prepare(model, task, api, device=key[3], preset=key[4])  # Unsupported -> n/a
    clock = clock_for(case.device)
    cuda = torch.device(case.device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize(case.device)) if cuda else (lambda: None)
    start = clock()
    case.run_checked()  # warm-up and guard: a wrong result is never timed
    new = Cell(case, sync, clock, clock() - start)
    factor = injected_slowdown(model, task, api)
    if factor != 1.0:
        new.sleep_s = (factor - 1.0) * _median_seconds(case.run, case.device, 3)
    _CELLS[key] = new
    return new


def _tasks_for(models) -> list:
    """Tasks some model of ``models`` runs by default in some API, in the registry's order."""
    wanted = {t for m in models for api in APIS for t in registry.selected_tasks(m, api)}
    return [t for t in TASKS if t in wanted]


class _Ops:
    """Shared benchmarks and timing policy; concrete classes are generated per cost tier.

    asv reads timing attributes (repeat, number, rounds, warmup_time, timeout) from the class,
    never per parameter combination, so one class cannot give 0.3 ms and 4 s cells each a
    sensible sample count. Hence one generated class per tier, each holding the models of
    that tier (MODEL_TIERS) as its ``model`` param:

    - number = 1 always: this asv_runner re-runs setup between calls anyway, and a per-call
      sample keeps the first-call outliers visible instead of averaged in.
    - rounds (one process each, spread over the run by asv) over samples: all samples of one
      process share its speed level (the VM drifts over minutes), so with two rounds one slow
      process moved the median by up to 50 %. Six short fast rounds, three medium, two slow.
    - at least 8 samples a side in every tier: below that asv compare's Mann-Whitney test
      cannot reach p < 0.002 and no change, however large, is flagged by it.
    - medium / slow: warmup_time 0 (setup's checked call already warmed up); timeouts long
      enough for detr vhp or the full preset.
    """
    param_names = ["model", "task", "api", "preset", "device"]
    number = 1

    def setup(self, *params):
        self.cell = cell(*params)

    def time_op(self, *params):
        """Seconds per call of the op (CUDA work included: the call synchronizes)."""
        self.cell.case.run()
        self.cell.sync()
        if self.cell.sleep_s:
            time.sleep(self.cell.sleep_s)

    def peakmem_op(self, *params):
        """Host max RSS of the process after one call (model build included: RSS only grows)."""
        self.cell.case.run()
        self.cell.sync()

    def track_cost_ratio(self, *params):
        """Op time / forward time, medians of a few calls each in this one process (about
        1 s of op calls; a single call for ops over 1 s, where one call is already stable)."""
        c = self.cell
        calls = max(1, min(21, int(1.0 / max(c.first_call_s, 1e-6))))

        def op():
            c.case.run()
            c.sync()

        def forward():
            with torch.no_grad():
                c.case.forward(*c.case.params)
            c.sync()

        forward()  # warm-up of the no-grad path
        return _median_seconds(op, c.case.device, calls) / _median_seconds(forward, c.case.device, calls)

    track_cost_ratio.unit = "ratio"


class _CudaMemory:
    """Peak CUDA memory allocated by one call; n/a on a CPU device (skipped before any build)."""
    param_names = ["model", "task", "api", "preset", "device"]

    def setup(self, *params):
        if not device().startswith("cuda"):
            raise NotImplementedError("CUDA peak memory needs FUNCBENCH_DEVICE=cuda")
        self.cell = cell(*params)

    def track_cuda_peak_memory(self, *params):
        dev = self.cell.case.device
        self.cell.sync()
        torch.cuda.reset_peak_memory_stats(dev)
        self.cell.case.run()
        self.cell.sync()
        return torch.cuda.max_memory_allocated(dev)

    track_cuda_peak_memory.unit = "bytes"


TIER_POLICIES = {
    "fast": dict(repeat=(10, 40, 0.3), rounds=6, warmup_time=0.05, timeout=300),
    # repeat is per round. With 5 samples per round and 2 rounds a 0.46 s op got 10 per side and
    # asv compare never flagged even a 1.5x injected slowdown (README "## Performance").
    "medium": dict(repeat=(4, 12, 3.0), rounds=3, warmup_time=0.0, timeout=900),
    "slow": dict(repeat=(4, 6, 6.0), rounds=2, warmup_time=0.0, timeout=1800),
}


def _generate() -> None:
    tiers: Dict[str, list] = {tier: [] for tier in TIER_POLICIES}
    for model in registry.MODELS:
        tiers[MODEL_TIERS.get(model, "slow")].append(model)
    for tier, models in tiers.items():
        if not models:
            continue
        params = [models, _tasks_for(models), list(APIS), PRESET_PARAMS, DEVICE_PARAMS]
        policy = TIER_POLICIES[tier]
        version = f"{POLICY_VERSION}-{sorted(policy.items())}"
        name = tier.capitalize()
        globals()[name] = type(name, (_Ops,), dict(params=params, version=version, **policy,
                                                   __doc__=f"The {tier} tier: {', '.join(models)}."))
        cuda_name = f"CudaMemory{name}"
        globals()[cuda_name] = type(cuda_name, (_CudaMemory,), dict(
            params=params, version=str(POLICY_VERSION), timeout=policy["timeout"],
            __doc__=f"CUDA peak memory, {tier} tier."))


_prepare_parent_process()
_generate()
