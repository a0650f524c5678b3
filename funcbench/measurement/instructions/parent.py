"""The counting parent: requests to valgrind processes, their dumps read back into counts.

Valgrind processes (*workers*, one per core, cells split by expected cost, run at once) count every
requested cell: starting python and importing torch under valgrind costs ~25 s, so a worker does
it once and forks a child per cell (funcbench.measurement.instructions.child). Each worker gets its folder
with a ``CountRequest`` and writes a ``CountResponse``, and each cell's child one callgrind dump
per counted call, read here. The process is pinned (``child_environment``) and every cell starts
from the same warmed-up worker: two runs agree to the instruction, and a cell's count does not
depend on which cells share its worker, so any grouping (a tier, a shard, one cell) gives it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import marshal
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from funcbench.measurement import process
from funcbench.catalogue import registry
from funcbench.catalogue.config import PRESET
from funcbench.util.packing import longest_first
from funcbench.catalogue.registry import Cell
from funcbench.measurement.instructions.protocol import (RESPONSE, CellRequest, CountRequest, CountResponse, Function,
                                                         dump_functions, dump_total)

# Per tier: (uncounted calls after the checked one, the last of them after gc.collect(), counted
# calls). In a medium cell every call valgrind runs costs about the same, instrumented or not
# (wav2letter vjp: ~50 s with AVX2 kernels: emulating the kernels is the cost, not counting),
# so heavier tiers run two calls only: the checked one, their warm-up, and one counted call (two
# counted calls differed by <= 0.01 % in wav2letter vjp, jvp and vhp). Light:
# the 11th call is the first counted one: CPython 3.11 specialises a code object's bytecode
# after 8 calls, which moved the first counted call by up to 12 %.
COUNTING = {"light": (9, 3), "medium": (0, 1), "heavy": (0, 1)}
# glibc's tcache and fastbins off: their state depends on the process's history and moved single
# calls by up to 7 %; the price is ~10 % more instructions in malloc than a default process spends.
GLIBC_TUNABLES = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"
# Kernels without fused multiply-add: valgrind runs vfmadd231ps ~300x slower than vmulps+vaddps
# (20M of them: 47 s against 0.15 s), so AVX2 kernels made counting crawl (one transformer SGEMM,
# 7 ms native: MKL's AVX2 kernel 30 s under valgrind, its SSE4.2 kernel 0.19 s). ATen's portable
# kernels, MKL's SSE4.2 ones, oneDNN's AVX ones (AVX has no FMA; its SSE4.1 ones count 66 % more).
# Counts then follow the portable kernels; a change to torch's AVX2/AVX-512 kernels shows in time.
NO_FMA = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "AVX"}
CONTROLS_SOURCE = """#include "callgrind.h"
void funcbench_start_instrumentation(void) { CALLGRIND_START_INSTRUMENTATION; }
void funcbench_stop_instrumentation(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void funcbench_toggle_collect(void) { CALLGRIND_TOGGLE_COLLECT; }
void funcbench_dump_stats(void) { CALLGRIND_DUMP_STATS; }
"""
# Cells are counted in this many valgrind processes at once at most: asv waits for setup_cache with
# every core idle. How cells are dealt does not move their counts (each in a child of its own).
PROCESSES = max(1, os.cpu_count() or 1)
# What the child keeps of its caller's environment: what a torch build may need to load.
INHERITED = ("LD_LIBRARY_PATH", "PYTHONPATH")


class CountingFailed(RuntimeError):
    """The valgrind process itself failed (not one cell): one line saying why."""


@dataclasses.dataclass
class Count:
    """Instructions of each counted call of one cell, the baseline already subtracted."""
    cell: Cell
    calls: List[int] = dataclasses.field(default_factory=list)
    baseline: int = 0  # the collection toggles around a no-op
    error: Optional[str] = None
    # Each function's self instructions in the median counted call less the baseline's: they sum to
    # per_call exactly (an odd number of counted calls: the median is one of them).
    profile: Dict[Function, int] = dataclasses.field(default_factory=dict, repr=False)

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


# A worker's HOME: the same path on every machine, for every worker and run (nothing is written there).
HOME = "/nonexistent"
# Where the workers' folders are made: a worker's working directory's length (not its letters) moved
# counts by up to 0.1 % (a TMPDIR of another length, a longer folder name), so every machine uses
# folders of one length, /tmp/funcbench-counts-XXXXXXXX/part000, unless /tmp is not writable.
COUNT_ROOT = "/tmp"


def child_environment() -> Dict[str, str]:
    """The valgrind worker's whole environment, the same whoever starts it, wherever, for every
    worker. What a process holds shapes its heap, and the strings it hashes (interns, keys) its
    dictionaries: the caller's own environment (asv's ASV_* variables name the configuration's
    and environment's paths, HOME, PATH) moved counts of the same build by up to 0.5 % between
    two asv configurations; a worker's own folder in its strings (pathlib interns every part of
    a path) moved them by up to 0.3 % from one worker to another; the working directory on
    sys.path, with the request's files listed there, by how many cells a request held. So the
    worker runs in its folder and names nothing but relative paths, its HOME is HOME and its
    working directory is not on sys.path (PYTHONSAFEPATH). Nothing injected comes through: the
    request says what to inject, priced in instructions."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(PATH="/usr/bin:/bin", HOME=HOME, LC_ALL="C.UTF-8", PYTHONHASHSEED="0", PYTHONSAFEPATH="1",
               GLIBC_TUNABLES=GLIBC_TUNABLES, OMP_NUM_THREADS=str(process.THREADS),
               MKL_NUM_THREADS=str(process.THREADS), **NO_FMA)
    return env


def byte_code_for_workers(package: Optional[Path] = None) -> int:
    """funcbench's byte code, as the workers will import it: compiled now, not in the worker (a
    stale .pyc, the first counting after an edit, made the worker compile funcbench's modules,
    which shaped its heap and moved counts 0.2-0.6 %), and naming the path the worker imports
    each module by (this process's, unresolved: the same sys.path). Python renames every code
    object of a .pyc that names another path (a link such as a release run's checkout link, or
    the checkout's own path when the .pyc was written through the link) as it imports it: that
    moved a count by 0.1-0.5 % with which path had last written the .pyc. Returns how many files
    it (re)compiled."""
    package = Path(package or Path(__file__).parents[2])  # funcbench/, as imported: no resolve()
    written = 0
    for source in sorted(package.rglob("*.py")):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if _byte_code_names(cached, source):
            continue
        try:
            py_compile.compile(str(source), cfile=str(cached), doraise=True)
            written += 1
        except (OSError, py_compile.PyCompileError):
            pass  # the worker compiles it as it imports it, as before
    return written


def _byte_code_names(cached: Path, source: Path) -> bool:
    """``cached`` is current for ``source`` (its mtime and size, as the import checks) and names
    ``source`` by the path given."""
    try:
        data = cached.read_bytes()
        stat = source.stat()
    except OSError:
        return False
    if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(data[4:8], "little") != 0:
        return False  # another Python's, or hash-based: compile anew
    if int.from_bytes(data[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF or \
            int.from_bytes(data[12:16], "little") != stat.st_size & 0xFFFFFFFF:
        return False
    try:
        return marshal.loads(data[16:]).co_filename == str(source)
    except (ValueError, EOFError, TypeError):
        return False


def split(cells: Sequence[Cell], groups: int = PROCESSES,
          seconds: Optional[Dict[Cell, float]] = None) -> List[List[Cell]]:
    """``cells`` into ``groups`` lists: with each cell's ``seconds``, longest first onto the least
    loaded list (ties by name); without, dealt round-robin in their order. (Round-robin gave one
    of two workers 816 s of medium cells and the other 315 s.) How cells are grouped does not
    move their counts."""
    if not seconds:
        parts = [list(cells[index::groups]) for index in range(groups)]
    else:
        parts = longest_first(cells, groups, cost=lambda c: seconds.get(c, 0.0), order=str)
    return [part for part in parts if part]


def cell_request(cell: Cell) -> CellRequest:
    warmup, calls = COUNTING[registry.model_spec(cell.model).tier]
    return CellRequest(str(cell), warmup, calls)


def count(cells: Sequence[Cell], preset: str = PRESET.default, workdir: Optional[Path] = None,
          injection: str = "", timeout: float = 6 * 3600, processes: int = PROCESSES, injected_op: str = "",
          seconds: Optional[Dict[Cell, float]] = None) -> Dict[Cell, Count]:
    """Count ``cells`` in up to ``processes`` valgrind processes at once (split by ``seconds``, each
    cell's expected cost, where given); a cell that fails carries its error.

    ``injection`` ("model:task:api:factor", TEST-ONLY) adds spin() work to that cell, priced
    in instructions by the child (so factor 1.01 adds >= 1 % of the cell's counted instructions);
    ``injected_op`` ("model:task:api:op", TEST-ONLY) one real ATen op (injection.OPS)."""
    own = workdir is None
    root = COUNT_ROOT if os.access(COUNT_ROOT, os.W_OK) else None
    folder = Path(workdir or tempfile.mkdtemp(prefix="funcbench-counts-", dir=root))
    folder.mkdir(parents=True, exist_ok=True)
    byte_code_for_workers()
    try:
        controls = build_controls(folder)
        running = []
        for index, group in enumerate(split(cells, processes, seconds)):
            part = folder / f"part{index:03d}"  # one length for every worker
            part.mkdir(exist_ok=True)
            if controls:  # the worker names it relative to its folder, as everything else
                shutil.copy(controls, part / controls.name)
            CountRequest(tuple(cell_request(c) for c in group), preset, f"./{controls.name}" if controls else None,
                         injection, injected_op).write(part)
            command = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--collect-atstart=no",
                       f"--instr-atstart={'no' if controls else 'yes'}", "--dump-instr=no", "--dump-line=no",
                       "--callgrind-out-file=callgrind.out.%p", sys.executable, "-m",
                       "funcbench.measurement.instructions.child"]
            running.append((part, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                                   text=True, env=child_environment(), cwd=part)))
        counts: Dict[Cell, Count] = {}
        deadline = time.monotonic() + timeout
        for part, child in running:
            try:
                _, stderr = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for _, other in running:
                    other.kill()
                raise CountingFailed(f"callgrind did not finish {len(cells)} cells within {timeout:.0f} s") from None
            if child.returncode != 0 or not (part / RESPONSE).is_file():
                tail = [line for line in stderr.splitlines() if line and not line.startswith("==")][-3:]
                raise CountingFailed(f"callgrind exited {child.returncode}: {' | '.join(tail) or 'no output'}")
            counts.update(read_counts(part, CountResponse.read(part)))
        demangle([c.profile for c in counts.values()])
        return {cell: counts[cell] for cell in cells}
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def read_counts(folder: Path, response: CountResponse) -> Dict[Cell, Count]:
    counts = {}
    for entry in response.cells:
        cell = Cell.parse(entry.cell)
        if entry.error:
            counts[cell] = Count(cell, error=entry.error)
            continue
        dump = lambda n: folder / f"callgrind.out.{entry.pid}.{n}"  # noqa: E731
        totals = [dump_total(dump(n)) for n in entry.dumps]
        baseline = dump_total(dump(entry.baseline))
        counts[cell] = Count(cell, [t - baseline for t in totals], baseline,
                             profile=median_profile(dump, entry.dumps, totals, entry.baseline))
    return counts


def median_profile(dump, numbers: Sequence[int], totals: Sequence[int], baseline: int) -> Dict[Function, int]:
    """Per function, the median counted call's self instructions less the baseline's (the calls'
    median by total, the lower one of an even number: Count.per_call then averages two calls)."""
    median = statistics.median_low(totals)
    call = dump_functions(dump(numbers[totals.index(median)]))
    for function, instructions in dump_functions(dump(baseline)).items():
        call[function] = call.get(function, 0) - instructions
    return {function: n for function, n in call.items() if n}


# Demanglers, in order: GNU c++filt gives up on some of ATen's nested-lambda kernels (the
# TensorIterator loops of sort, for one), which LLVM's demangles.
DEMANGLERS = ("c++filt", "llvm-cxxfilt")


def demangle(profiles: Sequence[Dict[Function, int]]) -> None:
    """Demangle, in place, the C++ symbols valgrind left mangled (its demangler gives up on very
    long names: ATen's nested kernel lambdas), each demangler of DEMANGLERS run once over what
    the ones before it left; a name none can demangle stays mangled. Counts are kept: two symbols
    that demangle to one name add up."""
    mangled = sorted({f.name for profile in profiles for f in profile if f.name.startswith("_Z")})
    names: Dict[str, str] = {}
    for tool in DEMANGLERS:
        left = [name for name in mangled if name not in names]
        if left:
            names.update({m: d for m, d in _demangled(tool, left).items() if d and d != m})
    for profile in profiles:
        for function in [f for f in profile if f.name in names]:
            count = profile.pop(function)
            renamed = function._replace(name=names[function.name])
            profile[renamed] = profile.get(renamed, 0) + count


def _demangled(tool: str, mangled: Sequence[str]) -> Dict[str, str]:
    """{mangled: what ``tool`` prints for it}, one name per line in and out; {} where the tool is
    missing, fails, or does not answer line for line."""
    path = shutil.which(tool)
    if path is None:
        return {}
    try:
        out = subprocess.run([path], input="\n".join(mangled) + "\n", capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    lines = out.stdout.splitlines()
    return dict(zip(mangled, lines)) if out.returncode == 0 and len(lines) == len(mangled) else {}
