"""``funcbench report``: the original report table of one asv results file (funcbench/results/asv_results.py)."""
from __future__ import annotations

from funcbench.results import asv_results, result_files
from funcbench.catalogue import metrics
from funcbench.results.report import compile_summary
from funcbench.commands.common import UsageError, stderr, write

NAME = "report"
HELP = "the report table of one asv results file (default: the newest)"


def add_arguments(parser) -> None:
    parser.add_argument("--results-dir", default="results", help="asv's results directory (default results)")
    parser.add_argument("--commit", help="commit hash or prefix (default: the newest)")
    parser.add_argument("--machine", help="asv machine name (default: the newest results)")
    parser.add_argument("--environment", help="asv environment name, or a part only one has (default: the newest)")
    parser.add_argument("--list", action="store_true", help="list the commits, machines and environments instead")
    parser.add_argument("--metric", choices=metrics.REPORTED,
                        help="time (wall clock), cpu (CPU clock), instructions (track_instructions) or "
                             "compile_seconds (track_compile_seconds); default: time, or cpu where the file has no "
                             "wall-clock results")
    parser.add_argument("--compile-summary", action="store_true",
                        help="instead: per compiled cell, eager torch.func vs compiled time, speedup, compile seconds")
    parser.add_argument("--output", help="also write the markdown report to this file")


def run(args) -> int:
    try:
        if args.list:
            print(asv_results.listing(args.results_dir))
            return 0
        side, notes = asv_results.load(args.results_dir, args.commit, args.machine, args.environment, args.metric)
        if args.compile_summary:
            compiled, _ = asv_results.load(args.results_dir, side.source.commit, side.source.machine,
                                           side.source.env_name, "compile_seconds")
    except result_files.SelectionError as error:
        raise UsageError(str(error)) from None
    if args.compile_summary:
        text = compile_summary(side.report, compiled.report)
        print(f"torch.compile against eager torch.func, {side.describe()} (medians of asv's samples, "
              f"{metrics.clock_words(side.metric)}):\n")
        print(text)
        if args.output:
            write(args.output, text)
        return 0
    for note in notes:
        stderr(f"funcbench report: {note}")
    if side.missing:
        stderr(f"funcbench report: {len(side.missing)} benchmark(s) failed in asv: {', '.join(side.missing)}")
    text = side.report.to_markdown()
    print(asv_results.heading(side) + "\n")
    print(text)
    if args.output:
        write(args.output, text)
    return 0
