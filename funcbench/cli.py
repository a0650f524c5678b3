"""funcbench's command line: list, run, compare (and report, from asv results).

Bad input ends in one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from . import (asv_results, config, cost_table, dashboard, engines, environment, interleave, main_job, merge, policy,
               reference_costs, registry, results_environment, results_files, shard_plan, shard_run, tools)
from .asv_driver import Asv, AsvError
from .config import ORIGINAL_PRESET, PRESETS, UnknownName
from .measurement import CLOCK_WORDS, METRICS, TIME_METRICS, Measurement
from .models.common import DEFAULT_SEED
from .process import allocator_is_pinned, steady_allocator
from .registry import MODELS, Cell, Unsupported
from .report import Report, ReportFormatError, changes, compare, compile_summary, over_limit, summary
from .tasks import APIS, EAGER_APIS, TASKS, assert_consistent, task_label
from .timing import time_calls

EXIT_USAGE = 2  # argparse's own code for bad input
# The metrics whose gate (--fail-above) trusts only sides measured interleaved: time by either
# clock. Identical sides a few minutes apart on the 2-core VM under load differed by up to 1.32x
# by the CPU clock (2.26x by the wall clock); interleaved, by up to 1.21x (docs/cpu-time.md).
INTERLEAVED_ONLY = frozenset({"time", "cpu"})
# The original's default was 10 threads; more threads than cores only adds contention.
DEFAULT_NUM_THREADS = min(10, os.cpu_count() or 1)


class UsageError(Exception):
    """Bad input found after parsing: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# ------------------------------------------------------------------------------ list


def cmd_list(args) -> int:
    if args.asv_bench:
        try:
            print(policy.selection_regex(config.RunSettings.from_environ()))
        except config.SettingError as error:
            raise UsageError(str(error)) from None
        return 0
    print(f"presets: {', '.join(PRESETS)} ({ORIGINAL_PRESET} = the original sizes)")
    print(f"apis: {', '.join(APIS)}")
    for model in MODELS:
        reason = registry.unavailable_reason(model)
        print(f"\n{model}" + (f"  UNAVAILABLE: {reason}" if reason else ""))
        for api in APIS:
            defaults = registry.selected_tasks(model, api)
            slow = [t for t in registry.selected_tasks(model, api, run_slow_tasks=True) if t not in defaults]
            print(f"  {api:8} default: {', '.join(defaults) or '-'}"
                  + (f"; with --run-slow-tasks: {', '.join(slow)}" if slow else ""))
        skipped = {}
        for api in APIS:
            for task in TASKS:
                why = registry.unsupported_reason(model, task, api)
                if why:
                    skipped.setdefault(why, []).append(task_label(task, api))
        for why, tasks in skipped.items():
            print(f"  unsupported: {', '.join(tasks)} ({why})")
    return 0


# ------------------------------------------------------------------------------- run


def _filter_tokens(text: Optional[str], choices: Sequence[str], kind: str) -> Optional[str]:
    """The original's filters are substring tests of the whole string (so 'hessian_fwdrev'
    selects 'hessian' too): kept for compatibility. A filter that selects nothing is an error."""
    if text is None:
        return None
    if not any(name in text for name in choices):
        raise UsageError(f"--{kind}-filter {text!r} matches no {kind}; {kind}s: {', '.join(choices)}")
    return text


def pick_device(args) -> str:
    if args.device is not None:
        wanted = args.device
    elif args.gpu == -2:
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.gpu == -1:
        wanted = "cpu"
    elif args.gpu >= 0:
        wanted = f"cuda:{args.gpu}"
    else:
        raise UsageError(f"--gpu {args.gpu}: use -2 (auto), -1 (cpu) or a CUDA index")
    try:
        return str(registry.resolve_device(wanted))
    except (Unsupported, UnknownName) as error:
        raise UsageError(str(error)) from None


def planned_cells(args) -> List[Cell]:
    model_filter = _filter_tokens(args.model_filter, tuple(MODELS), "model")
    task_filter = _filter_tokens(args.task_filter, TASKS, "task")
    apis = {"both": EAGER_APIS, "all": APIS}.get(args.api, (args.api,))
    cells = [c for c in registry.cells(apis, args.run_slow_tasks)
             if (model_filter is None or c.model in model_filter) and (task_filter is None or c.task in task_filter)]
    return sorted(cells, key=registry.row_order)  # the report's rows, as the original ran them


def cmd_run(args) -> int:
    if args.num_iters < 1:
        raise UsageError(f"--num-iters must be at least 1, got {args.num_iters}")
    if args.num_threads < 1:
        raise UsageError(f"--num-threads must be at least 1, got {args.num_threads}")
    device = pick_device(args)
    cells = planned_cells(args)
    if any(cell.api == "compile" for cell in cells):
        why = tools.compile_unavailable_reason(device)
        if why:
            raise UsageError(f"--api {args.api}: {why}")
    torch.set_num_threads(args.num_threads)
    if args.malloc == "default" and allocator_is_pinned():
        raise UsageError("--malloc default: this process has pinned the allocator already; run funcbench in a fresh process")
    if args.malloc == "steady" and not steady_allocator():
        _stderr("funcbench: --malloc steady needs glibc; timing with this C library's default allocator")
        args.malloc = "default"
    _stderr(f"funcbench: {len(cells)} cells, preset {args.preset}, device {device}, torch {torch.__version__}, "
            f"{args.num_threads} threads, {args.num_iters} iterations")
    report, failures, results = Report(), [], {}
    started = time.perf_counter()
    for index, cell in enumerate(cells, start=1):
        model, task, api = cell
        if index > 1 and model != cells[index - 2].model:
            registry.forget_builds()  # one model's weights and activations in memory at a time
        prefix = f"[{index}/{len(cells)}] {model} {task_label(task, api)}"
        try:
            case = registry.prepare(model, task, api, device, args.preset, args.seed)
            result = case.run_checked()  # warm-up and correctness guard in one call
            if api == "func" and Cell(model, task, "autograd") in results:
                assert_consistent(task, results.pop(Cell(model, task, "autograd")), result)
            elif api == "autograd" and args.api == "both" and Cell(model, task, "func") in cells:
                results[cell] = result
            times = time_calls(case.run, args.num_iters, device)
        except Unsupported as error:
            _stderr(f"{prefix}: skipped: {error}")
            continue
        except Exception as error:  # one broken cell never aborts the rest
            failures.append(f"{model} {task_label(task, api)}")
            _stderr(f"{prefix}: FAILED: {type(error).__name__}: {_first_line(error)}")
            continue
        key = report.add(Measurement.from_samples(cell, args.preset, device, "time", times))
        _stderr(f"{prefix}: mean {report.rows[key][0]:.6f} s ({time.perf_counter() - started:.0f} s elapsed)")
    text = report.to_markdown()
    print(f"Results for preset {args.preset} on {device} ({platform.node()}), torch {torch.__version__}, "
          f"{args.num_threads} threads, {args.num_iters} iterations, seed {args.seed}, malloc {args.malloc}:\n")
    print(text)
    if args.output:
        _write(args.output, text)
    if failures:
        _stderr(f"funcbench: {len(failures)} cell(s) failed: {', '.join(failures)}")
        return 1
    return 0


# --------------------------------------------------------------------------- compare


def read_report(path: str) -> Report:
    try:
        with open(path) as handle:
            return Report.from_markdown(handle.read(), source=path)
    except OSError as error:
        raise UsageError(f"cannot read report {path!r}: {error.strerror}") from None
    except ReportFormatError as error:
        raise UsageError(str(error)) from None


def load_side(selection: str, args):
    """One side of a comparison: a report file, or an asv selection asv:COMMIT[@MACHINE][/ENV]
    of --results-dir (an asv_results.AsvSide, which carries asv's statistics too)."""
    if not asv_results.is_selection(selection):
        return read_report(selection)
    try:
        side, notes = asv_results.load_selection(selection, args.results_dir, args.metric)
    except results_files.SelectionError as error:
        raise UsageError(f"{selection}: {error}") from None
    side.selection, side.notes = selection, notes  # said by _report once both sides loaded (errors stay one line)
    return side


def cmd_compare(args) -> int:
    if args.fail_above is not None and args.fail_above <= 0:
        raise UsageError(f"--fail-above must be a positive ratio (after / before), got {args.fail_above}")
    before = load_side(args.before, args)
    # No --metric: the before side's time (wall where it has wall-clock results, else CPU time).
    args.metric = args.metric or (before.metric if isinstance(before, asv_results.AsvSide) else "time")
    after = load_side(args.after, args)
    both_asv = all(isinstance(side, asv_results.AsvSide) for side in (before, after))
    with_statistics = both_asv and args.metric in TIME_METRICS
    if args.fail_above is not None and args.metric in TIME_METRICS:
        if not with_statistics:
            raise UsageError(f"--fail-above on {args.metric} needs two asv sides (asv:...) run with --record-samples: "
                             "a report file has no statistics to tell a change from noise")
        if args.metric in INTERLEAVED_ONLY and not _interleaved(before, after, args.results_dir):
            raise UsageError(f"--fail-above on {args.metric} trusts only sides measured interleaved; {args.before} and "
                             f"{args.after} were not: run `funcbench interleave` (or gate on --metric instructions)")
    not_significant = asv_results.not_significant(before, after)
    before_report, after_report = _report(before), _report(after)
    differences = _environment_differences(before, after, args.results_dir) if both_asv else []
    for line in environment.describe(differences) if both_asv else []:
        _stderr(f"funcbench compare ({args.metric}): {line}")
    text = compare(before_report, after_report, not_significant=not_significant)
    print(text)
    if args.output:
        _write(args.output, text)
    rows = changes(before_report, after_report, not_significant, args.metric, with_statistics)
    others = [d for d in differences if not d.torch_build]
    for number, line in enumerate(summary(rows)):
        if number == 0 and others:
            line += f"; the sides differ in {len(others)} thing(s) besides the torch build (above)"
        _stderr(f"funcbench compare ({args.metric}): {line}")
    if args.fail_above is None:
        return 0
    failing = over_limit(rows, args.fail_above, args.metric)
    for row in failing:
        _stderr(f"funcbench compare: FAIL {row.label}: {row.ratio:.4f} x the before side's {args.metric} "
                f"(limit {args.fail_above})")
    return 1 if failing else 0


def _environment_differences(before, after, results_dir: str) -> List[environment.Difference]:
    """What differs between the sides' environments, each side's facts said first (stderr)."""
    prints = []
    for label, side in (("before", before), ("after", after)):
        facts = results_environment.fingerprint(side.source, results_dir)
        brief = ", ".join(f"{what} {facts.get(key)}" for key, what in
                          (("torch", "torch"), ("torch_git", "git"), ("python", "python"), ("python_home", "from"),
                           ("asv_machine", "machine")) if facts.get(key))
        _stderr(f"funcbench compare: {label}: {brief or 'no facts'} ({facts.source})")
        prints.append(facts)
    return environment.differences(*prints)


def _interleaved(before, after, results_dir: str) -> bool:
    """Whether `funcbench interleave` measured the two asv sides together (its manifest says)."""
    a, b = before.source, after.source
    return a.machine == b.machine and interleave.is_interleaved(
        results_dir, a.machine, (a.commit, a.env_name), (b.commit, b.env_name))


def cmd_interleave(args) -> int:
    """Run both sides interleaved (funcbench/interleave.py), then compare them like `compare`,
    once per clock the runs timed with."""
    try:
        asv = Asv(args.config, args.machine, log=_stderr)
        before, after = interleave.resolve(args.before, asv.repo), interleave.resolve(args.after, asv.repo)
        if args.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {args.rounds}")
        interleave.check_sides(before, after)
        for line in interleave.environment_differences(before, after, asv):
            _stderr(f"funcbench interleave: {line}")
        asv.register_machine()
        entries = interleave.interleave(before, after, asv, args.bench or interleave.DEFAULT_BENCH, args.rounds,
                                        log=_stderr)
    except (interleave.InterleaveError, AsvError, environment.ProbeFailed) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    code = 0
    for entry in entries:
        (commit_b, env_b), (commit_a, env_a) = entry["sides"]
        before_side = f"{asv_results.SELECTION_PREFIX}{commit_b}@{args.machine}/{env_b}"
        metrics = [m for m in TIME_METRICS if _has_rows(before_side, str(asv.results_dir), m)]
        for metric in metrics:
            output = args.output
            if output and len(metrics) > 1:  # one table per clock, none written over
                stem, dot, suffix = output.rpartition(".")
                output = f"{stem}.{metric}.{suffix}" if dot else f"{output}.{metric}"
            compare_args = argparse.Namespace(
                before=before_side, after=f"{asv_results.SELECTION_PREFIX}{commit_a}@{args.machine}/{env_a}",
                results_dir=str(asv.results_dir), metric=metric, fail_above=args.fail_above, output=output)
            code = max(code, cmd_compare(compare_args))
    return code


def _has_rows(selection: str, results_dir: str, metric: str) -> bool:
    try:
        return bool(asv_results.load_selection(selection, results_dir, metric)[0].report.rows)
    except results_files.SelectionError:  # no results of this clock at all
        return False


def cmd_shard(args) -> int:
    """One shard of an asv run (funcbench/shard_run.py), or every shard's plan with --print-plan."""
    try:
        spec = engines.shard_spec(args.spec, os.environ, args.shards)
        run_args = shard_run.read_run_args(args.asv_args)
        work = shard_plan.items(config.RunSettings.from_environ(), run_args.bench)
        if not work:
            raise UsageError(f"nothing to shard: the asv run's --bench {' '.join(run_args.bench) or '(none)'} selects "
                             f"no parameter set this run measures")
        the_plan = shard_plan.plan(work, spec.count, cost_table.read(args.costs)[0])
        if args.print_plan:
            print(the_plan.describe())
            return 0
        if not args.results_dir:
            raise UsageError("--results-dir DIR is needed (a folder of this shard's own, outside asv's results/)")
        return shard_run.run(spec, the_plan, run_args, Path(args.results_dir), Path(args.config), log=_stderr)
    except (engines.ShardSpecError, shard_run.ShardError, cost_table.CostTableError, AsvError) as error:
        raise UsageError(str(error).splitlines()[0]) from None


def cmd_shard_costs(args) -> int:
    """The cost table shard plans read, from a reference run's asv results files."""
    paths = [Path(p) for p in args.results]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"no results file {', '.join(missing)}")
    try:
        table = reference_costs.costs_from_results(paths)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot read {', '.join(map(str, paths))}: {error}") from None
    if args.update:
        try:
            written = cost_table.update(table, paths, Path(args.output), main_job.calibration_seconds())
        except cost_table.CostTableError as error:
            raise UsageError(str(error)) from None
    else:
        written = cost_table.write(table, paths, Path(args.output), main_job.calibration_seconds())
    _stderr(f"funcbench shard-costs: {len(table)} parameter sets, {sum(table.values()):.0f} s in all, "
            f"{'added to' if args.update else 'written to'} {written}")
    return 0


def cmd_main_job(args) -> int:
    """dev.py dashboard's plan: the asv runs that fit in --seconds-left, as JSON on stdout."""
    try:
        costs, reference = cost_table.read(Path(args.costs))
        speed = main_job.machine_speed(reference)
        runs, left_out = main_job.main_job(config.RunSettings.from_environ(), args.seconds_left, costs, speed,
                                           done=args.done)
    except (cost_table.CostTableError, main_job.MainJobError, config.SettingError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps(dict(speed=round(speed, 3), runs=[dataclasses.asdict(r) for r in runs],
                          left_out=[dataclasses.asdict(r) for r in left_out])))
    return 0


def _report(side) -> Report:
    """The table of a side; an asv side says on stderr which results file it read."""
    if not isinstance(side, asv_results.AsvSide):
        return side
    _stderr(f"{side.selection} = {side.source.describe()}" + "".join(f"; {note}" for note in side.notes))
    return side.report


# ---------------------------------------------------------------------------- report


def cmd_report(args) -> int:
    """The original report table of one asv results file (see funcbench/asv_results.py)."""
    try:
        if args.list:
            print(asv_results.listing(args.results_dir))
            return 0
        side, notes = asv_results.load(args.results_dir, args.commit, args.machine, args.environment, args.metric)
        if args.compile_summary:
            compiled, _ = asv_results.load(args.results_dir, side.source.commit, side.source.machine,
                                           side.source.env_name, "compile_seconds")
    except results_files.SelectionError as error:
        raise UsageError(str(error)) from None
    if args.compile_summary:
        text = compile_summary(side.report, compiled.report)
        print(f"torch.compile against eager torch.func, {side.describe()} (medians of asv's samples, "
              f"{CLOCK_WORDS[side.metric]}):\n")
        print(text)
        if args.output:
            _write(args.output, text)
        return 0
    for note in notes:
        _stderr(f"funcbench report: {note}")
    if side.missing:
        _stderr(f"funcbench report: {len(side.missing)} benchmark(s) failed in asv: {', '.join(side.missing)}")
    text = side.report.to_markdown()
    print(asv_results.heading(side) + "\n")
    print(text)
    if args.output:
        _write(args.output, text)
    return 0


# ----------------------------------------------------------------------------- glue


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError as error:
        raise UsageError(f"cannot write {path!r}: {error.strerror}") from None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="funcbench", description="Benchmarks of torch.autograd.functional and torch.func.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    listing = commands.add_parser("list", help="models, presets, tasks per model and API, and what is unavailable")
    listing.add_argument("--asv-bench", action="store_true",
                         help="instead: the asv --bench regex that leaves out what this run's FUNCBENCH_* settings "
                              "make n/a by params alone (another device, an unused clock): the same results, sooner")

    run = commands.add_parser("run", help="time every selected (model, task, API) and print the report")
    run.add_argument("--output", help="also write the markdown report to this file")
    run.add_argument("--num-iters", type=int, default=10, help="timed calls per cell, after one warm-up (10)")
    run.add_argument("--gpu", type=int, default=-2, help="-2: CUDA if available (default), -1: CPU, N: cuda:N")
    run.add_argument("--device", help="cpu, cuda or cuda:N (overrides --gpu)")
    run.add_argument("--preset", choices=PRESETS, default=ORIGINAL_PRESET,
                     help=f"model sizes (default {ORIGINAL_PRESET} = the original's)")
    run.add_argument("--api", choices=(*APIS, "both", "all"), default="both",
                     help="autograd = torch.autograd.functional, func = torch.func, compile = torch.compile of "
                          "torch.func; both = autograd and func (default, the original's), all = the three")
    run.add_argument("--run-slow-tasks", action="store_true", help="every supported task, not only the defaults")
    run.add_argument("--model-filter", help="keep models whose name appears in this string (substring test)")
    run.add_argument("--task-filter", help="keep tasks whose name appears in this string (substring test)")
    run.add_argument("--num-threads", type=int, default=DEFAULT_NUM_THREADS,
                     help=f"torch CPU threads (default min(10, cores) = {DEFAULT_NUM_THREADS}; the original used 10)")
    run.add_argument("--malloc", choices=("steady", "default"), default="steady",
                     help="steady (default): glibc malloc thresholds pinned as in the asv suite, so multi-MB "
                          "activations are not page-faulted in anew on every call; default: glibc as configured")
    run.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of weights, inputs and v (default 0)")

    cmp = commands.add_parser("compare", help="the speedup table between two reports")
    cmp.add_argument("--before", required=True,
                     help="the baseline: a report file, or asv:COMMIT[@MACHINE][/ENV] from --results-dir")
    cmp.add_argument("--after", required=True,
                     help="the change: a report file, or asv:COMMIT[@MACHINE][/ENV] from --results-dir")
    cmp.add_argument("--output", help="also write the table to this file")
    cmp.add_argument("--results-dir", default="results", help="asv's results directory (default results)")
    cmp.add_argument("--metric", choices=METRICS,
                     help="time (wall clock: time_op, time_compiled_op), cpu (CPU clock: time_cpu_op, "
                          "time_cpu_compiled_op), instructions or compile_seconds of asv sides; default: time, or "
                          "cpu where the before side has no wall-clock results")
    cmp.add_argument("--fail-above", type=float, metavar="R",
                     help="exit 1 if a row's after / before exceeds R (time: significant rows only; "
                          "instructions: the plain ratio), naming each such row on stderr")

    inter = commands.add_parser("interleave", help="time two torch builds (pythons) or two commits interleaved, "
                                                   "then compare them")
    inter.add_argument("--before", required=True, help="the baseline: a python executable (a torch build) or a commit")
    inter.add_argument("--after", required=True, help="the change: a python executable or a commit")
    inter.add_argument("--rounds", type=int, default=6,
                       help="two pythons: alternating one-round runs per side, A B B A ... (default 6)")
    inter.add_argument("--bench", action="append", default=[],
                       help=f"asv --bench regex (default {interleave.DEFAULT_BENCH[0]!r}); repeatable")
    inter.add_argument("--machine", default=platform.node(), help="asv machine name (default: this host's name)")
    inter.add_argument("--config", default="asv.conf.json", help="asv.conf.json to use (default ./asv.conf.json)")
    inter.add_argument("--fail-above", type=float, metavar="R",
                       help="exit 1 if a significantly slower row's after / before exceeds R")
    inter.add_argument("--output", help="also write the speedup table to this file")

    rep = commands.add_parser("report", help="the report table of one asv results file (default: the newest)")
    rep.add_argument("--results-dir", default="results", help="asv's results directory (default results)")
    rep.add_argument("--commit", help="commit hash or prefix (default: the newest)")
    rep.add_argument("--machine", help="asv machine name (default: the newest results)")
    rep.add_argument("--environment", help="asv environment name, or a part only one has (default: the newest)")
    rep.add_argument("--list", action="store_true", help="list the commits, machines and environments instead")
    rep.add_argument("--metric", choices=METRICS,
                     help="time (wall clock), cpu (CPU clock), instructions (track_instructions) or compile_seconds "
                          "(track_compile_seconds); default: time, or cpu where the file has no wall-clock results")
    rep.add_argument("--compile-summary", action="store_true",
                     help="instead: per compiled cell, eager torch.func vs compiled time, speedup, compile seconds")
    rep.add_argument("--output", help="also write the markdown report to this file")

    sh = commands.add_parser("shard", usage="funcbench shard I/N|auto [options] -- ASV_RUN_ARGS...",
                             help="run one shard of an asv run (its arguments after --: a range such as HEAD^!, "
                                  "--machine, -E, --bench to narrow what is sharded), or print every shard's plan "
                                  "(docs/past-one-machine.md)")
    sh.add_argument("spec", help="I/N (1-based), or auto: read from the CI engine's variables (Slurm, Kubernetes, "
                                 "GitLab, CircleCI, AWS Batch, Buildkite)")
    sh.add_argument("--results-dir", help="this shard's asv results folder, outside asv's results/ (merge-results "
                                          "puts the shards together)")
    sh.add_argument("--shards", type=int, metavar="N", help="the number of shards where the engine has no count "
                                                            "variable (Kubernetes: the Job's completions); elsewhere a check")
    sh.add_argument("--print-plan", action="store_true", help="print every shard's parameter sets and estimated seconds")
    sh.add_argument("--config", default="asv.conf.json", help="asv.conf.json to copy (default ./asv.conf.json)")
    sh.add_argument("--costs", default=str(cost_table.COSTS), help="the cost table (default: the committed one)")

    costs = commands.add_parser("shard-costs", help="regenerate the shard cost table from a reference run")
    costs.add_argument("results", nargs="+", metavar="RESULTS_FILE",
                       help="asv results files of a reference run (asv run --record-samples)")
    costs.add_argument("--output", default=str(cost_table.COSTS), help="where to write it (default: the committed table)")
    costs.add_argument("--update", action="store_true",
                       help="keep the table's other parameter sets; add or replace only those these files measured "
                            "(a tier counted apart), rescaled to the table's machine speed")

    merge.add_arguments(commands.add_parser("merge-results", help="merge shards' results into one asv results tree"))

    dashboard.add_arguments(commands.add_parser("publish", help="asv publish, then a dashboard that opens with no "
                                                                "network (asv-tachyon's page and asv's own)"))

    job = commands.add_parser("main-job", help="the asv runs of dev.py dashboard that fit in its time (JSON)")
    job.add_argument("--seconds-left", type=float, required=True, help="what is left of the main job's time")
    job.add_argument("--costs", default=str(cost_table.COSTS), help="the cost table (default: the committed one)")
    job.add_argument("--done", action="append", default=[], metavar="PART",
                     help="a part already run (repeatable): the plan is of the others, in the time really left")
    return parser


COMMANDS = {"list": cmd_list, "run": cmd_run, "compare": cmd_compare, "report": cmd_report,
            "interleave": cmd_interleave, "shard": cmd_shard, "shard-costs": cmd_shard_costs, "merge-results": merge.run,
            "publish": dashboard.run,
            "main-job": cmd_main_job}


def main(argv: Optional[List[str]] = None) -> int:
    # torchvision/torchaudio imports warn "No CUDA runtime is found" on CPU-only machines.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # torch.func's jvp scripts a helper through the deprecated torch.jit.script: not ours to fix.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    # What follows "--" is asv's (funcbench shard ... -- ASV_RUN_ARGS): argparse would read its options as ours.
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.asv_args = rest
    try:
        return COMMANDS[args.command](args)
    except (UsageError, UnknownName) as error:
        print(f"funcbench {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("funcbench: interrupted", file=sys.stderr)
        return 130
