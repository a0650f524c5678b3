"""``funcbench list``: models, presets, tasks per model and API, and what is unavailable."""
from __future__ import annotations

from funcbench.catalogue import config, registry
from funcbench.measurement import policy
from funcbench.catalogue.config import ORIGINAL_PRESET, PRESETS
from funcbench.catalogue.registry import MODELS
from funcbench.catalogue.tasks import APIS, TASKS, task_label
from funcbench.commands.common import UsageError

NAME = "list"
HELP = "models, presets, tasks per model and API, and what is unavailable"


def add_arguments(parser) -> None:
    parser.add_argument("--asv-bench", action="store_true",
                        help="instead: the asv --bench regex that leaves out what this run's FUNCBENCH_* settings "
                             "make n/a by params alone (another device, an unused clock): the same results, sooner")


def run(args) -> int:
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
