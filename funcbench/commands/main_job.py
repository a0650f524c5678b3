"""``funcbench main-job``: dev.py dashboard's plan, the asv runs that fit in --seconds-left, as JSON."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .. import config, shard
from .common import UsageError

NAME = "main-job"
HELP = "the asv runs of dev.py dashboard that fit in its time (JSON)"


def add_arguments(parser) -> None:
    parser.add_argument("--seconds-left", type=float, required=True, help="what is left of the main job's time")
    parser.add_argument("--costs", default=str(shard.COSTS), help="the cost table (default: the committed one)")
    parser.add_argument("--done", action="append", default=[], metavar="PART",
                        help="a part already run (repeatable): the plan is of the others, in the time really left")


def run(args) -> int:
    try:
        costs, reference = shard.load_cost_table(Path(args.costs))
        # Never faster than the table's machine: the calibration is mostly interpreter work, and
        # Debian's 3.11.2 ran it in 0.74 of the table's pyenv 3.11.7 while the whole suite, planned
        # at that speed, took 1.4x the plan (the main job 1,082 s, 1 Dec). Slower machines scale up.
        speed = max(1.0, shard.calibration_seconds() / reference) if reference else 1.0
        runs, left_out = shard.main_job(config.RunSettings.from_environ(), args.seconds_left, costs, speed,
                                        done=args.done)
    except (shard.ShardError, config.SettingError) as error:
        raise UsageError(str(error)) from None
    print(json.dumps(dict(speed=round(speed, 3), runs=[dataclasses.asdict(r) for r in runs],
                          left_out=[dataclasses.asdict(r) for r in left_out])))
    return 0
