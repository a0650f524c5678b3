"""funcbench's command line: one module per command, each with its ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.

Bad input ends in one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import List, Optional

from funcbench.catalogue.config import UnknownName
from funcbench.commands import (compare, interleave, listing, main_job, merge_results, publish, releases, report, run, shard,
                                shard_costs)
from funcbench.commands.common import EXIT_USAGE, Parser, UsageError

COMMANDS = (listing, run, compare, interleave, report, shard, shard_costs, merge_results, publish, main_job, releases)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="funcbench", description="Benchmarks of torch.autograd.functional and torch.func.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_arguments(subparsers.add_parser(command.NAME, help=command.HELP))
    return parser


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
    command = next(command for command in COMMANDS if command.NAME == args.command)
    try:
        return command.run(args)
    except (UsageError, UnknownName) as error:
        print(f"funcbench {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("funcbench: interrupted", file=sys.stderr)
        return 130
