"""``funcbench run``: time every selected (model, task, API) and print the original report."""
from __future__ import annotations

import os
import platform
import time
from typing import List, Optional, Sequence

import torch

from funcbench.measurement import cases
from funcbench.catalogue import registry, tools
from funcbench.catalogue.config import ORIGINAL_PRESET, PRESETS, UnknownName
from funcbench.results.values import Measurement
from funcbench.catalogue.models.common import DEFAULT_SEED
from funcbench.measurement.process import allocator_is_pinned, steady_allocator
from funcbench.catalogue.registry import MODELS, Cell, Unsupported
from funcbench.results.report import Report
from funcbench.catalogue.tasks import APIS, EAGER_APIS, TASKS, assert_consistent, task_label
from funcbench.util.text import first_line
from funcbench.measurement.timing import time_calls
from funcbench.commands.common import UsageError, stderr, write

NAME = "run"
HELP = "time every selected (model, task, API) and print the report"
# The original's default was 10 threads; more threads than cores only adds contention.
DEFAULT_NUM_THREADS = min(10, os.cpu_count() or 1)


def add_arguments(parser) -> None:
    parser.add_argument("--output", help="also write the markdown report to this file")
    parser.add_argument("--num-iters", type=int, default=10, help="timed calls per cell, after one warm-up (10)")
    parser.add_argument("--gpu", type=int, default=-2, help="-2: CUDA if available (default), -1: CPU, N: cuda:N")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (overrides --gpu)")
    parser.add_argument("--preset", choices=PRESETS, default=ORIGINAL_PRESET,
                        help=f"model sizes (default {ORIGINAL_PRESET} = the original's)")
    parser.add_argument("--api", choices=(*APIS, "both", "all"), default="both",
                        help="autograd = torch.autograd.functional, func = torch.func, compile = torch.compile of "
                             "torch.func; both = autograd and func (default, the original's), all = the three")
    parser.add_argument("--run-slow-tasks", action="store_true", help="every supported task, not only the defaults")
    parser.add_argument("--model-filter", help="keep models whose name appears in this string (substring test)")
    parser.add_argument("--task-filter", help="keep tasks whose name appears in this string (substring test)")
    parser.add_argument("--num-threads", type=int, default=DEFAULT_NUM_THREADS,
                        help=f"torch CPU threads (default min(10, cores) = {DEFAULT_NUM_THREADS}; "
                             "the original used 10)")
    parser.add_argument("--malloc", choices=("steady", "default"), default="steady",
                        help="steady (default): glibc malloc thresholds pinned as in the asv suite, so multi-MB "
                             "activations are not page-faulted in anew on every call; default: glibc as configured")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of weights, inputs and v (default 0)")


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
        return str(cases.resolve_device(wanted))
    except (Unsupported, UnknownName) as error:
        raise UsageError(str(error)) from None


def planned_cells(args) -> List[Cell]:
    model_filter = _filter_tokens(args.model_filter, tuple(MODELS), "model")
    task_filter = _filter_tokens(args.task_filter, TASKS, "task")
    apis = {"both": EAGER_APIS, "all": APIS}.get(args.api, (args.api,))
    cells = [c for c in registry.cells(apis, args.run_slow_tasks)
             if (model_filter is None or c.model in model_filter) and (task_filter is None or c.task in task_filter)]
    return sorted(cells, key=registry.row_order)  # the report's rows, as the original ran them


def run(args) -> int:
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
        stderr("funcbench: --malloc steady needs glibc; timing with this C library's default allocator")
        args.malloc = "default"
    stderr(f"funcbench: {len(cells)} cells, preset {args.preset}, device {device}, torch {torch.__version__}, "
           f"{args.num_threads} threads, {args.num_iters} iterations")
    report, failures, results = Report(), [], {}
    started = time.perf_counter()
    for index, cell in enumerate(cells, start=1):
        model, task, api = cell
        if index > 1 and model != cells[index - 2].model:
            cases.forget_builds()  # one model's weights and activations in memory at a time
        prefix = f"[{index}/{len(cells)}] {model} {task_label(task, api)}"
        try:
            case = cases.build_case(Cell(model, task, api), device, args.preset, args.seed)
            result = case.call_checked()  # warm-up and correctness guard in one call
            if api == "func" and Cell(model, task, "autograd") in results:
                assert_consistent(task, results.pop(Cell(model, task, "autograd")), result)
            elif api == "autograd" and args.api == "both" and Cell(model, task, "func") in cells:
                results[cell] = result
            times = time_calls(case.call, args.num_iters, device)
        except Unsupported as error:
            stderr(f"{prefix}: skipped: {error}")
            continue
        except Exception as error:  # one broken cell never aborts the rest
            failures.append(f"{model} {task_label(task, api)}")
            stderr(f"{prefix}: FAILED: {type(error).__name__}: {first_line(error)}")
            continue
        key = report.add(Measurement.from_samples(cell, args.preset, device, "time", times))
        stderr(f"{prefix}: mean {report.rows[key][0]:.6f} s ({time.perf_counter() - started:.0f} s elapsed)")
    text = report.to_markdown()
    print(f"Results for preset {args.preset} on {device} ({platform.node()}), torch {torch.__version__}, "
          f"{args.num_threads} threads, {args.num_iters} iterations, seed {args.seed}, malloc {args.malloc}:\n")
    print(text)
    if args.output:
        write(args.output, text)
    if failures:
        stderr(f"funcbench: {len(failures)} cell(s) failed: {', '.join(failures)}")
        return 1
    return 0
