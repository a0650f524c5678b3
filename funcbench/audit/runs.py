"""The audit's experiments that drive asv (through funcbench.fleet.asv_driver) and read what it
recorded (through funcbench.results.result_rows and funcbench.results.asv_results)."""
from __future__ import annotations

import contextlib
import io
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.results import asv_results, result_rows
from funcbench import commands
from funcbench.catalogue import config
from funcbench.fleet import interleave
from funcbench.fleet.asv_driver import Asv, Workspace, bench_regex, git, load_avg
from funcbench.catalogue.registry import Cell
from funcbench.results.report import changes


def _quiet(after_side: bool):
    return contextlib.nullcontext()


def sensitivity(ws: Workspace, cells: Sequence[Cell], factors: Sequence[float], reps: int, base: str, head: str,
                method: str = "time_op", compare_factor: float = 1.1, env: Optional[Dict[str, str]] = None,
                gate: Optional[float] = None, log=print, loaded=_quiet) -> List[dict]:
    """Per cell and repetition: a base run, then one injected run per factor right after it,
    each compared with the base as ``asv compare --factor compare_factor`` marks it (asv's own
    test, asv_results.mark_changes); flagged = marked '+'. A fresh base per repetition keeps base
    and injected runs side by side in time (the machine's load drifts over minutes); factor 1.0
    is the control (nothing injected). With ``gate``, also ``funcbench compare --metric
    instructions --fail-above GATE`` of the same two runs; gated = it exits 1. ``loaded(after_side)``
    is the load (funcbench.audit.load.neighbours) around the base (False) and injected (True) runs."""
    found: Dict[Tuple[str, float], dict] = {}
    for cell in cells:
        regex = bench_regex(cell, method)
        if method == "track_instructions":  # count only this cell: one short valgrind run per asv run
            env = dict(env or {}, **{config.INSTRUCTIONS.name: str(cell)})
        for rep in range(reps):
            ws.forget(base)
            with loaded(False):
                ws.run(base, [regex], env=env)
            base_rows = result_rows.commit_rows(str(ws.results_dir), ws.machine, base)
            base_row = result_rows.measured_cells(base_rows, method).get(cell)
            for factor in factors:
                ws.forget(head)
                injected = dict(env or {})
                if factor != 1.0:
                    injected[config.INJECT_SLOWDOWN.name] = f"{cell}:{factor}"
                with loaded(True):
                    ws.run(head, [regex], env=injected)
                head_rows = result_rows.commit_rows(str(ws.results_dir), ws.machine, head)
                marked = [m for m in asv_results.mark_changes(base_rows, head_rows, compare_factor)
                          if m.method == method and m.cell == cell and m.before is not None]
                entry = found.setdefault((str(cell), factor), dict(cell=str(cell), factor=factor, flagged=0, reps=0,
                                                                   ratios=[], base=[], loads=[], gated=0))
                if gate is not None:
                    entry["gated"] += _gate_fails(ws, base, head, gate)
                entry["reps"] += 1
                entry["base"].append(base_row.value if base_row else math.nan)
                entry["loads"].append(round(os.getloadavg()[0], 2))
                if marked:
                    entry["flagged"] += marked[0].mark == "+"
                    entry["ratios"].append(f"{marked[0].ratio:.4f}" if marked[0].ratio is not None else "n/a")
                log(f"  sensitivity {cell} x{factor} rep {rep + 1}: {marked[0].mark if marked else '?'} "
                    f"{entry['ratios'][-1] if marked else ''}, load {load_avg()}")
        ws.forget(head)
    return list(found.values())


def _gate_fails(ws: Workspace, base: str, head: str, limit: float) -> bool:
    """Whether ``funcbench compare --metric instructions --fail-above LIMIT`` fails head against base."""
    argv = ["compare", "--metric", "instructions", "--before", f"{asv_results.SELECTION_PREFIX}{base}@{ws.machine}",
            "--after", f"{asv_results.SELECTION_PREFIX}{head}@{ws.machine}", "--results-dir", str(ws.results_dir),
            "--fail-above", str(limit)]
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        code = commands.main(argv)
    if code not in (0, 1):
        raise RuntimeError(f"funcbench compare failed ({code}): {errors.getvalue().strip()[-2000:]}")
    return code == 1


def same_build_twice(ws: Workspace, python_a: str, python_b: str, bench: Sequence[str], rounds: int,
                     factor: float = 1.05, log=print, env: Optional[Dict[str, str]] = None, metric: str = "time",
                     loaded=_quiet) -> dict:
    """One torch build as two existing environments (two paths to one python), timed twice: two
    asv runs one after the other (before `funcbench interleave`), then interleaved. Every row
    asv's test calls significant is a false flag; the goal is none beyond ``factor``. With
    ``loaded``, the second python's runs (or all runs) have neighbours. Both clocks are judged
    where the runs timed with both."""
    commit = git("rev-parse", "HEAD")
    sides = [interleave.resolve(p) for p in (python_a, python_b)]
    out = {}
    for label in ("separate", "interleaved"):
        ws.forget(commit)
        log(f"same build twice, {label}, load {load_avg()}")
        started = load_avg()
        if label == "separate":
            for index, side in enumerate(sides):
                ws.python = side.python
                with loaded(index == 1):
                    ws.run(commit, bench, env=env)
        else:
            asv = Asv(ws.conf, ws.machine, ws.home, ws.env(env), log=log)
            interleave.interleave(sides[0], sides[1], asv, bench, rounds, log=log,
                                  around=lambda side: loaded(side == sides[1]))
        metrics = [metric] + (["time"] if metric == "cpu" else [])
        out[label] = dict(load=f"{started} -> {load_avg()}",
                          **{m: _false_flags(ws, commit, sides, factor, m) for m in metrics})
    return out


def _false_flags(ws: Workspace, commit: str, sides, factor: float, metric: str) -> dict:
    """Rows asv's test calls significant between two identical sides, and how far the ratios go."""
    before, after = (asv_results.load(str(ws.results_dir), commit, ws.machine, side.env_name, metric)[0]
                     for side in sides)
    rows = changes(before.report, after.report, asv_results.not_significant(before, after), metric, statistics=True)
    judged = [r for r in rows if r.ratio is not None]
    flagged = [r for r in judged if r.significant]
    beyond = [r for r in flagged if max(r.ratio, 1 / r.ratio) > factor]
    ratios = sorted(abs(r.ratio - 1) for r in judged)
    worst = max(judged, key=lambda r: max(r.ratio, 1 / r.ratio), default=None)
    return dict(rows=len(judged), significant=len(flagged), significant_beyond=len(beyond), factor=factor,
                median_abs_change=ratios[len(ratios) // 2] if ratios else None,
                beyond=[f"{r.label} {r.ratio:.3f}" for r in beyond],
                any_beyond_1_03=sum(max(r.ratio, 1 / r.ratio) > 1.03 for r in judged),
                any_beyond_1_05=sum(max(r.ratio, 1 / r.ratio) > 1.05 for r in judged),
                worst=f"{worst.label} {worst.ratio:.3f}" if worst else None)
