"""The main job's plan (``funcbench main-job``, what ``dev.py dashboard`` runs): the asv runs
that fit in the time left on this machine, its speed from a calibration against the cost
table's machine."""
from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.catalogue import config, cost_table, metrics
from funcbench.measurement import policy
from funcbench.catalogue.param_sets import ParamSet
from funcbench.fleet.shard_plan import items


class MainJobError(RuntimeError):
    """A main job that cannot be planned as asked: one line for the user."""


# The main job's parts, most wanted first: the counts (the README's headline, a 1 % change seen
# on a noisy machine: always run, whatever the estimate), the times by the run's clocks, compile
# seconds, then the one-value metrics. Names metrics of the vocabulary (funcbench.catalogue.metrics).
MAIN_JOB_PARTS = (("instruction counts", ("instructions",)), ("time", ("time", "cpu")),
                  ("compile seconds", ("compile_seconds",)), ("peak memory and cost ratio", ("memory", "cost_ratio",
                                                                                           "cuda_memory")))
ALWAYS = "instruction counts"  # planned in even where the estimate says it does not fit
ASV_RUN_S = 20.0  # what an asv run spends before its first benchmark (discovery in a fresh process)


def calibration_seconds() -> float:
    """Seconds of a fixed piece of interpreter and torch work on one thread (~11 ms), the best of
    twenty after a warm-up (one try in four can run 1.5x slower on a shared VM; the best of many
    short ones stays within ~5 %): how fast this machine is against the one the cost table was
    measured on."""
    import timeit

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the suite's processes (policy pins one thread)
    generator = torch.Generator().manual_seed(0)
    left, right = torch.rand(128, 128, generator=generator), torch.rand(128, 128, generator=generator)

    def work():
        for _ in range(4000):
            sum(range(200))
        for _ in range(150):
            left @ right

    try:
        work()
        return min(timeit.repeat(work, number=1, repeat=20))
    finally:
        torch.set_num_threads(threads)


def machine_speed(reference: Optional[float]) -> float:
    """This machine's seconds for one of the cost table's, whose machine's calibration seconds
    are ``reference`` (1.0 where the table has none)."""
    # Never faster than the table's machine: the calibration is mostly interpreter work, and
    # Debian's 3.11.2 ran it in 0.74 of the table's pyenv 3.11.7 while the whole suite, planned
    # at that speed, took 1.4x the plan (the main job 1,082 s, 1 Dec). Slower machines scale up.
    return max(1.0, calibration_seconds() / reference) if reference else 1.0


@dataclasses.dataclass
class MainJobPart:
    name: str
    part: str  # the MAIN_JOB_PARTS name it belongs to (what dev.py says is done after running it)
    bench: List[str]  # asv --bench regexes (asv runs a parameter set that any of them matches)
    seconds: float  # the estimate on this machine, with the asv run's own start
    items: int  # parameter sets


def main_job(run: config.RunSettings, seconds_left: float, costs: Dict[str, float], speed: float = 1.0,
             benchmarks=None, done: Sequence[str] = ()) -> Tuple[List[MainJobPart], List[MainJobPart]]:
    """(the asv runs to make, the parts left out) of the parts not ``done``: all of them in one
    asv run where they fit in ``seconds_left``; else each part, most wanted first, where it fits
    in what is left (the counts always), and of the time benchmarks as many parameter sets as fit
    (in name order), so that the main job stays within its time whatever the suite grows into.
    ``speed``: this machine's seconds for one of the cost table's. dev.py asks again after each
    asv run, with the time really left and the parts it ran as ``done``: estimates err."""
    unknown = sorted(set(done) - {name for name, _ in MAIN_JOB_PARTS})
    if unknown:
        raise MainJobError(f"no main-job part {unknown[0]!r} (parts: {', '.join(name for name, _ in MAIN_JOB_PARTS)})")
    work = items(run, benchmarks=benchmarks)
    median = cost_table.median_seconds(costs, (item.name for item in work))

    def cost(item: ParamSet) -> float:
        return speed * costs.get(item.name, median)

    base = policy.selection_regex(run)
    parts = []
    for name, wanted in MAIN_JOB_PARTS:
        methods = sorted(method for method, metric in metrics.METHOD_METRICS.items() if metric in wanted)
        mine = [i for i in work if metrics.METHOD_METRICS.get(i.benchmark.rsplit(".", 1)[-1]) in wanted]
        if mine and name not in done:
            parts.append((MainJobPart(name, name, [f"{base}(?=benchmarks\\.\\w+\\.({'|'.join(methods)})\\()"],
                                      ASV_RUN_S + sum(map(cost, mine)), len(mine)), mine))
    if not done:
        whole = ASV_RUN_S + sum(map(cost, work))
        if whole <= seconds_left:
            return [MainJobPart("the whole suite", "the whole suite", [base], whole, len(work))], []
    chosen, left_out = [], []
    for part, mine in parts:
        if part.seconds <= seconds_left or part.part == ALWAYS:
            chosen.append(part)
            seconds_left -= part.seconds
            continue
        if part.part == "time":  # the time series are the dashboard: as many parameter sets as fit
            taken, spent = [], ASV_RUN_S
            for item in mine:
                if spent + cost(item) <= seconds_left:
                    taken.append(item)
                    spent += cost(item)
            if taken:
                chosen.append(MainJobPart(f"{part.name} ({len(taken)} of {len(mine)} parameter sets)", part.part,
                                          [f"^{re.escape(i.name)}$" for i in taken], spent, len(taken)))
                seconds_left -= spent
                rest = [i for i in mine if i not in taken]
                left_out.append(MainJobPart(f"{part.name} (the other {len(rest)})", part.part,
                                            [f"^{re.escape(i.name)}$" for i in rest],
                                            ASV_RUN_S + sum(map(cost, rest)), len(rest)))
                continue
        left_out.append(part)
    return chosen, left_out
