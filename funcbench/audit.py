"""Measure the harness: how faithful, noisy, sensitive and costly the asv suite is.

    python -m funcbench.audit [--part fidelity|noise|sensitivity|cost|gpu|all] [--bench REGEX]
                              [--out DIR] [--device cpu|cuda] [--preset small]

Everything runs asv itself on this working tree, without building an environment:
``asv run -E existing:<this python> --set-commit-hash <hash> --record-samples``, with a
temporary copy of asv.conf.json whose results_dir/html_dir point into the audit's work folder
(asv 0.6.6 has no ``--results-dir`` option), and a private HOME for asv's machine file, so the
repo's results/ and the user's ~/.asv-machine.json are never touched. Figures come from asv's
own tools: ``asv compare`` (its Mann-Whitney U test on recorded samples) for noise and
sensitivity, ``asv.results`` for values, samples and durations.

Parts (``--part all`` runs them in this order and shares runs between them):

- fidelity: asv's time_op median per cell / torch.utils.benchmark ``blocked_autorange`` median
  of the same op (funcbench.timing.benchmark_timer), measured in this process right after.
- noise: the same suite run twice, labelled as two commits with the same benchmark code
  (HEAD~1 and HEAD; ``existing`` runs the working tree either way), then ``asv compare
  --factor 1.1``: every '+' is a false regression.
- sensitivity: FUNCBENCH_INJECT_SLOWDOWN (test-only) slows one cell by known factors; each
  injected run is compared with a base run; the smallest factor flagged in every repetition.
- cost: wall time of one commit's suite (the noise runs), the share of it outside the timed
  samples (from asv's recorded samples and durations), and the wall time of ``asv run --quick``.
- gpu: CUDA events vs synchronised wall time per cell; says "no CUDA device here" on CPU.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("fidelity", "noise", "sensitivity", "cost", "gpu")
MACHINE = "funcbench-audit"
INJECT_VAR = "FUNCBENCH_INJECT_SLOWDOWN"
DEFAULT_FACTORS = (1.0, 1.05, 1.1, 1.25, 1.5)  # 1.0: the control
# One cell of the fast tier and one of the medium tier (benchmarks.MODEL_TIERS).
DEFAULT_SENSITIVITY_CELLS = ("multiheadattn:vjp:autograd", "transformer:vjp:autograd")
NAME_RE = re.compile(r"^(benchmarks\.\w+\.\w+)\((.*)\)$")


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f} (1/5 min, {os.cpu_count()} cores)"


def git_hash(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def load_conf(path: Path = ROOT / "asv.conf.json") -> dict:
    """asv.conf.json without its // comment lines (asv allows them, json does not)."""
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.strip().startswith("//"))
    return json.loads(text)


def split_name(name: str) -> Tuple[str, Tuple]:
    """'benchmarks.Fast.time_op('m', 't', 'a')' -> ('benchmarks.Fast.time_op', ('m', 't', 'a'))."""
    match = NAME_RE.match(name)
    if not match:
        return name, ()
    params = ast.literal_eval(f"({match.group(2)},)")
    # (model, task, api): the preset and device params are fixed by the run (FUNCBENCH_*), and
    # the other presets/devices are n/a, so the first three name a measured cell.
    return match.group(1), tuple(params)[:3]


def cell_label(params: Sequence) -> str:
    return ":".join(str(p) for p in params)


def bench_regex_for_cell(cell: str, kind: str = "time_op") -> str:
    model, task, api = cell.split(":")
    return rf"^benchmarks\.\w+\.{kind}\('{model}', '{task}', '{api}', "


# ----------------------------------------------------------------------------- asv plumbing


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

    def __init__(self, path: Path, device: str = "cpu", preset: str = "small"):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.home = self.path / "home"
        self.home.mkdir(exist_ok=True)
        self.results_dir = self.path / "results"
        self.device, self.preset = device, preset
        conf = load_conf()
        conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                    results_dir=str(self.results_dir), html_dir=str(self.path / "html"),
                    env_dir=str(self.path / "env"))
        self.conf = self.path / "asv.conf.json"
        self.conf.write_text(json.dumps(conf, indent=2))
        self.asv("machine", "--yes", "--machine", MACHINE)

    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = dict(os.environ, HOME=str(self.home), FUNCBENCH_DEVICE=self.device,
                   FUNCBENCH_PRESET=self.preset)
        env.pop(INJECT_VAR, None)  # never inherited: only the sensitivity part sets it
        env.update(extra or {})
        return env

    def asv(self, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 3600) -> str:
        cmd = [sys.executable, "-m", "asv", *args, "--config", str(self.conf)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=self.env(env),
                              timeout=timeout)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-4000:]}")
        return output

    def run(self, commit: str, bench: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
            quick: bool = False) -> Run:
        """``asv run -E existing:<python> --set-commit-hash COMMIT --record-samples``."""
        args = ["run", "-E", f"existing:{sys.executable}", "--machine", MACHINE, "--show-stderr"]
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
        output = self.asv("compare", base, head, "--factor", str(factor), "--machine", MACHINE)
        rows = []
        for line in output.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[4].startswith("benchmarks."):
                rows.append(CompareRow(cells[0], cells[1], cells[2], cells[3], cells[4]))
            elif len(cells) == 4 and cells[3].startswith("benchmarks."):
                rows.append(CompareRow("", *cells))
        return rows

    def results(self, commit: str):
        """asv Results objects of ``commit`` on the audit machine."""
        from asv.results import iter_results_for_machine_and_hash
        return list(iter_results_for_machine_and_hash(str(self.results_dir), MACHINE, commit))

    def values(self, commit: str) -> Dict[str, dict]:
        """name -> {value, stats, samples, duration, key, params} for every result of ``commit``."""
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
        """benchmark key -> seconds asv spent on it (all its parameter sets, both rounds)."""
        out: Dict[str, float] = {}
        for result in self.results(commit):
            out.update({k: v for k, v in result.duration.items() if v is not None})
        return out

    def forget(self, commit: str) -> None:
        for result in self.results(commit):
            result.rm(str(self.results_dir))


def time_op_results(values: Dict[str, dict]) -> Dict[Tuple, dict]:
    """(model, task, api) -> asv's entry, for time_op results that ran (not n/a, not failed)."""
    out = {}
    for name, entry in values.items():
        bench, params = split_name(name)
        if bench.endswith(".time_op") and entry["value"] is not None and entry["value"] == entry["value"]:
            out[params] = dict(entry, name=name, tier=bench.split(".")[1])
    return out


# ----------------------------------------------------------------------------- fidelity


def torch_medians(model: str, task: str, api: str, device: str, preset: str,
                  min_run_time: float = 0.5) -> Tuple[float, float]:
    """The op timed by torch.utils.benchmark, warmed up first: (blocked_autorange median,
    median of single-call ``Timer.timeit(1)`` measurements). blocked_autorange's median is a
    median of block means, so every preemption inside a block counts; the single-call median,
    like asv's median of single-call samples (number = 1), drops the preempted calls. On a
    quiet machine both agree; their gap is a measure of the load while auditing."""
    from funcbench import registry
    from funcbench.timing import benchmark_timer
    import torch

    torch.set_num_threads(suite_module().THREADS)  # fidelity compares harnesses, not thread counts
    case = registry.prepare(model, task, api, device=device, preset=preset)
    case.run_checked()
    timer = benchmark_timer(case.run)
    blocked = timer.blocked_autorange(min_run_time=min_run_time).median
    calls = max(5, min(200, int(min_run_time / max(blocked, 1e-6))))
    single = statistics.median(timer.timeit(1).median for _ in range(calls))
    return blocked, single


def fidelity_rows(asv_times: Dict[Tuple, dict], device: str, preset: str) -> List[dict]:
    rows = []
    for (model, task, api), entry in asv_times.items():
        blocked, single = torch_medians(model, task, api, device, preset)
        suite = entry["value"]
        rows.append(dict(cell=cell_label((model, task, api)), tier=entry["tier"], asv_s=suite,
                         torch_s=blocked, ratio=suite / blocked, overhead_us=(suite - blocked) * 1e6,
                         torch_single_s=single, ratio_single=suite / single,
                         samples=len(entry["samples"] or ()), load=load_avg()))
    return rows


def suite_module():
    """The asv benchmark module (its timing policy: THREADS, TIER_POLICIES, Cell)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import benchmarks as suite
    return suite


def harness_overhead_us(calls: int = 20000) -> dict:
    """What the suite adds to one timed sample, with a no-op op: the generated ``time_op``
    (cell attribute look-ups, the sync no-op on CPU, the injected-slowdown check) called the
    way asv_runner calls it (``timeit`` with number = 1 per sample), minus the bare no-op.
    Setup (the cached cell look-up) runs outside the timed sample, so it is not part of it."""
    import timeit

    suite = suite_module()

    class NoOp:
        def run(self):
            return None

    noop = NoOp()
    bench = suite.Fast()
    bench.cell = suite.Cell(case=noop, sync=lambda: None, clock=timeit.default_timer, first_call_s=0.0)
    params = ("ppl_simple_reg", "vjp", "autograd", "small", "cpu")

    def per_call(stmt) -> float:
        timer = timeit.Timer(stmt)
        return min(timer.timeit(1) for _ in range(calls))  # number = 1, as in the suite

    harness, bare = per_call(lambda: bench.time_op(*params)), per_call(noop.run)
    return dict(time_op_noop_us=harness * 1e6, bare_noop_us=bare * 1e6, overhead_us=(harness - bare) * 1e6)


def fidelity_summary(rows: List[dict]) -> dict:
    big = [r for r in rows if r["torch_s"] >= 1e-3]
    small = [r for r in rows if r["torch_s"] < 1e-3]
    return dict(cells=len(rows), cells_ge_1ms=len(big),
                in_goal_ge_1ms=sum(0.95 <= r["ratio"] <= 1.05 for r in big),
                in_goal_ge_1ms_single=sum(0.95 <= r["ratio_single"] <= 1.05 for r in big),
                median_ratio_single_ge_1ms=statistics.median([r["ratio_single"] for r in big]) if big else None,
                median_overhead_us_sub_ms_single=statistics.median(
                    [(r["asv_s"] - r["torch_single_s"]) * 1e6 for r in small]) if small else None,
                median_ratio_ge_1ms=statistics.median([r["ratio"] for r in big]) if big else None,
                cells_sub_ms=len(small),
                median_overhead_us_sub_ms=statistics.median([r["overhead_us"] for r in small]) if small else None)


def bracket_fidelity(rows: List[dict], asv_times_after: Dict[Tuple, dict]) -> dict:
    """Adds to each row the ratio of the geometric mean of the asv runs before and after the
    reference (torch is timed between them) to the reference: the VM's speed drifts by several
    per cent over minutes, and a reference timed only after one asv run reads that drift as
    harness error. Returns the summary of the bracketed ratios."""
    for row in rows:
        after = asv_times_after.get(tuple(row["cell"].split(":")))
        if after is not None:
            row["asv_after_s"] = after["value"]
            row["ratio_bracketed"] = math.sqrt(row["asv_s"] * after["value"]) / row["torch_s"]
    big = [r["ratio_bracketed"] for r in rows if "ratio_bracketed" in r and r["torch_s"] >= 1e-3]
    small = [(math.sqrt(r["asv_s"] * r["asv_after_s"]) - r["torch_s"]) * 1e6
             for r in rows if "ratio_bracketed" in r and r["torch_s"] < 1e-3]
    return dict(cells_ge_1ms=len(big), in_goal_ge_1ms=sum(0.95 <= x <= 1.05 for x in big),
                median_ratio_ge_1ms=statistics.median(big) if big else None,
                range_ge_1ms=(min(big), max(big)) if big else None, cells_sub_ms=len(small),
                median_overhead_us_sub_ms=statistics.median(small) if small else None)


# ----------------------------------------------------------------------------- noise / cost


def noise_summary(rows: List[CompareRow]) -> dict:
    by_kind: Dict[str, Dict[str, int]] = {}
    for row in rows:
        kind = split_name(row.name)[0].rsplit(".", 1)[-1]
        counts = by_kind.setdefault(kind, dict(compared=0, false_regressions=0, false_improvements=0,
                                               not_significant_beyond_factor=0, not_comparable=0))
        if row.mark == "x":  # benchmark versions differ: asv refuses to compare
            counts["not_comparable"] += 1
            continue
        if row.ratio in ("n/a", "") or row.mark == "!":
            continue
        counts["compared"] += 1
        counts["false_regressions"] += row.mark == "+"
        counts["false_improvements"] += row.mark == "-"
        counts["not_significant_beyond_factor"] += row.ratio.startswith("~")
    return by_kind


def cost_summary(ws: Workspace, run: Run) -> dict:
    """Wall time of one run and how much of it the timed samples account for."""
    values = ws.values(run.commit)
    durations = ws.durations(run.commit)
    sampled = 0.0
    per_tier: Dict[str, dict] = {}
    for name, entry in values.items():
        bench, _ = split_name(name)
        if not bench.endswith(".time_op") or not entry["samples"]:
            continue
        number = (entry["stats"] or {}).get("number", 1) or 1
        seconds = sum(entry["samples"]) * number
        sampled += seconds
        tier = per_tier.setdefault(bench.split(".")[1], dict(timed_s=0.0, asv_duration_s=0.0))
        tier["timed_s"] += seconds
    durations = {k: v for k, v in durations.items() if k.startswith("benchmarks.")}  # not '<build>'
    for key, seconds in durations.items():
        tier = per_tier.setdefault(key.split(".")[1], dict(timed_s=0.0, asv_duration_s=0.0))
        tier["asv_duration_s"] += seconds
    in_benchmarks = sum(durations.values())
    return dict(wall_s=run.wall_s, timed_samples_s=sampled, benchmark_durations_s=in_benchmarks,
                outside_samples_share=1 - sampled / run.wall_s if run.wall_s else None,
                outside_benchmarks_share=1 - in_benchmarks / run.wall_s if run.wall_s else None,
                per_tier=per_tier, load=f"{run.load_before} -> {run.load_after}")


# ----------------------------------------------------------------------------- sensitivity


def sensitivity(ws: Workspace, cells: Sequence[str], factors: Sequence[float], reps: int,
                base: str, head: str, log=print) -> List[dict]:
    """Per cell and repetition: a base run, then one injected run per factor right after it,
    each compared with the base by ``asv compare --factor 1.1``; flagged = asv marks it '+'.
    A fresh base per repetition keeps base and injected runs side by side in time (the
    machine's load drifts over minutes); factor 1.0 is the control (nothing injected)."""
    found: Dict[Tuple[str, float], dict] = {}
    for cell in cells:
        regex = bench_regex_for_cell(cell)
        for rep in range(reps):
            ws.forget(base)
            ws.run(base, [regex])
            base_values = time_op_results(ws.values(base))
            base_s = next(iter(base_values.values()))["value"] if base_values else math.nan
            for factor in factors:
                ws.forget(head)
                env = {INJECT_VAR: f"{cell}:{factor}"} if factor != 1.0 else None
                ws.run(head, [regex], env=env)
                row = [r for r in ws.compare(base, head, 1.1)
                       if split_name(r.name)[0].endswith(".time_op") and cell_label(split_name(r.name)[1]) == cell
                       and r.before != "n/a"]  # the other presets/devices of the cell are n/a
                entry = found.setdefault((cell, factor), dict(cell=cell, factor=factor, flagged=0, reps=0,
                                                              ratios=[], base_s=[], loads=[]))
                entry["reps"] += 1
                entry["base_s"].append(base_s)
                entry["loads"].append(round(os.getloadavg()[0], 2))
                if row:
                    entry["flagged"] += row[0].mark == "+"
                    entry["ratios"].append(row[0].ratio)
                log(f"  sensitivity {cell} x{factor} rep {rep + 1}: {row[0].mark if row else '?'} "
                    f"{row[0].ratio if row else ''}, load {load_avg()}")
        ws.forget(head)
    return list(found.values())


def smallest_reliable(rows: List[dict]) -> Dict[str, Optional[float]]:
    out: Dict[str, Optional[float]] = {}
    for cell in dict.fromkeys(r["cell"] for r in rows):
        # The smallest factor from which on every larger factor is flagged in every repetition
        # (the control, factor 1.0, never counts).
        found = None
        for row in sorted((r for r in rows if r["cell"] == cell and r["factor"] > 1.0), key=lambda r: -r["factor"]):
            if row["flagged"] == row["reps"]:
                found = row["factor"]
            else:
                break
        out[cell] = found
    return out


# ----------------------------------------------------------------------------- gpu


def cuda_events_vs_wall(case, iters: int = 20) -> Optional[dict]:
    """Median op time by CUDA events and by synchronised wall time; None without CUDA."""
    import torch

    if not torch.cuda.is_available() or torch.device(case.device).type != "cuda":
        return None
    case.run_checked()
    torch.cuda.synchronize(case.device)
    events, walls = [], []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(case.device)
        t0 = time.perf_counter()
        start.record()
        case.run()
        end.record()
        torch.cuda.synchronize(case.device)
        walls.append(time.perf_counter() - t0)
        events.append(start.elapsed_time(end) / 1e3)
    event_s, wall_s = statistics.median(events), statistics.median(walls)
    return dict(cell=cell_label((case.model, case.task, case.api)), events_s=event_s, wall_s=wall_s,
                wall_over_events=wall_s / event_s)


def gpu_part(device: str, preset: str, cells: Sequence[Tuple[str, str, str]]) -> Optional[List[dict]]:
    import torch
    from funcbench import registry

    if not torch.cuda.is_available():
        return None
    dev = device if device.startswith("cuda") else "cuda"
    rows = []
    for model, task, api in cells:
        try:
            case = registry.prepare(model, task, api, device=dev, preset=preset)
        except registry.Unsupported:
            continue
        rows.append(cuda_events_vs_wall(case))
    return rows


def default_cells() -> List[Tuple[str, str, str]]:
    from funcbench import registry
    from funcbench.tasks import APIS
    return [(m, t, a) for m in registry.MODELS for a in APIS for t in registry.selected_tasks(m, a)]


# ----------------------------------------------------------------------------- report


def _ms(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "n/a"
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def markdown(report: dict) -> str:
    lines = [f"Audit of {report['commit'][:8]} ({report['device']}, preset {report['preset']}), "
             f"started {report['started']}, load at start {report['load_start']}.", ""]
    if "fidelity" in report:
        f = report["fidelity"]
        lines += ["### Fidelity: asv time_op / torch.utils.benchmark", "",
                  f"`{f['command']}` (asv run: {f['asv_wall_s']:.0f} s, load {f['load']})", "",
                  "| cell | tier | asv median (ms) | torch blocked_autorange median (ms) | ratio | overhead (µs) "
                  "| torch timeit(1) median (ms) | ratio to it | asv samples | load (1 min) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sorted(f["rows"], key=lambda r: (r["tier"], r["cell"])):
            lines.append(f"| {r['cell']} | {r['tier']} | {_ms(r['asv_s'])} | {_ms(r['torch_s'])} | "
                         f"{r['ratio']:.3f} | {r['overhead_us']:+.0f} | {_ms(r['torch_single_s'])} | "
                         f"{r['ratio_single']:.3f} | {r['samples']} | {r['load'].split('/')[0]} |")
        s = f["summary"]
        med_ratio = "n/a" if s["median_ratio_ge_1ms"] is None else f"{s['median_ratio_ge_1ms']:.3f}"
        med_over = "n/a" if s["median_overhead_us_sub_ms"] is None else f"{s['median_overhead_us_sub_ms']:+.0f} µs"
        med_single = "n/a" if s["median_ratio_single_ge_1ms"] is None else f"{s['median_ratio_single_ge_1ms']:.3f}"
        over_single = "n/a" if s["median_overhead_us_sub_ms_single"] is None else f"{s['median_overhead_us_sub_ms_single']:+.0f} µs"
        lines += ["", f"Cells ≥ 1 ms: {s['in_goal_ge_1ms']}/{s['cells_ge_1ms']} within 0.95–1.05 of blocked_autorange "
                  f"(median ratio {med_ratio}), {s['in_goal_ge_1ms_single']}/{s['cells_ge_1ms']} of timeit(1) "
                  f"(median {med_single}); sub-ms cells: {s['cells_sub_ms']}, median overhead {med_over} "
                  f"vs blocked_autorange, {over_single} vs timeit(1).", ""]
        b = f.get("bracketed")
        if b and b["cells_ge_1ms"]:
            lo, hi = b["range_ge_1ms"]
            over = "n/a" if b["median_overhead_us_sub_ms"] is None else f"{b['median_overhead_us_sub_ms']:+.0f} µs"
            lines += [f"Bracketed (geometric mean of the asv runs before and after the reference, which "
                      f"cancels the machine's drift between them): cells ≥ 1 ms {b['in_goal_ge_1ms']}/"
                      f"{b['cells_ge_1ms']} within 0.95–1.05, median ratio {b['median_ratio_ge_1ms']:.3f}, "
                      f"range {lo:.3f}–{hi:.3f}; sub-ms cells median overhead {over}.", ""]
        h = f.get("harness")
        if h:
            lines += [f"Harness overhead per timed sample (no-op op, min of single calls): time_op "
                      f"{h['time_op_noop_us']:.2f} µs vs bare call {h['bare_noop_us']:.2f} µs = "
                      f"{h['overhead_us']:+.2f} µs.", ""]
    if "noise" in report:
        n = report["noise"]
        lines += ["### Noise: same code run twice, `asv compare --factor 1.1`", "",
                  f"`{n['command']}` (runs: {n['wall_s'][0]:.0f} s, {n['wall_s'][1]:.0f} s; load {n['load']})", "",
                  "| benchmark | compared | false regressions | false improvements | beyond 1.1× but not significant | not comparable (versions differ) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for kind, c in sorted(n["summary"].items()):
            lines.append(f"| {kind} | {c['compared']} | {c['false_regressions']} | {c['false_improvements']} | "
                         f"{c['not_significant_beyond_factor']} | {c['not_comparable']} |")
        if n["flagged"]:
            lines += ["", "Flagged: " + "; ".join(f"{r['mark']} {r['ratio']} {r['name']}" for r in n["flagged"])]
        lines.append("")
    if "sensitivity" in report:
        s = report["sensitivity"]
        lines += ["### Sensitivity: injected slowdown vs base, `asv compare --factor 1.1`", "",
                  f"`{s['command']}` (load {s['load']})", "",
                  "| cell | factor | flagged | asv ratios | base medians (ms) | load (1 min) |",
                  "|---|---:|---:|---|---|---|"]
        for r in s["rows"]:
            control = " (control)" if r["factor"] == 1.0 else ""
            lines.append(f"| {r['cell']} | {r['factor']}{control} | {r['flagged']}/{r['reps']} | "
                         f"{', '.join(r['ratios'])} | {', '.join(_ms(b) for b in r['base_s'])} | "
                         f"{', '.join(map(str, r['loads']))} |")
        lines += ["", "Smallest factor flagged in every repetition (and every larger one): " +
                  ", ".join(f"{c}: {v}" for c, v in s["smallest_reliable"].items()), ""]
    if "cost" in report:
        c = report["cost"]
        lines += ["### Cost", "", f"`{c['command']}`", "",
                  "| run | wall (s) | in benchmark processes (s) | timed samples (s) | outside samples | load |",
                  "|---|---:|---:|---:|---:|---|"]
        for label, r in c["runs"].items():
            lines.append(f"| {label} | {r['wall_s']:.0f} | {r.get('benchmark_durations_s', float('nan')):.0f} | "
                         f"{r.get('timed_samples_s', float('nan')):.1f} | "
                         f"{'n/a' if r.get('outside_samples_share') is None else format(r['outside_samples_share'], '.0%')} | "
                         f"{r['load']} |")
        for label, r in c["runs"].items():
            if r.get("per_tier"):
                lines += ["", f"Per tier ({label}): " + "; ".join(
                    f"{t}: {v['asv_duration_s']:.0f} s in asv, {v['timed_s']:.1f} s timed"
                    for t, v in sorted(r["per_tier"].items()))]
        lines.append("")
    if "gpu" in report:
        g = report["gpu"]
        lines += ["### GPU: CUDA events vs synchronised wall time", ""]
        if g is None:
            lines += ["no CUDA device here", ""]
        else:
            lines += ["| cell | events (ms) | wall (ms) | wall/events |", "|---|---:|---:|---:|"]
            lines += [f"| {r['cell']} | {_ms(r['events_s'])} | {_ms(r['wall_s'])} | {r['wall_over_events']:.3f} |"
                      for r in g]
            lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcbench.audit", description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all",
                        help=f"all, or a comma-separated list of: {', '.join(PARTS)}")
    parser.add_argument("--bench", action="append", default=[],
                        help="asv --bench regex for fidelity/noise/cost runs (default: the whole suite)")
    parser.add_argument("--out", help="folder for audit.json, audit.md and the asv work files "
                                      "(default: a temporary folder, removed)")
    parser.add_argument("--device", default=os.environ.get("FUNCBENCH_DEVICE", "cpu"))
    parser.add_argument("--preset", default=os.environ.get("FUNCBENCH_PRESET", "small"))
    parser.add_argument("--cells", default=",".join(DEFAULT_SENSITIVITY_CELLS),
                        help="sensitivity cells, model:task:api, comma separated")
    parser.add_argument("--factors", default=",".join(map(str, DEFAULT_FACTORS)))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-quick", action="store_true", help="cost: skip the asv run --quick timing")
    args = parser.parse_args(argv)
    parts = PARTS if args.part == "all" else tuple(p for p in PARTS if p in args.part.split(","))
    unknown = set(args.part.split(",")) - set(PARTS) - {"all"}
    if unknown or not parts:
        parser.error(f"--part: choose all or from {', '.join(PARTS)} (got {args.part!r})")

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="funcbench-audit-"))
    out.mkdir(parents=True, exist_ok=True)
    base, head = git_hash("HEAD~1"), git_hash("HEAD")
    # The torch.utils.benchmark reference runs in this process: time it under the suite's
    # allocator policy, or fidelity would compare two allocators rather than two harnesses.
    from funcbench.timing import steady_allocator
    steady_allocator()
    report: dict = dict(commit=head, device=args.device, preset=args.preset, parts=list(parts),
                        started=time.strftime("%Y-%m-%d %H:%M:%S"), load_start=load_avg())
    bench_args = "".join(f" --bench '{b}'" for b in args.bench)
    command = f"python -m funcbench.audit --part {args.part}{bench_args} --device {args.device}"

    def log(message: str) -> None:
        print(message, flush=True)

    def save() -> None:
        (out / "audit.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "audit.md").write_text(markdown(report))

    ws: Optional[Workspace] = None
    if set(parts) & {"fidelity", "noise", "sensitivity", "cost"}:
        ws = Workspace(out / "asv", device=args.device, preset=args.preset)

    run_a = run_b = None
    if "noise" in parts or "cost" in parts:
        log(f"asv run of {base[:8]} (bench: {args.bench or 'whole suite'}), load {load_avg()}")
        run_a = ws.run(base, args.bench)
        log(f"  {run_a.wall_s:.0f} s")
    if "fidelity" in parts:
        if run_a is None:
            run_a = ws.run(base, args.bench or ["time_op"])
            log(f"asv run for fidelity: {run_a.wall_s:.0f} s")
        times = time_op_results(ws.values(base))
        log(f"fidelity: timing {len(times)} cells with torch.utils.benchmark, load {load_avg()}")
        rows = fidelity_rows(times, args.device, args.preset)
        report["fidelity"] = dict(command=command, asv_wall_s=run_a.wall_s, harness=harness_overhead_us(),
                                  load=f"{run_a.load_before} -> {load_avg()}", rows=rows,
                                  summary=fidelity_summary(rows))
        save()
    if "noise" in parts or "cost" in parts:
        log(f"asv run of {head[:8]}, load {load_avg()}")
        run_b = ws.run(head, args.bench)
        log(f"  {run_b.wall_s:.0f} s")
        if "fidelity" in report:
            report["fidelity"]["bracketed"] = bracket_fidelity(report["fidelity"]["rows"],
                                                               time_op_results(ws.values(head)))
            save()
    if "noise" in parts:
        rows = ws.compare(base, head, 1.1)
        report["noise"] = dict(command=command, wall_s=[run_a.wall_s, run_b.wall_s],
                               load=f"{run_a.load_before} -> {run_b.load_after}",
                               summary=noise_summary(rows),
                               flagged=[dataclasses.asdict(r) for r in rows if r.mark in ("+", "-")])
        save()
    if "cost" in parts:
        runs = {f"suite, {base[:8]}": dict(dataclasses.asdict(run_a), **cost_summary(ws, run_a)),
                f"suite, {head[:8]}": dict(dataclasses.asdict(run_b), **cost_summary(ws, run_b))}
        if not args.no_quick:
            log(f"asv run --quick, load {load_avg()}")
            quick = ws.run(head, args.bench, quick=True)
            runs["--quick"] = dict(wall_s=quick.wall_s, load=f"{quick.load_before} -> {quick.load_after}")
            log(f"  {quick.wall_s:.0f} s")
        for r in runs.values():
            r.pop("output", None)
        report["cost"] = dict(command=command, runs=runs)
        save()
    if "sensitivity" in parts:
        cells = [c for c in args.cells.split(",") if c]
        factors = [float(f) for f in args.factors.split(",")]
        load0 = load_avg()
        rows = sensitivity(ws, cells, factors, args.reps, base, head, log=log)
        report["sensitivity"] = dict(
            command=f"python -m funcbench.audit --part sensitivity --cells {args.cells} "
                    f"--factors {args.factors} --reps {args.reps}",
            load=f"{load0} -> {load_avg()}", rows=rows, smallest_reliable=smallest_reliable(rows))
        save()
    if "gpu" in parts:
        result = gpu_part(args.device, args.preset, default_cells())
        if result is None:
            log("gpu: no CUDA device here")
        report["gpu"] = result
        save()

    save()
    print(markdown(report))
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    else:
        print(f"\nwritten: {out / 'audit.md'}, {out / 'audit.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
