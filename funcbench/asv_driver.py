"""Driving asv from Python: runs in a private configuration, comparisons, the results.

A ``Workspace`` is this repository's asv.conf.json copied into a folder of its own, with
results, html and environments redirected there (asv 0.6.6 has no ``--results-dir`` option)
and a private HOME for asv's machine file: the repo's results/ and the user's
~/.asv-machine.json are never touched. Runs use ``-E existing:<python>`` (no build) with
``--set-commit-hash`` so asv saves their results. The audit and the interleaved comparison
of two torch builds drive asv through it.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import config
from .registry import Cell

ROOT = config.ROOT
NAME_RE = re.compile(r"^(benchmarks\.\w+\.\w+)\((.*)\)$")


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f} (1/5 min, {os.cpu_count()} cores)"


def git_hash(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def split_name(name: str) -> Tuple[str, Optional[Cell]]:
    """"benchmarks.ppl_simple_reg.time_op('ppl_simple_reg', 'vjp', 'autograd', 'small', 'cpu')" or
    "benchmarks.Memory.peakmem_op('ppl_simple_reg:vjp:autograd', 'small', 'cpu')" ->
    (the benchmark, Cell("ppl_simple_reg", "vjp", "autograd")); the preset and device params are
    fixed by the run (the others are n/a), so the cell names a result."""
    match = NAME_RE.match(name)
    if not match:
        return name, None
    params = ast.literal_eval(f"({match.group(2)},)")
    if params and isinstance(params[0], str) and params[0].count(":") == 2:
        return match.group(1), Cell(*params[0].split(":"))
    return match.group(1), Cell(*params[:3])


def bench_regex(cell: Cell, method: str = "time_op") -> str:
    """asv --bench regex selecting one cell's benchmark of ``method`` (a time class's model,
    task, api params, or a one-value class's cell param)."""
    return (rf"^benchmarks\.\w+\.{method}\(('{cell.model}', '{cell.task}', '{cell.api}'"
            rf"|'{cell.model}:{cell.task}:{cell.api}'), ")


@dataclasses.dataclass
class Run:
    commit: str
    wall_s: float
    output: str
    load_before: str
    load_after: str
    quick: bool = False


@dataclasses.dataclass
class CompareRow:
    mark: str  # asv's: '+' worse, '-' better, ' ' same (or '~ratio'), 'x' incomparable, '!' failed
    before: str
    after: str
    ratio: str
    name: str


class Workspace:
    """A private asv configuration: this repo and its benchmarks, results in ``path``."""

    def __init__(self, path: Path, device: str = "cpu", preset: str = "small", machine: str = "funcbench-audit",
                 python: str = sys.executable):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.home = self.path / "home"
        self.home.mkdir(exist_ok=True)
        self.results_dir = self.path / "results"
        self.device, self.preset, self.machine, self.python = device, preset, machine, python
        conf = config.load_asv_conf()
        conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                    results_dir=str(self.results_dir), html_dir=str(self.path / "html"),
                    env_dir=str(self.path / "env"))
        self.conf = self.path / "asv.conf.json"
        self.conf.write_text(json.dumps(conf, indent=2))
        self.asv("machine", "--yes", "--machine", machine)

    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = dict(os.environ, HOME=str(self.home), **{config.DEVICE.name: self.device, config.PRESET.name: self.preset})
        env.pop(config.INJECT_SLOWDOWN.name, None)  # never inherited: only a sensitivity test sets it
        env.update(extra or {})
        return env

    def asv(self, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 3600) -> str:
        cmd = [sys.executable, "-m", "asv", *args, "--config", str(self.conf)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=self.env(env), timeout=timeout)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-4000:]}")
        return output

    def run(self, commit: str, bench: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
            quick: bool = False, extra: Sequence[str] = ()) -> Run:
        """``asv run -E existing:<python> --set-commit-hash COMMIT --record-samples``."""
        args = ["run", "-E", f"existing:{self.python}", "--machine", self.machine, "--show-stderr", *extra]
        if quick:
            args.append("--quick")  # asv saves no results for --quick
        else:
            args += ["--set-commit-hash", commit, "--record-samples"]
        for regex in bench:
            args += ["--bench", regex]
        before = load_avg()
        start = time.perf_counter()
        output = self.asv(*args, env=env)
        return Run(commit, time.perf_counter() - start, output, before, load_avg(), quick)

    def compare(self, base: str, head: str, factor: float) -> List[CompareRow]:
        """``asv compare BASE HEAD --factor F``, parsed into rows."""
        output = self.asv("compare", base, head, "--factor", str(factor), "--machine", self.machine)
        rows = []
        for line in output.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[4].startswith("benchmarks."):
                rows.append(CompareRow(cells[0], cells[1], cells[2], cells[3], cells[4]))
            elif len(cells) == 4 and cells[3].startswith("benchmarks."):
                rows.append(CompareRow("", *cells))
        return rows

    def results(self, commit: str):
        """asv Results objects of ``commit`` on this workspace's machine."""
        from asv.results import iter_results_for_machine_and_hash
        return list(iter_results_for_machine_and_hash(str(self.results_dir), self.machine, commit))

    def values(self, commit: str) -> Dict[str, dict]:
        """name -> {value, stats, samples, key} for every result of ``commit``."""
        from asv.commands.compare import unroll_result
        out = {}
        for result in self.results(commit):
            for key in result.get_all_result_keys():
                params = result.get_result_params(key)
                unrolled = unroll_result(key, params, result.get_result_value(key, params),
                                         result.get_result_stats(key, params),
                                         result.get_result_samples(key, params))
                for name, value, stats, samples in unrolled:
                    out[name] = dict(value=value, stats=stats, samples=samples, key=key)
        return out

    def durations(self, commit: str) -> Dict[str, float]:
        """benchmark key -> seconds asv spent on it (all its parameter sets and rounds)."""
        out: Dict[str, float] = {}
        for result in self.results(commit):
            out.update({k: v for k, v in result.duration.items() if v is not None})
        return out

    def forget(self, commit: str) -> None:
        for result in self.results(commit):
            result.rm(str(self.results_dir))


def measured(values: Dict[str, dict], method: str = "time_op") -> Dict[Cell, dict]:
    """Cell -> asv's entry, for results of ``method`` that ran (not n/a, not failed)."""
    out = {}
    for name, entry in values.items():
        bench, cell = split_name(name)
        if bench.endswith(f".{method}") and entry["value"] is not None and entry["value"] == entry["value"]:
            out[cell] = dict(entry, name=name, benchmark=bench)
    return out
