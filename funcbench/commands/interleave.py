"""``funcbench interleave``: two torch builds (pythons) or two commits timed interleaved, then
compared like ``funcbench compare``, once per clock the runs timed with."""
from __future__ import annotations

import platform

from funcbench.results import asv_results, environment, result_files
from funcbench.fleet import interleave
from funcbench.fleet.asv_driver import Asv, AsvError
from funcbench.catalogue.metrics import TIME_METRICS
from funcbench.util.text import first_line
from funcbench.commands.common import UsageError, stderr
from funcbench.commands.compare import compare_sides

NAME = "interleave"
HELP = "time two torch builds (pythons) or two commits interleaved, then compare them"


def add_arguments(parser) -> None:
    parser.add_argument("--before", required=True,
                        help="the baseline: a python executable (a torch build) or a commit")
    parser.add_argument("--after", required=True, help="the change: a python executable or a commit")
    parser.add_argument("--rounds", type=int, default=6,
                        help="two pythons: alternating one-round runs per side, A B B A ... (default 6)")
    parser.add_argument("--bench", action="append", default=[],
                        help=f"asv --bench regex (default {interleave.DEFAULT_BENCH[0]!r}); repeatable")
    parser.add_argument("--machine", default=platform.node(), help="asv machine name (default: this host's name)")
    parser.add_argument("--config", default="asv.conf.json", help="asv.conf.json to use (default ./asv.conf.json)")
    parser.add_argument("--fail-above", type=float, metavar="R",
                        help="exit 1 if a significantly slower row's after / before exceeds R")
    parser.add_argument("--output", help="also write the speedup table to this file")


def run(args) -> int:
    try:
        asv = Asv(args.config, args.machine, log=stderr)
        before, after = interleave.resolve(args.before, asv.repo), interleave.resolve(args.after, asv.repo)
        if args.rounds < 1:
            raise UsageError(f"--rounds must be at least 1, got {args.rounds}")
        interleave.check_sides(before, after)
        for line in interleave.environment_differences(before, after, asv):
            stderr(f"funcbench interleave: {line}")
        asv.register_machine()
        entries = interleave.interleave(before, after, asv, args.bench or interleave.DEFAULT_BENCH, args.rounds,
                                        log=stderr)
    except (interleave.InterleaveError, AsvError, environment.ProbeFailed) as error:
        raise UsageError(first_line(error)) from None
    code = 0
    for entry in entries:
        (commit_b, env_b), (commit_a, env_a) = entry["sides"]
        before_side = f"{asv_results.SELECTION_PREFIX}{commit_b}@{args.machine}/{env_b}"
        after_side = f"{asv_results.SELECTION_PREFIX}{commit_a}@{args.machine}/{env_a}"
        metrics = [m for m in TIME_METRICS if _has_rows(before_side, str(asv.results_dir), m)]
        for metric in metrics:
            output = args.output
            if output and len(metrics) > 1:  # one table per clock, none written over
                stem, dot, suffix = output.rpartition(".")
                output = f"{stem}.{metric}.{suffix}" if dot else f"{output}.{metric}"
            code = max(code, compare_sides(before_side, after_side, str(asv.results_dir), metric, args.fail_above,
                                           output))
    return code


def _has_rows(selection: str, results_dir: str, metric: str) -> bool:
    try:
        return bool(asv_results.load_selection(selection, results_dir, metric)[0].report.rows)
    except result_files.SelectionError:  # no results of this clock at all
        return False
