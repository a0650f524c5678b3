"""``funcbench main-job``: dev.py dashboard's plan, the asv runs that fit in --seconds-left, as JSON."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from funcbench.catalogue import config, cost_table
from funcbench.fleet import main_job
from funcbench.commands.common import UsageError

NAME = "main-job"
HELP = "the asv runs of dev.py dashboard that fit in its time (JSON)"


def add_arguments(parser) -> None:
    parser.add_argument("--seconds-left", type=float, required=True, help="what is left of the main job's time")
    parser.add_argument("--costs", default=str(cost_table.COSTS), help="the cost table (default: the committed one)")
    parser.add_argument("--done", action="append", default=[], metavar="PART",
                        help="a part already run (repeatable): the plan is of the others, in the time really left")


def run(args) -> int:
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
