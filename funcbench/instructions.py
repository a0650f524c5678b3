"""Instruction counts: the suite's ops counted by valgrind's callgrind, a deterministic CPU metric.

Wall time on a shared 2-core VM tells a 10 % change from noise at best; the instructions an op
executes do not depend on what else the machine does, so two processes of the same build agree
to ~0.1 % and a 1 % change shows. What counts see: Python and dispatch overhead, the work done
in kernels, extra copies. What they cannot: memory stalls, frequency, vectorisation width, GPUs.

Two valgrind processes (cells dealt round-robin, run at once) count every requested cell (``count``):
starting python and importing torch under valgrind costs ~25 s, so never one per cell. The
parent (asv's setup_cache of ``benchmarks.Instructions``, or a test) writes a request per
process, runs

    valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no python -m funcbench.instructions REQUEST

and reads one callgrind dump per counted call. In the child, per cell: build, check, warm up with
instrumentation off (fast), then with instrumentation on: one uncounted call to settle the heap
after ``gc.collect()``, a no-op between the same collection toggles (the baseline, subtracted),
and the counted calls, each toggled on and off around exactly the op ``time_op`` times, with
garbage collection off as in asv's timeit. The process is pinned: PYTHONHASHSEED=0, one
intra-op thread, the suite's steady allocator, glibc's per-thread cache and fastbins off
(GLIBC_TUNABLES: their state depends on the process's history and moved single calls by up to
7 %; the price is ~10 % more instructions in malloc than a default process spends), and an
environment and working directory of its own (``child_environment``). Two runs then agree to
the instruction.

Instrumentation is switched on from inside with callgrind's client request, compiled once from
the callgrind.h torch ships (a C compiler is needed; without one the child runs instrumented
from the start, ~40 s slower, and toggles collection through torch._C._valgrind_toggle).
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from . import config, registry, suite, timing
from .registry import Cell
from .tasks import EAGER_APIS

# Per tier: (warm-up calls before counting, counted calls). Counting costs ~150x a call's time
# (resnet18 vjp, small preset: ~33 s a call), so heavier tiers count fewer calls; their counts
# are dominated by kernels and vary less from call to call. Light: with the checked call and
# the settling call, the 10th call is the first counted one: CPython 3.11 specialises a code
# object's bytecode after 8 calls, which moved the first counted call by up to 12 %.
COUNTING = {"light": (8, 3), "medium": (2, 2), "heavy": (1, 1)}
SPIN_CALIBRATION = 10_000  # spin() iterations counted to price one iteration (injected work)
# glibc's tcache and fastbins off: see the module docstring.
GLIBC_TUNABLES = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"
CONTROLS_SOURCE = """#include "callgrind.h"
void funcbench_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
void funcbench_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void funcbench_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }
void funcbench_dump_stats(void) { CALLGRIND_DUMP_STATS; }
"""


class CountingFailed(RuntimeError):
    """The valgrind process itself failed (not one cell): one line saying why."""


def unavailable_reason(device: str = "cpu") -> Optional[str]:
    """Why instructions cannot be counted here, or None."""
    if not device.startswith("cpu"):
        return f"instruction counts are a CPU metric (FUNCBENCH_DEVICE={device})"
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind)"
    import torch
    if not torch._C._valgrind_supported_platform():
        return "this torch build or platform does not support callgrind's client requests"
    return None


def selected_cells(tokens: Sequence[str], run_slow_tasks: bool = False) -> List[Cell]:
    """The cells FUNCBENCH_INSTRUCTIONS names (tiers, models, model:task:api), among those the
    suite measures; UnknownName for a token that is none of these. Compiled cells only where
    named one by one: compiling under valgrind (uninstrumented still ~10x slower) takes minutes."""
    wanted = []
    eager = suite.default_cells(run_slow_tasks=run_slow_tasks, apis=EAGER_APIS)
    for token in tokens:
        if token in config.TIERS:
            wanted += [c for c in eager if registry.model_spec(c.model).tier == token]
        elif token in registry.MODELS:
            wanted += [c for c in eager if c.model == token]
        elif ":" in token:
            wanted.append(Cell.parse(token))
        else:
            raise registry.UnknownName(f"{config.INSTRUCTIONS.name}: {token!r} is no tier ({', '.join(config.TIERS)}), "
                                       f"model or model:task:api cell")
    return list(dict.fromkeys(wanted))


@dataclasses.dataclass
class Count:
    """Instructions of each counted call of one cell, the baseline already subtracted."""
    cell: Cell
    calls: List[int] = dataclasses.field(default_factory=list)
    baseline: int = 0  # the collection toggles around a no-op
    error: Optional[str] = None

    @property
    def per_call(self) -> float:
        """The median counted call: robust to a call that met an odd heap state."""
        return float(statistics.median(self.calls))

    @property
    def spread(self) -> float:
        """(max - min) / median of the counted calls."""
        return (max(self.calls) - min(self.calls)) / self.per_call if len(self.calls) > 1 else 0.0


def build_controls(folder: Path) -> Optional[Path]:
    """Compile the client-request shim into ``folder``; None without a C compiler or header."""
    import torch.utils.benchmark.utils.valgrind_wrapper as wrapper

    header_dir = Path(wrapper.__file__).parent
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if compiler is None or not (header_dir / "callgrind.h").is_file():
        return None
    source, library = folder / "funcbench_callgrind.c", folder / "libfuncbench_callgrind.so"
    source.write_text(CONTROLS_SOURCE)
    result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", f"-I{header_dir}", "-o", str(library), str(source)],
                            capture_output=True, text=True, timeout=120)
    return library if result.returncode == 0 else None


# Cells are counted in this many valgrind processes at once: the machine's second core is idle
# while asv waits for setup_cache (the light tier: 147 s in one process). Always this many,
# whatever the cores: which cells share a process shapes its heap, and so its counts, so the
# split must not depend on the machine.
PROCESSES = 2


# What the child keeps of its caller's environment: what a torch build may need to load.
INHERITED = ("LD_LIBRARY_PATH", "PYTHONPATH")


def child_environment(part: Path) -> Dict[str, str]:
    """The valgrind child's whole environment, the same whoever starts it. The environment is
    copied onto the process's stack and heap, so its size shapes the heap: the caller's own
    (asv's ASV_* variables name the configuration's and environment's paths, HOME, PATH) moved
    counts of the same build by up to 0.5 % between two asv configurations. Nothing injected
    comes through: the request says what to inject, priced in instructions. The child runs in
    ``part`` (python puts the working directory on sys.path, into the heap too)."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(PATH="/usr/bin:/bin", HOME=str(part), LC_ALL="C.UTF-8", PYTHONHASHSEED="0",
               GLIBC_TUNABLES=GLIBC_TUNABLES, OMP_NUM_THREADS=str(suite.THREADS), MKL_NUM_THREADS=str(suite.THREADS))
    return env


def split(cells: Sequence[Cell], groups: int = PROCESSES) -> List[List[Cell]]:
    """``cells`` dealt round-robin into ``groups`` lists, in their order: each process gets about
    half of every model's cells (a model's cells differ in cost by 100x; its build is cheap)."""
    parts = [list(cells[index::groups]) for index in range(groups)]
    return [part for part in parts if part]


def count(cells: Sequence[Cell], preset: str = "small", workdir: Optional[Path] = None,
          injection: str = "", timeout: float = 6 * 3600) -> Dict[Cell, Count]:
    """Count ``cells`` in PROCESSES valgrind processes at once; a cell that fails carries its error.

    ``injection`` ("model:task:api:factor", TEST-ONLY) adds spin() work to that cell, priced
    in instructions here (so factor 1.01 adds >= 1 % of the cell's counted instructions)."""
    own = workdir is None
    folder = Path(workdir or tempfile.mkdtemp(prefix="funcbench-callgrind-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        controls = build_controls(folder)
        running = []
        for index, group in enumerate(split(cells)):
            part = folder / f"part{index}"  # same name length in every run: the paths are in the heap too
            part.mkdir(exist_ok=True)
            request = dict(cells=[str(c) for c in group], preset=preset, controls=str(controls) if controls else None,
                           injection=injection, tiers={str(c): registry.model_spec(c.model).tier for c in group})
            (part / "request.json").write_text(json.dumps(request))
            command = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--collect-atstart=no",
                       f"--instr-atstart={'no' if controls else 'yes'}", "--dump-instr=no", "--dump-line=no",
                       f"--callgrind-out-file={part}/callgrind.out.%p", sys.executable, "-m", "funcbench.instructions",
                       str(part)]
            running.append((part, group, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                          text=True, env=child_environment(part), cwd=part)))
        counts: Dict[Cell, Count] = {}
        deadline = time.monotonic() + timeout
        for part, group, process in running:
            try:
                _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for _, _, other in running:
                    other.kill()
                raise CountingFailed(f"callgrind did not finish {len(cells)} cells within {timeout:.0f} s") from None
            manifest = part / "manifest.json"
            if process.returncode != 0 or not manifest.is_file():
                tail = [line for line in stderr.splitlines() if line and not line.startswith("==")][-3:]
                raise CountingFailed(f"callgrind exited {process.returncode}: {' | '.join(tail) or 'no output'}")
            counts.update(_read_counts(part, json.loads(manifest.read_text())))
        return {cell: counts[cell] for cell in cells}
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def _dump_total(path: Path) -> int:
    """The dump's ``totals:`` line (the sum of its cost lines). Not ``summary:``: in the first
    dump after instrumentation is switched back on, callgrind 3.19 writes a wrapped-around
    negative summary there."""
    with open(path) as handle:
        for line in handle:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise CountingFailed(f"{path.name}: no totals line")


def _read_counts(folder: Path, manifest: dict) -> Dict[Cell, Count]:
    pid, counts = manifest["pid"], {}
    for entry in manifest["cells"]:
        cell = Cell(*entry["cell"].split(":"))
        if entry.get("error"):
            counts[cell] = Count(cell, error=entry["error"])
            continue
        totals = [_dump_total(folder / f"callgrind.out.{pid}.{n}") for n in entry["dumps"]]
        baseline = _dump_total(folder / f"callgrind.out.{pid}.{entry['baseline']}")
        counts[cell] = Count(cell, [t - baseline for t in totals], baseline)
    return counts


# ------------------------------------------------------------------ the child, under valgrind


class _Controls:
    """callgrind's client requests: the compiled shim, or torch's bindings (collection only)."""

    def __init__(self, library: Optional[str]):
        self.dumps = 0
        if library:
            lib = ctypes.CDLL(library)
            self.start, self.stop = lib.funcbench_start_instrumentation, lib.funcbench_stop_instrumentation
            toggle, dump = lib.funcbench_toggle_collect, lib.funcbench_dump_stats

            def toggle_and_dump():
                toggle()
                dump()
        else:  # instrumented from the start (--instr-atstart=yes)
            import torch
            self.start = self.stop = lambda: None
            toggle, toggle_and_dump = torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats
        self.toggle, self.toggle_and_dump = toggle, toggle_and_dump

    def measure(self, run: Callable[[], object]) -> int:
        """Collect exactly ``run()``, then dump; returns the dump's number (callgrind counts from 1)."""
        self.toggle()
        run()
        self.toggle_and_dump()
        self.dumps += 1
        return self.dumps


def _noop() -> None:
    return None


def _count_cell(controls: _Controls, run: Callable[[], object], calls: int, factor: float) -> dict:
    gc.collect()
    gc.disable()  # as asv's timeit: a collection inside a counted call would be noise
    try:
        run()  # instrumented but uncounted: the heap settles after the collection
        baseline = controls.measure(_noop)
        dumps = [controls.measure(run) for _ in range(calls)]
        if factor == 1.0:
            return dict(baseline=baseline, dumps=dumps)
        # Injected work (TEST-ONLY), priced in instructions: spin() of two sizes (warmed up:
        # the interpreter specialises a loop after a few runs), then the op followed by enough
        # spin() for (factor - 1) of the op's instructions.
        for _ in range(10):
            suite.spin(SPIN_CALIBRATION)
        price = [controls.measure(lambda n=n: suite.spin(n)) for n in (SPIN_CALIBRATION, 2 * SPIN_CALIBRATION)]
        return dict(baseline=baseline, dumps=dumps, price=price)
    finally:
        gc.enable()


def _child(folder: Path) -> int:
    """Runs under valgrind: count the request's cells, write manifest.json."""
    import torch

    request = json.loads((folder / "request.json").read_text())
    timing.steady_allocator()
    torch.set_num_threads(suite.THREADS)
    controls = _Controls(request["controls"])
    injection = request.get("injection") or ""
    manifest = dict(pid=os.getpid(), cells=[])
    cells = [Cell(*c.split(":")) for c in request["cells"]]
    for model in dict.fromkeys(c.model for c in cells):
        ready = []
        for cell in (c for c in cells if c.model == model):
            warmup, calls = COUNTING[request["tiers"][str(cell)]]
            try:
                case = registry.prepare(*cell, device="cpu", preset=request["preset"])
                case.run_checked()
                for _ in range(warmup):
                    case.run()
                ready.append((cell, case, calls))
            except Exception as error:  # one broken cell never stops the others
                manifest["cells"].append(dict(cell=str(cell), error=f"{type(error).__name__}: {_first_line(error)}"))
        controls.start()
        for cell, case, calls in ready:
            factor = suite.injected_factor(cell, injection)
            entry = dict(cell=str(cell), **_count_cell(controls, case.run, calls, factor))
            if factor != 1.0:
                entry.update(_inject(controls, folder, manifest["pid"], entry, case.run, calls, factor))
            manifest["cells"].append(entry)
        controls.stop()
        registry.forget_builds()  # one model in memory at a time
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return 0


def _inject(controls: _Controls, folder: Path, pid: int, entry: dict, run, calls: int, factor: float) -> dict:
    """Count ``run`` followed by spin() worth (factor - 1) of its own instructions."""
    def total(n: int) -> int:
        return _dump_total(folder / f"callgrind.out.{pid}.{n}")

    baseline = total(entry["baseline"])
    op = statistics.median(total(n) - baseline for n in entry["dumps"])
    single, double = (total(n) for n in entry.pop("price"))
    per_iteration = (double - single) / SPIN_CALIBRATION  # the call's own cost cancels
    iterations = suite.spin_iterations(factor, op, per_iteration)

    def op_and_extra_work():
        run()
        suite.spin(iterations)

    counted = _count_cell(controls, op_and_extra_work, calls, 1.0)
    return dict(dumps=counted["dumps"], baseline=counted["baseline"], injected_iterations=iterations)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


# ------------------------------------------------------------------------- asv's side


def count_for_run() -> dict:
    """What asv's setup_cache of benchmarks.Instructions returns (pickled to every benchmark
    process): {"cells": {"model:task:api": per-call count or {"error": why}}, "unavailable":
    why or None, "seconds": the counting's wall time}."""
    started = time.monotonic()
    reason = unavailable_reason(suite.run_device())
    if reason:
        return dict(cells={}, unavailable=reason, seconds=0.0)
    cells = selected_cells(config.instruction_selection(), config.run_slow_tasks())
    counts = count(cells, suite.run_preset(), injection=config.get(config.INJECT_SLOWDOWN)) if cells else {}
    return dict(cells={str(c): ({"error": n.error} if n.error else n.per_call) for c, n in counts.items()},
                unavailable=None, seconds=time.monotonic() - started)


def counted(counts: dict, cell: str, preset: str, device: str) -> float:
    """The count of one parameter set from count_for_run's result; NotImplementedError (asv:
    n/a) with the reason where there is none, RuntimeError where its counting failed."""
    model, task, api = Cell.parse(cell)
    reason = suite.skip_reason(model, task, api, preset, device) or counts["unavailable"]
    if reason:
        raise NotImplementedError(reason)
    value = counts["cells"].get(str(Cell(model, task, api)))
    if value is None:
        named = " (compiled cells only when named model:task:compile)" if api == "compile" else ""
        raise NotImplementedError(f"{model} {task} ({api}) is not counted: FUNCBENCH_INSTRUCTIONS="
                                  f"{config.get(config.INSTRUCTIONS)} (tiers, models or cells to count){named}")
    if isinstance(value, dict):
        raise RuntimeError(f"counting {model} {task} ({api}) failed: {value['error']}")
    return value


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))
