"""``funcbench shard``: one shard of an asv run (funcbench/fleet/shard_run.py), or every shard's plan."""
from __future__ import annotations

import os
from pathlib import Path

from funcbench.catalogue import config, cost_table
from funcbench.fleet import engines, shard_plan, shard_run
from funcbench.fleet.asv_driver import AsvError
from funcbench.util.text import first_line
from funcbench.commands.common import UsageError, stderr

NAME = "shard"
HELP = ("run one shard of an asv run (its arguments after --: a range such as HEAD^!, --machine, -E, --bench to "
        "narrow what is sharded), or print every shard's plan (docs/past-one-machine.md)")


def add_arguments(parser) -> None:
    parser.usage = "funcbench shard I/N|auto [options] -- ASV_RUN_ARGS..."  # main splits off what follows --
    parser.add_argument("spec", help="I/N (1-based), or auto: read from the CI engine's variables (Slurm, "
                                     "Kubernetes, GitLab, CircleCI, AWS Batch, Buildkite)")
    parser.add_argument("--results-dir", help="this shard's asv results folder, outside asv's results/ "
                                              "(merge-results puts the shards together)")
    parser.add_argument("--shards", type=int, metavar="N",
                        help="the number of shards where the engine has no count variable (Kubernetes: the Job's "
                             "completions); elsewhere a check")
    parser.add_argument("--print-plan", action="store_true",
                        help="print every shard's parameter sets and estimated seconds")
    parser.add_argument("--config", default="asv.conf.json", help="asv.conf.json to copy (default ./asv.conf.json)")
    parser.add_argument("--costs", default=str(cost_table.COSTS), help="the cost table (default: the committed one)")


def run(args) -> int:
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
        return shard_run.run(spec, the_plan, run_args, Path(args.results_dir), Path(args.config), log=stderr)
    except (engines.ShardSpecError, shard_run.ShardError, cost_table.CostTableError, AsvError) as error:
        raise UsageError(first_line(error)) from None
