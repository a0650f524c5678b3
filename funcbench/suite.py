"""The asv suite's policy, apart from asv's glue (benchmarks/benchmarks.py), so that the suite,
the audit and the tests share one: the state of a benchmark process (threads, allocator,
imports), which parameter sets a run measures and why the others are n/a, and the prepared,
checked op that every timed method calls.

Naming: a *cell* is a (model, task, API); a benchmark's parameter set is a cell plus the preset
and device it is measured at; a *tier* is a model's cost class (``registry.ModelSpec.tier``).
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
import statistics
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from . import compilation, config, registry, timing
from .models.common import PRESETS
from .registry import Cell
from .tasks import APIS, TASKS, compile_unavailable_reason

# Part of every benchmark's asv version: a change starts new series instead of mixing with old
# ones. Bump it when what a sample means changes, never for sample counts (asv's own version
# would hash only the benchmark's code).
# 4: preset and device params; 5: steady allocator, one thread, tier rounds; 6: one class per
# model (tiers no longer in benchmark names), peak memory and cost ratio in one-round classes.
POLICY_VERSION = 6
VERSION = str(POLICY_VERSION)

# One intra-op thread, the default of torch.utils.benchmark.Timer and of PyTorch's
# operator_benchmark. At this VM's 2 threads, fresh processes ran multiheadattn vjp at either
# 0.67 or 0.84 ms and resnet18 vjp anywhere in 19-26 ms; at 1 thread 0.96-1.00 ms and 30-34 ms.
# Thread scaling is `funcbench run --num-threads N`'s job.
THREADS = 1

# asv's timing attributes per cost tier. asv reads them from the class, so each model has its
# class (benchmarks.<model>). More, shorter rounds beat more samples per process: the VM's
# speed drifts by 10-20 % over tens of seconds and every sample of a process shares its speed.
# At least 8 samples a side in every tier, below which asv compare's Mann-Whitney test cannot
# reach p < 0.002. Medium / heavy: warmup_time 0 (setup's checked call already warmed up).
TIER_POLICIES: Dict[str, dict] = {
    "light": dict(repeat=(10, 40, 0.3), rounds=6, warmup_time=0.05, timeout=300),
    # With 5 samples per round and 2 rounds a 0.46 s op got 10 per side and asv compare never
    # flagged even a 1.5x injected slowdown (README, "Performance").
    "medium": dict(repeat=(4, 12, 3.0), rounds=3, warmup_time=0.0, timeout=900),
    "heavy": dict(repeat=(4, 6, 6.0), rounds=2, warmup_time=0.0, timeout=1800),
}
assert set(TIER_POLICIES) == set(config.TIERS)
# Compiled ops, whatever the model's tier: each round is a process that compiles again (from
# the run's warm cache still 2-8 s: dynamo traces the torch.func transform anew), so two
# rounds of more samples. Two rounds let one slow process weigh half (policy v4's lesson),
# the price of keeping a compiled cell at ~10-20 s of a run instead of ~50.
COMPILED_POLICY = dict(repeat=(10, 40, 0.5), rounds=2, warmup_time=0.05, timeout=900)
# Classes measured once per process whatever the model (peak memory, cost ratio, counts).
LONGEST_TIMEOUT = max(policy["timeout"] for policy in TIER_POLICIES.values())

PARAM_NAMES = ["model", "task", "api", "preset", "device"]
CELL_PARAM_NAMES = ["cell", "preset", "device"]
DEVICE_KINDS = ("cpu", "cuda")  # the device param: FUNCBENCH_DEVICE without its index

# Modules torch imports lazily on the first autograd / torch.func call (sympy via symbolic
# shapes, dynamo via the decomposition wrappers): 0.3-1.0 s per benchmark process otherwise.
LAZY_TORCH_MODULES = ("torch._dynamo", "torch._decomp.decompositions_for_jvp")


class SuiteError(RuntimeError):
    """The run cannot measure anything (a bad FUNCBENCH_* value, CUDA asked for where there is
    none): raised when the suite is imported, so asv's discovery stops with this one line."""


def run_preset() -> str:
    return config.get(config.PRESET)


def run_device() -> str:
    return config.get(config.DEVICE)


def cuda_device_count_in_child() -> int:
    """torch.cuda.device_count() read in a child process: asv forks every benchmark process
    from the one that imports the suite, and a CUDA context does not survive fork."""
    code = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return int(result.stdout.split()[-1]) if result.returncode == 0 and result.stdout.split() else 0


def check_run_environment() -> None:
    """SuiteError with one line if the run's preset or device is unknown or its CUDA device
    missing: a run that would record every cell n/a must fail, not look like success."""
    try:
        config.check_environment()
    except config.SettingError as error:
        raise SuiteError(f"funcbench: {error}") from None
    device = run_device()
    if device.startswith("cuda"):
        count = cuda_device_count_in_child()
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = "no CUDA device" if count == 0 else f"only {count} CUDA device(s)"
            raise SuiteError(f"funcbench: FUNCBENCH_DEVICE={device} asked for, but this machine has {found}")


def prepare_parent_process() -> None:
    """Process-wide policy, applied once where the suite is imported: asv's forkserver imports
    the suite once and forks every benchmark process from it, so each one starts in the same
    state and cheaply. Imports only (no tensor work, no CUDA): neither a used OpenMP pool nor
    CUDA survives fork."""
    check_run_environment()
    timing.steady_allocator()  # page faults of glibc's dynamic mmap threshold: see its docstring
    compilation.use_run_cache()  # compiled cells: a cache folder of the run's own
    for module in LAZY_TORCH_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # another torch version: its first call imports what it needs
            pass
    registry.import_getters()


# ----------------------------------------------------------------------------- parameters


def tasks_param(models: Sequence[str], apis: Sequence[str] = APIS) -> List[str]:
    """Tasks some model of ``models`` runs in some API of ``apis``, in the registry's order: the
    defaults, or every supported task with FUNCBENCH_RUN_SLOW_TASKS=1."""
    slow = config.run_slow_tasks()
    wanted = {t for m in models for api in apis for t in registry.selected_tasks(m, api, slow)}
    return [t for t in TASKS if t in wanted]


def preset_params(conf_path: Optional[Path] = None) -> List[str]:
    """The preset param: every preset asv.conf.json's matrix gives the run, and this process's.

    Preset and device are params, not only environment variables, because asv records no
    environment variables for `-E existing` runs: the params keep small/full and cpu/cuda apart
    in every result. asv discovers the suite once for all environments of a run, in the first
    one, so the values come from the matrix (which every environment of the run shares), not
    from one environment alone. Listing both presets when the matrix runs one would double the
    parameter sets asv forks a process for, half of them n/a. The device param lists both kinds
    whatever the matrix says: a dashboard published from a CPU box must keep a GPU box's results
    (asv publish drops values its own params lack)."""
    try:
        matrix = config.load_asv_conf(conf_path or config.ROOT / "asv.conf.json").get("matrix", {})
    except (OSError, ValueError):
        matrix = {}
    listed = {run_preset()}
    for group in ("env", "env_nobuild"):
        values = (matrix.get(group) or {}).get(config.PRESET.name, [])
        listed.update(str(v) for v in (values if isinstance(values, list) else [values]))
    return [p for p in PRESETS if p in listed]


def model_params(model: str, presets: Sequence[str], apis: Sequence[str] = APIS) -> list:
    """Params of a model's time benchmark: model, task, api, preset, device."""
    return [[model], tasks_param([model], apis), list(apis), list(presets), list(DEVICE_KINDS)]


def cell_params(cells: Sequence[Cell], presets: Sequence[str], devices: Sequence[str] = DEVICE_KINDS) -> list:
    """Params of a one-value-per-cell class: cell ("model:task:api"), preset, device."""
    return [[str(c) for c in cells], list(presets), list(devices)]


def asv_policy(model: str) -> dict:
    """asv's timing attributes for a model's class: its tier's."""
    return dict(TIER_POLICIES[registry.model_spec(model).tier])


def skip_reason(model: str, task: str, api: str, preset: str, device: str) -> Optional[str]:
    """Why asv must show this parameter set as n/a, or None if this run measures it."""
    if (preset, device) != (run_preset(), run_device().split(":")[0]):
        return f"this run measures FUNCBENCH_PRESET={run_preset()}, FUNCBENCH_DEVICE={run_device()}"
    slow = config.run_slow_tasks()
    if task not in registry.selected_tasks(model, api, slow):
        why = registry.unsupported_reason(model, task, api)
        if why:
            return f"{model} {task} ({api}) is unsupported: {why}"
        return f"{model} {task} ({api}) is not a default task (FUNCBENCH_RUN_SLOW_TASKS=1 runs it)"
    if api == "compile":
        why = compile_unavailable_reason(run_device())
        if why:
            return f"{model} {task} ({api}) cannot run here: {why}"
    return registry.unavailable_reason(model)


# ------------------------------------------------------------------- the prepared op


def spin(iterations: int) -> None:
    """TEST-ONLY extra work: an interpreter loop, real instructions and real time (a sleep
    would show in wall time only, never in instruction counts). Over itertools.repeat, as
    timeit does: range() allocates an int per iteration above 256, so its cost per iteration
    would depend on the count."""
    for _ in itertools.repeat(None, iterations):
        pass


def injected_factor(cell: Cell, injection: Optional[str] = None) -> float:
    """FUNCBENCH_INJECT_SLOWDOWN="model:task:api:factor" (TEST-ONLY; or ``injection``, as the
    counting process gets it): that cell's call does ``factor`` times its work. 1.0 for every
    other cell and when unset."""
    injection = config.get(config.INJECT_SLOWDOWN) if injection is None else injection
    if not injection:
        return 1.0
    *target, factor = injection.split(":")
    return float(factor) if tuple(target) == tuple(cell) else 1.0


def spin_iterations(factor: float, op_cost: float, iteration_cost: float) -> int:
    """Loop iterations that add at least (factor - 1) x op_cost, in whatever unit the costs
    share (seconds here, instructions under callgrind)."""
    return max(0, math.ceil((factor - 1.0) * op_cost / iteration_cost))


def seconds_per_spin_iteration(iterations: int = 100_000) -> float:
    return min(timeit.repeat(lambda: spin(iterations), number=1, repeat=3)) / iterations


@dataclasses.dataclass
class Prepared:
    """One parameter set ready to time: ``call()`` is exactly what a timed sample runs: the op
    (waiting for the device's queued work), plus the injected work of a test, if any."""
    case: registry.Case
    op: Callable[[], None]  # the op, waiting for the device's queued work
    first_call_s: float  # the checked first call, warm-up included: an upper bound of the cost
    call: Callable[[], None] = None  # op, or op then spin(extra_iterations)
    extra_iterations: int = 0  # TEST-ONLY injected work per call (FUNCBENCH_INJECT_SLOWDOWN)

    def __post_init__(self):
        self.inject(self.extra_iterations)

    def inject(self, iterations: int) -> None:
        """Make ``call`` run ``iterations`` of spin() after the op (0: the op alone)."""
        self.extra_iterations = iterations
        if not iterations:
            self.call = self.op
            return
        op = self.op

        def op_and_extra_work():
            op()
            spin(iterations)

        self.call = op_and_extra_work


def _op(case: registry.Case) -> Callable[[], None]:
    if torch.device(case.device).type != "cuda":
        return case.run
    device = case.device

    def run_synchronized():
        case.run()
        torch.cuda.synchronize(device)

    return run_synchronized


def median_seconds(run: Callable[[], object], device: str, calls: int) -> float:
    return statistics.median(timing.time_calls(run, calls, device))


def _prepare(cell: Cell) -> Prepared:
    torch.set_num_threads(THREADS)  # here, not on import: the forkserver parent never touches the pool
    case = registry.prepare(*cell, device=run_device(), preset=run_preset())  # Unsupported -> n/a
    op = _op(case)
    clock = timing.clock_for(case.device)
    start = clock()
    case.run_checked()  # warm-up and guard: a wrong result is never timed
    prepared = Prepared(case, op, clock() - start)
    factor = injected_factor(cell)
    if factor != 1.0:
        prepared.inject(spin_iterations(factor, median_seconds(op, case.device, 5), seconds_per_spin_iteration()))
    return prepared


_PREPARED: Dict[Cell, Prepared] = {}  # one per process: asv runs setup before every timed call


def prepared(model: str, task: str, api: str, preset: str, device: str) -> Prepared:
    """The prepared op of a parameter set; NotImplementedError (asv: n/a) saying why if this
    run does not measure it. Built and checked once per process, then a dict look-up."""
    reason = skip_reason(model, task, api, preset, device)
    if reason:
        raise NotImplementedError(reason)
    cell = Cell(model, task, api)
    if cell not in _PREPARED:
        _PREPARED[cell] = _prepare(cell)
    return _PREPARED[cell]


def prepared_cell(cell: str, preset: str, device: str) -> Prepared:
    """prepared() of a "model:task:api" cell param."""
    return prepared(*Cell.parse(cell), preset, device)


def forget_prepared() -> None:
    _PREPARED.clear()


def compiled_cell(cell: str, preset: str, device: str) -> Cell:
    """The cell whose compile time a process measures; NotImplementedError (asv: n/a) saying
    why for anything this run does not compile."""
    parsed = Cell.parse(cell)
    if parsed.api != "compile":
        raise NotImplementedError("compile time is measured for api=compile only")
    reason = skip_reason(*parsed, preset, device)
    if reason:
        raise NotImplementedError(reason)
    torch.set_num_threads(THREADS)
    return parsed


def compile_seconds(cell: Cell) -> float:
    return compilation.compile_seconds(cell, run_device(), run_preset())


# ------------------------------------------------------------- one-shot measurements

COST_RATIO_BUDGET_S = 0.3  # seconds of op calls per cost ratio (policy v3: 1 s; 98 s of a run at v6)


def cost_ratio(prepared_op: Prepared) -> float:
    """Op time / no-grad forward time, medians of a few calls each in this one process (about
    0.3 s of op calls, at most 21; a single call for ops over 0.3 s, already stable there)."""
    case = prepared_op.case
    calls = max(1, min(21, int(COST_RATIO_BUDGET_S / max(prepared_op.first_call_s, 1e-6))))
    sync = (lambda: torch.cuda.synchronize(case.device)) if torch.device(case.device).type == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            case.forward(*case.params)
        sync()

    forward()  # warm-up of the no-grad path
    return median_seconds(prepared_op.op, case.device, calls) / median_seconds(forward, case.device, calls)


def cuda_peak_memory(prepared_op: Prepared) -> int:
    """torch.cuda.max_memory_allocated over one call of the op."""
    device = prepared_op.case.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    prepared_op.op()
    return torch.cuda.max_memory_allocated(device)


def default_cells(models: Optional[Sequence[str]] = None, run_slow_tasks: Optional[bool] = None,
                  apis: Sequence[str] = APIS) -> List[Cell]:
    """Every cell the suite measures (with FUNCBENCH_RUN_SLOW_TASKS=1: every supported one),
    in the registry's order."""
    slow = config.run_slow_tasks() if run_slow_tasks is None else run_slow_tasks
    return [Cell(m, t, a) for m in (models or registry.MODELS) for a in apis
            for t in registry.selected_tasks(m, a, slow)]


__all__ = ["CELL_PARAM_NAMES", "LONGEST_TIMEOUT", "PARAM_NAMES", "POLICY_VERSION", "Prepared", "SuiteError",
           "THREADS", "TIER_POLICIES", "VERSION", "asv_policy", "cell_params", "check_run_environment", "compile_seconds",
           "compiled_cell", "cost_ratio", "cuda_peak_memory", "default_cells", "injected_factor", "model_params",
           "prepare_parent_process", "prepared", "prepared_cell", "preset_params", "skip_reason", "spin",
           "spin_iterations"]
