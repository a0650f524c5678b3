"""``funcbench merge-results``: the shards' results merged into one asv results tree (funcbench/fleet/merge.py)."""
from __future__ import annotations

from pathlib import Path

from funcbench.fleet.merge import ON_DUPLICATE, MergeError, merge
from funcbench.commands.common import UsageError, stderr

NAME = "merge-results"
HELP = "merge shards' results into one asv results tree"


def add_arguments(parser) -> None:
    parser.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR",
                        help="every shard's results dir (funcbench shard --results-dir) of one plan")
    parser.add_argument("--into", required=True, metavar="DIR",
                        help="the asv results dir to merge into (e.g. results); a file there that merge-results "
                             "did not write is kept as <name>.<UTC time>.bak")
    parser.add_argument("--on-duplicate", choices=ON_DUPLICATE, default="refuse",
                        help="a parameter set two shards measured differently: refuse (default), or keep the "
                             "later run")


def run(args) -> int:
    """0: merged; 1: merged, but a planned parameter set did not finish; 2: nothing merged."""
    try:
        outcome = merge(Path(args.into), [Path(d) for d in args.shard_dirs], args.on_duplicate)
    except MergeError as error:
        raise UsageError(str(error)) from None
    if outcome.unfinished:
        stderr(f"funcbench merge-results: {len(outcome.unfinished)} planned parameter set(s) did not finish "
               f"(listed above): rerun their shards and merge again")
        return 1
    return 0
