"""``funcbench shard-costs``: the cost table shard plans read, from a reference run's asv results files."""
from __future__ import annotations

from pathlib import Path

from funcbench.catalogue import cost_table
from funcbench.fleet import main_job, reference_costs
from funcbench.commands.common import UsageError, stderr

NAME = "shard-costs"
HELP = "regenerate the shard cost table from a reference run"


def add_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS_FILE",
                        help="asv results files of a reference run (asv run --record-samples)")
    parser.add_argument("--output", default=str(cost_table.COSTS), help="where to write it (default: the committed table)")
    parser.add_argument("--update", action="store_true",
                        help="keep the table's other parameter sets; add or replace only those these files measured "
                             "(a tier counted apart), rescaled to the table's machine speed")


def run(args) -> int:
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
    stderr(f"funcbench shard-costs: {len(table)} parameter sets, {sum(table.values()):.0f} s in all, "
           f"{'added to' if args.update else 'written to'} {written}")
    return 0
