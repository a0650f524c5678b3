"""Past one machine: ``funcbench shard I/N|auto --results-dir DIR -- ASV_RUN_ARGS...`` runs one
shard of an asv run, so that N runners of a CI matrix, a Slurm array or a Kubernetes Indexed Job
share one commit's suite; ``funcbench merge-results`` puts the shards back together.

- The unit is one benchmark *parameter set* (``shard_manifest.Item``): the suite's ~75 eager
  cells, its counted cells and every one-value class spread over the shards.
- The items are what asv would run (asv_runner's own discovery of the suite, the user's
  ``--bench`` matched as asv matches it, against ``name(params)``), less what the run's settings
  leave n/a (``registry.why_not(..., here=False)``: never what one machine lacks, so every
  runner makes the same plan).
- The plan is deterministic and balanced by cost: the committed cost table (``COSTS``, seconds
  per parameter set from a reference run, ``funcbench shard-costs`` regenerates it), greedy
  longest-first onto the least loaded shard, ties broken by name; an item the table does not
  know costs the median of those it does. Never Python's ``hash()``.
- A shard runs ``asv run ASV_RUN_ARGS --bench <each of its items>`` from a copy of
  asv.conf.json whose results_dir is DIR (asv has no --results-dir), counts only its own
  cells (FUNCBENCH_INSTRUCTIONS narrowed to them: a count does not depend on what else is
  counted), and writes ``DIR/funcbench-shard.json``: what it was asked to run, and what finished.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import platform
import re
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import config, policy, registry, results_files, results_rows
from .asv_driver import Asv, AsvError, private_conf
from .engines import Shard
from .instructions import COUNTING
from .registry import Cell
from .shard_manifest import COSTS, MANIFEST, Item, ShardManifest, read_cost_table

FORK_S = 0.02  # what asv spends on a parameter set's process even when it is n/a (measured: ~19 ms)



class ShardError(RuntimeError):
    """A shard that cannot be planned or run as asked: one line for the user."""


# ------------------------------------------------------------------------------ items


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """What the user's ``asv run`` arguments say that a shard needs (read by asv's own parser)."""
    args: Tuple[str, ...]  # without --bench, which the shard replaces by its items
    bench: Tuple[str, ...]  # the user's --bench regexes: they narrow what is sharded
    machine: Optional[str]
    range_spec: Optional[str]
    set_commit_hash: Optional[str]


def read_run_args(args: Sequence[str]) -> RunArgs:
    from asv.commands import make_argparser

    parser, _ = make_argparser()
    try:
        parsed, unknown = parser.parse_known_args(["run", *args])
    except SystemExit:
        raise ShardError(f"asv run does not take these arguments: {' '.join(args)}") from None
    if unknown:
        raise ShardError(f"asv run does not take: {' '.join(unknown)}")
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-b", "--bench"):
            skip = True
        elif not (arg.startswith("--bench=") or (arg.startswith("-b") and len(arg) > 2)):
            kept.append(arg)
    return RunArgs(tuple(kept), tuple(parsed.bench or ()), parsed.machine, parsed.range, parsed.set_commit_hash)


def discover(benchmark_dir: Path = config.ROOT / "benchmarks") -> List[Tuple[str, List[str], List[List[str]]]]:
    """(name, param names, params as asv writes them) of every benchmark, by asv_runner's own discovery."""
    from asv_runner.discovery import disc_benchmarks

    parent = str(Path(benchmark_dir).resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    return [(b.name, list(b.param_names), [list(values) for values in b.params])  # asv_runner writes each as its repr
            for b in disc_benchmarks(str(benchmark_dir))]


def _measured(name: str, names: Sequence[str], params: Sequence[str], run: config.RunSettings) -> bool:
    """Whether the run's settings measure this parameter set (the same answer on every machine)."""
    method = name.rsplit(".", 1)[-1]
    values = dict(zip(names, (results_rows.param_value(p) for p in params)))
    if method not in policy.METHOD_METRICS:
        return True
    cell = Cell.parse(values["cell"]) if "cell" in values else Cell(values["model"], values["task"], values["api"])
    return registry.why_not(cell, values["preset"], values["device"], policy.METHOD_METRICS[method], run,
                            here=False) is None


def items(run: config.RunSettings, bench: Sequence[str] = (), benchmarks=None) -> List[Item]:
    """The parameter sets an asv run with ``--bench bench`` (every one without) measures, in name order."""
    found = []
    for name, names, params in (discover() if benchmarks is None else benchmarks):
        for combo in itertools.product(*params) if params else [()]:
            item = Item(name, tuple(combo))
            if bench and not any(re.search(regex, item.name) for regex in bench):
                continue
            if _measured(name, names, combo, run):
                found.append(item)
    return sorted(found)


# ------------------------------------------------------------------------------- plan


def load_costs(path: Path = COSTS) -> Dict[str, float]:
    return load_cost_table(path)[0]


def load_cost_table(path: Path = COSTS) -> Tuple[Dict[str, float], Optional[float]]:
    """(seconds per parameter set, the reference machine's calibration seconds or None)."""
    try:
        return read_cost_table(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ShardError(f"cannot read the cost table {path}: {error}") from None


@dataclasses.dataclass
class Plan:
    shards: List[List[Tuple[Item, float]]]  # per shard: its items and their estimated seconds
    unknown: int  # items the cost table does not know (costed at its median)

    @property
    def seconds(self) -> List[float]:
        return [sum(cost for _, cost in shard) for shard in self.shards]

    @property
    def digest(self) -> str:
        """The same for every shard of one plan: merge-results refuses shards of different plans."""
        text = json.dumps([[item.to_json() for item, _ in shard] for shard in self.shards])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        mean = sum(self.seconds) / len(self.shards)
        worst = max(self.seconds)
        lines = [f"plan {self.digest}: {sum(len(s) for s in self.shards)} parameter sets over {len(self.shards)} "
                 f"shards, estimated {sum(self.seconds):.0f} s in all; slowest shard {worst:.0f} s = "
                 f"{worst / mean if mean else 1:.2f}x the mean ({self.unknown} unknown to the cost table, at its median)"]
        for index, (shard, seconds) in enumerate(zip(self.shards, self.seconds), start=1):
            lines.append(f"shard {index}/{len(self.shards)}: {len(shard)} parameter sets, ~{seconds:.0f} s")
            lines += [f"  {cost:8.1f} s  {item.name}" for item, cost in sorted(shard, key=lambda p: (-p[1], p[0]))]
        return "\n".join(lines)


def _median_cost(work: Sequence[Item], costs: Dict[str, float]) -> float:
    """What an item the cost table does not know costs: the median of those it knows."""
    known = [costs[i.name] for i in work if i.name in costs]
    return statistics.median(known) if known else 1.0


def plan(work: Sequence[Item], count: int, costs: Dict[str, float]) -> Plan:
    """``work`` over ``count`` shards: longest first, each onto the least loaded shard (the lowest
    index among equals); equal costs in name order. Deterministic on every machine."""
    median = _median_cost(work, costs)
    priced = [(item, costs.get(item.name, median)) for item in work]
    shards: List[List[Tuple[Item, float]]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for item, cost in sorted(priced, key=lambda p: (-p[1], p[0])):
        target = min(range(count), key=lambda index: (loads[index], index))
        shards[target].append((item, cost))
        loads[target] += cost
    return Plan([sorted(shard) for shard in shards], sum(item.name not in costs for item in work))


# -------------------------------------------------------------------------------- run


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _commits(conf: Path, run_args: RunArgs) -> List[str]:
    """The commits the asv run is asked for, as every shard reads them, from the conf's repository
    (NEW and EXISTING depend on a results folder, each shard's own: refused)."""
    spec = run_args.range_spec
    if spec in ("NEW", "EXISTING") and not run_args.set_commit_hash:
        raise ShardError(f"a shard cannot run {spec}: it means 'against this results folder', each shard's own; "
                         f"name the commits (HEAD^!, A..B, HASHFILE:...)")
    from asv import util
    from asv.config import Config
    from asv.repo import NoSuchNameError, get_repo

    asv_conf = Config.load(str(conf))
    repo = get_repo(asv_conf)
    try:
        if run_args.set_commit_hash:
            return [repo.get_hash_from_name(run_args.set_commit_hash)]
        if spec is None:
            return sorted({repo.get_hash_from_name(branch) for branch in asv_conf.branches})
        if spec == "HEAD":
            return [repo.get_hash_from_name("HEAD")]
        if spec.startswith("HASHFILE:"):
            lines = Path(spec[len("HASHFILE:"):]).read_text().split()
            return [repo.get_hash_from_name(h) for h in lines]
        if spec == "ALL":
            return repo.get_new_branch_commits(asv_conf.branches, [])
        return repo.get_hashes_from_range(spec)
    except (NoSuchNameError, util.ProcessError, OSError) as error:
        asked = run_args.set_commit_hash or spec or "the conf's branches"
        raise ShardError(f"no commits for {asked} in {asv_conf.repo}: {str(error).splitlines()[0]}") from None


def finished_items(results_dir: Path, machine: str, planned: Sequence[Item]) -> List[Tuple[Item, str, str]]:
    """(item, commit, environment) for every planned item a results file of ``results_dir`` holds a
    value for (a number, or None: it ran and failed); NaN is 'not run'."""
    wanted = {i.name for i in planned}
    done = []
    for path in sorted((Path(results_dir) / machine).glob("*.json")):
        if not results_files.is_result_file(path.name):
            continue
        header = results_files.read_file(str(path), machine)
        if header.problem:
            continue
        for row in results_rows.rows_of(str(results_dir), header.loaded()):
            name = Item(row.benchmark, tuple(raw for _, raw in row.params)).name
            if name in wanted and (row.value is None or not math.isnan(row.value)):
                done.append((Item(row.benchmark, tuple(raw for _, raw in row.params)), header.commit, header.env_name))
    return sorted(done)


def run(shard: Shard, shard_plan: Plan, run_args: RunArgs, results_dir: Path, conf: Path = config.ROOT / "asv.conf.json",
        log=print) -> int:
    """Run this shard's items with asv into ``results_dir``; asv's exit status (the manifest is
    written either way)."""
    conf = Path(conf).resolve()
    results_dir = Path(results_dir)
    base = config.load_asv_conf(conf)
    conf_results = conf.parent / base.get("results_dir", "results")
    if _within(results_dir, conf_results) or _within(conf_results, results_dir):
        raise ShardError(f"--results-dir {results_dir} is inside asv's results folder {conf_results} (or holds it): "
                         f"asv publish would read a shard as results; put shards elsewhere and merge them")
    machine = run_args.machine or platform.node()
    mine = [item for item, _ in shard_plan.shards[shard.index - 1]]
    commits = _commits(conf, run_args)  # before anything is written: a refused range leaves no folder
    stamp = datetime.datetime.now(datetime.timezone.utc)
    results_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted((results_dir / machine).glob("*.json")) if (results_dir / machine).is_dir() else []:
        if old.name != "machine.json":  # an earlier try of this shard: kept, never read as a result again
            old.rename(old.with_name(f"{old.name}.{stamp:%Y%m%dT%H%M%SZ}.bak"))
            log(f"funcbench shard: kept the earlier results as {old.name}.{stamp:%Y%m%dT%H%M%SZ}.bak")
    manifest = ShardManifest(shard.index, shard.count, shard_plan.digest, machine, commits,
                             list(run_args.args), mine, shard_plan.seconds[shard.index - 1],
                             started=stamp.isoformat(timespec="seconds"))
    manifest.write(results_dir)
    if not mine:
        log(f"funcbench shard {shard}: nothing planned for this shard ({len(shard_plan.shards)} shards, fewer items)")
        manifest.ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifest.write(results_dir)
        return 0
    shard_conf = private_conf(results_dir / "funcbench-shard.asv.conf.json", base=conf, results_dir=results_dir.resolve())
    counted = sorted({item.params[0].strip("'") for item in mine if item.benchmark.endswith(".track_instructions")})
    env = {config.INSTRUCTIONS.name: ",".join(counted) or "none"}  # this shard's counts only
    log(f"funcbench shard {shard} ({shard.source}): {len(mine)} parameter sets, ~{manifest.seconds:.0f} s, "
        f"plan {shard_plan.digest}, results in {results_dir}")
    code = 0
    try:
        Asv(shard_conf, log=log).run(*run_args.args, bench=[f"^{re.escape(item.name)}$" for item in mine], env=env)
    except AsvError as error:
        log(f"funcbench shard {shard}: {str(error).splitlines()[0]}")
        code = 1
    manifest.finished = finished_items(results_dir, machine, mine)
    manifest.ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest.write(results_dir)
    missing = len(mine) * max(len(commits), 1) - len(manifest.finished)
    if missing > 0:
        log(f"funcbench shard {shard}: {missing} planned (parameter set, commit, environment) result(s) did not finish")
    return code


# ------------------------------------------------------------------------ cost table


def costs_from_results(paths: Sequence[Path], machine: Optional[str] = None) -> Dict[str, float]:
    """Seconds per parameter set from a reference run's results files (asv run --record-samples).

    asv records a duration per benchmark (all its parameter sets and rounds), and for counted
    cells the duration of setup_cache. Each is shared among the benchmark's measured parameter
    sets by what each cost inside it: per asv process (round) a fork, the checked first call
    and the warm-up, plus the samples themselves; a counted cell by its instructions times its
    calls. n/a parameter sets keep only their fork."""
    out: Dict[str, float] = {}
    for path in paths:
        path = Path(path)
        name = machine or path.parent.name
        results = results_files.load_results(str(path), name)
        rows = results_rows.rows_of(str(path.parent.parent), results)
        by_benchmark: Dict[str, List[results_rows.Row]] = {}
        op_seconds: Dict[Cell, float] = {}  # the cell's time per call, by either clock: a one-value class's weight
        for row in rows:
            by_benchmark.setdefault(row.benchmark, []).append(row)
            if row.method.startswith("time_") and row.measured and row.cell:
                op_seconds.setdefault(row.cell, row.value)
        setup_cache = sum(v for k, v in results.duration.items() if k.startswith("<setup_cache"))
        for benchmark, group in by_benchmark.items():
            total = results.duration.get(benchmark) or 0.0
            if benchmark.endswith(".track_instructions"):
                total += setup_cache
            ran = [r for r in group if r.value is not None and not math.isnan(r.value)]
            idle = len(group) - len(ran)
            weights = [_weight(benchmark, r, op_seconds) for r in ran]
            share = max(total - idle * FORK_S, 0.0)
            scale = share / sum(weights) if sum(weights) > 0 else 0.0
            for row, weight in zip(ran, weights):
                out[Item(row.benchmark, tuple(raw for _, raw in row.params)).name] = round(weight * scale, 3)
    return out


def _weight(benchmark: str, row: results_rows.Row, op_seconds: Dict[Cell, float]) -> float:
    method = benchmark.rsplit(".", 1)[-1]
    if method.startswith("time_"):
        cell = row.cell
        tier = registry.model_spec(cell.model).tier if cell and cell.model in registry.MODELS else "light"
        attrs = policy.COMPILED_POLICY if "compiled" in method else policy.TIER_POLICIES[tier]
        sampled = sum(row.samples) if row.samples else row.value * (row.stats or {}).get("repeat", 10)
        per_round = FORK_S + attrs["warmup_time"] + 3 * row.value  # the checked call, the warm-up, setup's share
        return attrs["rounds"] * per_round + sampled
    if method == "track_instructions":  # what valgrind executes for the cell: every call (checked, uncounted,
        cell = row.cell                  # counted), plus the fork and build every counted cell pays
        tier = registry.model_spec(cell.model).tier if cell and cell.model in registry.MODELS else "light"
        return float(row.value) * (1 + sum(COUNTING[tier])) + 1e8
    if method == "track_compile_seconds":
        return FORK_S + float(row.value)
    # One process that builds the model and calls the op a few times (the checked call and one
    # more; the cost ratio about 0.3 s of calls more): the op's time says which cells are heavy.
    op = op_seconds.get(row.cell, 0.01)
    return FORK_S + 0.2 + 3 * op + (min(0.3, 21 * op) if method == "track_cost_ratio" else 0.0)


def write_costs(table: Dict[str, float], sources: Sequence[Path], output: Path = COSTS,
                calibration_s: Optional[float] = None) -> Path:
    data = dict(comment="seconds per asv parameter set, from a reference run; regenerate with "
                        "`funcbench shard-costs RESULTS_FILE ...` on the machine of that run (docs/past-one-machine.md)",
                sources=[str(s) for s in sources], written=datetime.date.today().isoformat(),
                calibration_s=calibration_s, seconds=dict(sorted(table.items())))
    Path(output).write_text(json.dumps(data, indent=1) + "\n")
    return Path(output)


def update_costs(table: Dict[str, float], sources: Sequence[Path], output: Path = COSTS,
                 calibration_s: Optional[float] = None) -> Path:
    """Add (or replace) ``table``'s parameter sets in the cost table at ``output``, keeping its
    others: a run of a part the reference run left out (a tier counted apart) joins the table.
    Its seconds are rescaled to the table's machine speed by the two calibrations."""
    old, old_calibration = load_cost_table(output)
    scale = old_calibration / calibration_s if old_calibration and calibration_s else 1.0
    merged = {**old, **{name: round(seconds * scale, 3) for name, seconds in table.items()}}
    known = json.loads(Path(output).read_text()).get("sources", [])
    return write_costs(merged, [*known, *map(str, sources)], output, old_calibration or calibration_s)


# --------------------------------------------------------------------------- main job

# The main job's parts, most wanted first: the counts (the README's headline, a 1 % change seen
# on a noisy machine: always run, whatever the estimate), the times by the run's clocks, compile
# seconds, then the one-value metrics. Names the metrics of policy.METHOD_METRICS.
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
        raise ShardError(f"no main-job part {unknown[0]!r} (parts: {', '.join(name for name, _ in MAIN_JOB_PARTS)})")
    work = items(run, benchmarks=benchmarks)
    median = _median_cost(work, costs)

    def cost(item: Item) -> float:
        return speed * costs.get(item.name, median)

    base = policy.selection_regex(run)
    parts = []
    for name, metrics in MAIN_JOB_PARTS:
        methods = sorted(m for m, metric in policy.METHOD_METRICS.items() if metric in metrics)
        mine = [i for i in work if policy.METHOD_METRICS.get(i.benchmark.rsplit(".", 1)[-1]) in metrics]
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
