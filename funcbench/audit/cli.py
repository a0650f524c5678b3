"""``python -m funcbench.audit``: parse the arguments, run the parts, write audit.md/audit.json."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from funcbench.results import asv_results, result_rows
from funcbench.catalogue import config, registry
from funcbench.fleet.asv_driver import Workspace, git_hash, load_avg
from funcbench.measurement.process import steady_allocator
from funcbench.audit import profiles as explain_audit, reference, runs, stats
from funcbench.audit.load import neighbours
from funcbench.audit.markdown import markdown

PARTS = ("fidelity", "clocks", "noise", "sensitivity", "cost", "interleave", "explain", "gpu")
MACHINE = "funcbench-audit"
DEFAULT_FACTORS = (1.0, 1.05, 1.1, 1.25, 1.5)  # 1.0: the control
# One cell of the light tier and one of the medium tier.
DEFAULT_SENSITIVITY_CELLS = ("multiheadattn:vjp:autograd", "transformer:vjp:autograd")
# metric -> (method, asv compare --factor, FUNCBENCH_CLOCKS of the runs): the CPU clock's runs
# time with the wall clock too, so that both are reported side by side.
METHODS = {"time": ("time_op", 1.1, "wall"), "cpu": ("time_cpu_op", 1.02, "wall,cpu"),
           "instructions": ("track_instructions", 1.01, None)}
INSTRUCTION_GATE = 1.005  # funcbench compare --fail-above, beside asv's --factor 1.01
LOAD_SIDES = ("after", "both")  # --load during the after side's runs only, or during every run


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = Parser(prog="python -m funcbench.audit", description="Measure the asv suite: fidelity, noise, "
                                                                   "sensitivity, cost, GPU timing.")
    parser.add_argument("--part", default="all", help=f"all, or a comma-separated list of: {', '.join(PARTS)}")
    parser.add_argument("--bench", action="append", default=[],
                        help="asv --bench regex for fidelity/noise/cost runs (default: the whole suite)")
    parser.add_argument("--out", help="folder for audit.json, audit.md and the asv work files "
                                      "(default: a temporary folder, removed)")
    parser.add_argument("--device", default=config.get(config.DEVICE))
    parser.add_argument("--preset", default=config.get(config.PRESET))
    parser.add_argument("--cells", default=",".join(DEFAULT_SENSITIVITY_CELLS),
                        help="sensitivity cells, model:task:api, comma separated")
    parser.add_argument("--factors", default=",".join(map(str, DEFAULT_FACTORS)))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--metric", choices=tuple(METHODS), default="time",
                        help="noise, sensitivity, interleave: time_op (wall clock) with asv compare --factor 1.1, "
                             "time_cpu_op (CPU clock; wall measured alongside) with 1.02, or track_instructions "
                             "with 1.01")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="noise, sensitivity, interleave: N neighbour processes each keeping a core busy")
    parser.add_argument("--load-sides", choices=LOAD_SIDES, default="after",
                        help="with --load: during the after side's runs only (default; one side quiet, one loaded) "
                             "or during every run")
    parser.add_argument("--no-quick", action="store_true", help="cost: skip the asv run --quick timing")
    here = Path(sys.executable).parent
    parser.add_argument("--python-a", default=str(here / "python"),
                        help="interleave: one side's python (default: this one, as .../python)")
    parser.add_argument("--python-b", default=str(here / "python3"),
                        help="interleave: the other side's (default: the same build, as .../python3)")
    parser.add_argument("--rounds", type=int, default=6, help="interleave: one-round runs per side (default 6)")
    parser.add_argument("--explain-cells", default=",".join(explain_audit.DEFAULT_CELLS),
                        help="explain: two or more cells, model:task:api, each counted with every injected op")
    args = parser.parse_args(argv)
    args.parts = PARTS if args.part == "all" else tuple(p for p in PARTS if p in args.part.split(","))
    unknown = set(args.part.split(",")) - set(PARTS) - {"all"}
    if unknown or not args.parts:
        parser.error(f"--part: choose all or from {', '.join(PARTS)} (got {args.part!r})")
    if args.load < 0:
        parser.error(f"--load must be 0 or more neighbour processes, got {args.load}")
    try:
        args.cell_list = [registry.Cell.parse(c) for c in args.cells.split(",") if c]
        args.factor_list = [float(f) for f in args.factors.split(",")]
        args.explain_cell_list = [registry.Cell.parse(c) for c in args.explain_cells.split(",") if c]
    except (registry.UnknownName, ValueError) as error:
        parser.error(str(error))
    if "explain" in args.parts and len(set(args.explain_cell_list)) < 2:
        parser.error("--explain-cells: two or more cells (each is counted clean beside another's injection)")
    if args.reps < 1:
        parser.error(f"--reps must be 1 or more, got {args.reps}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    parts = args.parts
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="funcbench-audit-"))
    out.mkdir(parents=True, exist_ok=True)
    base, head = git_hash("HEAD~1"), git_hash("HEAD")
    # The torch.utils.benchmark reference runs in this process: time it under the suite's
    # allocator policy, or fidelity would compare two allocators rather than two harnesses.
    steady_allocator()
    report: dict = dict(commit=head, device=args.device, preset=args.preset, parts=list(parts),
                        started=time.strftime("%Y-%m-%d %H:%M:%S"), load_start=load_avg())
    bench_args = "".join(f" --bench '{b}'" for b in args.bench)
    load_args = f" --load {args.load} --load-sides {args.load_sides}" if args.load else ""
    command = (f"python -m funcbench.audit --part {args.part}{bench_args} --device {args.device} "
               f"--metric {args.metric}{load_args}")
    method, compare_factor, clocks = METHODS[args.metric]
    run_env = {config.CLOCKS.name: clocks} if clocks else {}
    report["load"] = dict(neighbours=args.load, sides=args.load_sides if args.load else None)

    def loaded(after_side: bool):
        """Neighbours for a run of the after side, or of either with --load-sides both."""
        return neighbours(args.load if after_side or args.load_sides == "both" else 0)

    def log(message: str) -> None:
        print(message, flush=True)

    def results_of(commit: str):
        return result_rows.commit_rows(str(ws.results_dir), ws.machine, commit)

    def save() -> None:
        (out / "audit.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "audit.md").write_text(markdown(report))

    ws: Optional[Workspace] = None
    if set(parts) & {"fidelity", "noise", "sensitivity", "cost", "interleave"}:
        ws = Workspace(out / "asv", device=args.device, preset=args.preset, machine=MACHINE)

    def timed_run(commit: str, after_side: bool):
        log(f"asv run of {commit[:8]} (bench: {args.bench or 'whole suite'}), load {load_avg()}")
        with loaded(after_side=after_side):
            done = ws.run(commit, args.bench, env=run_env)
        log(f"  {done.wall_s:.0f} s")
        return done

    run_a = run_b = None
    if "noise" in parts or "cost" in parts:
        run_a = timed_run(base, after_side=False)
    if "fidelity" in parts:
        if run_a is None:
            run_a = ws.run(base, args.bench or ["time_op"])
            log(f"asv run for fidelity: {run_a.wall_s:.0f} s")
        times = result_rows.measured_cells(results_of(base))
        log(f"fidelity: timing {len(times)} cells with torch.utils.benchmark, load {load_avg()}")
        rows = reference.fidelity_rows(times, args.device, args.preset)
        report["fidelity"] = dict(command=command, asv_wall_s=run_a.wall_s, harness=reference.harness_overhead_us(),
                                  load=f"{run_a.load_before} -> {load_avg()}", rows=rows,
                                  summary=stats.fidelity_summary(rows))
        save()
    if "clocks" in parts:
        cells = registry.cells(("autograd", "func", "compile"))
        log(f"clocks: CPU / wall per call of {len(cells)} default cells, load {load_avg()}")
        rows = reference.clock_rows(cells, args.device, args.preset)
        report["clocks"] = dict(command=f"python -m funcbench.audit --part clocks --device {args.device}",
                                load=f"{report['load_start']} -> {load_avg()}", rows=rows,
                                summary=stats.clock_summary(rows))
        save()
    if "noise" in parts or "cost" in parts:
        run_b = timed_run(head, after_side=True)
        if "fidelity" in report:
            report["fidelity"]["bracketed"] = stats.bracket_fidelity(report["fidelity"]["rows"],
                                                                     result_rows.measured_cells(results_of(head)))
            save()
    if "noise" in parts:
        marked = asv_results.mark_changes(results_of(base), results_of(head), compare_factor)
        report["noise"] = dict(command=command, wall_s=[run_a.wall_s, run_b.wall_s], factor=compare_factor,
                               load=f"{run_a.load_before} -> {run_a.load_after}; {run_b.load_before} -> "
                                    f"{run_b.load_after}",
                               summary=stats.noise_summary(marked),
                               instructions=stats.count_agreement(
                                   result_rows.measured_cells(results_of(base), "track_instructions"),
                                   result_rows.measured_cells(results_of(head), "track_instructions")),
                               flagged=[dict(mark=m.mark, ratio=f"{m.ratio:.3f}", name=m.name) for m in marked
                                        if m.mark in ("+", "-")])
        save()
    if "cost" in parts:
        runs_cost = {f"suite, {r.commit[:8]}": dict(dataclasses.asdict(r), **stats.cost_summary(
            results_of(r.commit), result_rows.durations(str(ws.results_dir), ws.machine, r.commit), r))
            for r in (run_a, run_b)}
        if not args.no_quick:
            log(f"asv run --quick, load {load_avg()}")
            quick = ws.run(head, args.bench, quick=True)
            runs_cost["--quick"] = dict(wall_s=quick.wall_s, load=f"{quick.load_before} -> {quick.load_after}")
            log(f"  {quick.wall_s:.0f} s")
        for r in runs_cost.values():
            r.pop("output", None)
        report["cost"] = dict(command=command, runs=runs_cost)
        save()
    if "sensitivity" in parts:
        load0 = load_avg()
        rows = runs.sensitivity(ws, args.cell_list, args.factor_list, args.reps, base, head, method=method,
                                compare_factor=compare_factor, log=log, env=run_env, loaded=loaded,
                                gate=INSTRUCTION_GATE if args.metric == "instructions" else None)
        report["sensitivity"] = dict(
            command=f"python -m funcbench.audit --part sensitivity --metric {args.metric} --cells {args.cells} "
                    f"--factors {args.factors} --reps {args.reps}{load_args}",
            method=method, compare_factor=compare_factor,
            gate=INSTRUCTION_GATE if args.metric == "instructions" else None, load=f"{load0} -> {load_avg()}", rows=rows,
            smallest_reliable=stats.smallest_reliable(rows))
        save()
    if "interleave" in parts:
        bench = args.bench or [rf"^benchmarks\.\w+\.{method}"]
        report["interleave"] = dict(
            command=f"python -m funcbench.audit --part interleave{bench_args} --rounds {args.rounds} "
                    f"--metric {args.metric}{load_args}",
            rounds=args.rounds, metric=args.metric,
            **runs.same_build_twice(ws, args.python_a, args.python_b, bench, args.rounds, log=log, env=run_env,
                                    metric=args.metric, loaded=loaded))
        save()
    if "explain" in parts:
        load0 = load_avg()
        cost = explain_audit.keeping_cost(args.preset, log=log)
        rows = explain_audit.injected_movers(args.explain_cell_list, args.preset, args.reps, log=log)
        report["explain"] = dict(command=f"python -m funcbench.audit --part explain --explain-cells {args.explain_cells} "
                                         f"--reps {args.reps}", load=f"{load0} -> {load_avg()}", cost=cost, rows=rows)
        save()
    if "gpu" in parts:
        result = reference.gpu_rows(args.device, args.preset, registry.cells())
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
