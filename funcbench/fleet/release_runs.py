"""The asv suite in each release's environment, recorded at the release's commit of the history
(``funcbench releases run``), whole or as one shard of a plan over (release, parameter set).

Each release is one ``asv run -E existing:<its python> --set-commit-hash <its commit>`` with a
copy of asv.conf.json whose repo is the history (funcbench.results.release_history): asv's own
results files, dashboard, regressions and compare then read along releases. Beside asv's results
funcbench records each environment's fingerprint (torch's git_version, Python, numpy, the
companions, funcbench's own commit), which ``releases compare`` names where two sides differ.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import platform
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from packaging.version import Version

from funcbench.catalogue import config, cost_table, registry
from funcbench.catalogue.param_sets import ParamSet
from funcbench.fleet import release_envs, release_stage, shard_plan, shard_run
from funcbench.fleet.asv_driver import Asv, AsvError, existing_env_name, git, private_conf
from funcbench.fleet.engines import Shard
from funcbench.fleet.release_envs import EnvRecord, Layout
from funcbench.fleet.release_index import ReleaseError
from funcbench.results import environment, result_rows
from funcbench.results.manifest import ShardManifest
from funcbench.util.files import keep_copy
from funcbench.util.packing import longest_first

DEFAULT_TIERS = ("light", "medium")
SETTINGS = {config.DEVICE.name: "cpu", config.PRESET.name: "small"}  # what a history measures


@dataclasses.dataclass(frozen=True)
class Selection:
    """What a releases run measures: asv --bench regexes and the tiers it counts."""
    bench: Tuple[str, ...]
    tiers: Tuple[str, ...]

    @classmethod
    def of(cls, tiers: Sequence[str] = DEFAULT_TIERS, bench: Sequence[str] = ()) -> "Selection":
        """``bench`` given: those regexes; else the CPU clock of the tiers' models and their counts."""
        unknown = sorted(set(tiers) - set(config.TIERS))
        if unknown or not tiers:
            raise ReleaseError(f"--tiers: choose from {', '.join(config.TIERS)} (got {','.join(tiers) or 'none'})")
        if not bench:
            models = [m for m, spec in registry.MODELS.items() if spec.tier in tiers]
            bench = (rf"^benchmarks\.({'|'.join(models)})\.time_cpu_op\(", r"^benchmarks\.Instructions\.track_instructions\(")
        return cls(tuple(bench), tuple(tiers))

    @property
    def environ(self) -> Dict[str, str]:
        return {**SETTINGS, config.INSTRUCTIONS.name: ",".join(self.tiers)}

    def items(self) -> List[ParamSet]:
        """The parameter sets it measures (the same on every machine)."""
        return shard_plan.items(config.RunSettings.from_environ(self.environ), self.bench)


def conf(layout: Layout, results_dir: Optional[Path] = None) -> Path:
    """asv.conf.json for the history: this checkout's benchmarks, the history as repo."""
    folder = Path(results_dir) if results_dir else layout.root
    return private_conf(folder / ("asv.conf.json" if results_dir is None else "funcbench-releases.asv.conf.json"),
                        repo=layout.repo, results_dir=(results_dir or layout.results).absolute(),
                        html_dir=layout.html, env_dir=layout.root / "asv-env", branches=["main"])


def funcbench_commit() -> str:
    """This checkout's commit (and whether its files differ from it): the code every release ran."""
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "funcbench", "benchmarks")
    except Exception:  # not a git checkout (an installed copy): say so rather than guess
        return "unknown (not a git checkout)"
    return head + (" with local changes" if dirty else "")


def env_name(layout: Layout) -> str:
    """asv's name of the environment every release runs as (release_envs.activate)."""
    return existing_env_name(layout.python)


def results_path(layout: Layout, results_dir: Path, machine: str, record: EnvRecord) -> Path:
    return Path(results_dir) / machine / f"{record.commit[:8]}-{env_name(layout)}.json"


def already_measured(path: Path, machine: str, work: Sequence[ParamSet], results_dir: Path) -> List[str]:
    """The parameter sets of ``work`` that the results file at ``path`` holds a value for."""
    if not path.is_file():
        return []
    wanted = {item.name for item in work}
    return [row.name for row in result_rows.read_rows(str(results_dir), str(path), machine)
            if row.name in wanted and (row.value is None or row.measured)]


def measure(layout: Layout, record: EnvRecord, selection: Selection, machine: str, results_dir: Path,
            again: bool = False, work: Optional[Sequence[ParamSet]] = None, log: Callable[[str], None] = print) -> int:
    """One release's asv run into ``results_dir``; asv's exit status (0 where it ran)."""
    if record.status != release_envs.BUILT:
        raise ReleaseError(f"{record.name} is not built ({record.state()}): funcbench releases build {record.name}")
    work = selection.items() if work is None else list(work)
    path = results_path(layout, results_dir, machine, record)
    done = already_measured(path, machine, work, results_dir)
    if done and not again:
        raise ReleaseError(f"{record.name} was measured already ({len(done)} of the {len(work)} selected parameter sets "
                           f"in {path}); --again measures it again, keeping the earlier file as .bak")
    if done:
        log(f"{record.name}: the earlier results are kept as {keep_copy(path)}")
    asv = Asv(conf(layout, results_dir if results_dir != layout.results else None), machine=machine, log=None)
    asv.register_machine()
    with release_stage.machine_lock(log):
        return _measure(layout, record, selection, machine, results_dir, work, path, asv, log)


def _measure(layout, record, selection, machine, results_dir, work, path, asv, log) -> int:
    with release_envs.staged(layout, record, log) as python:
        return _staged_run(layout, record, selection, machine, results_dir, work, path, asv, log, python)


def _staged_run(layout, record, selection, machine, results_dir, work, path, asv, log, python) -> int:
    facts = environment.probe(python)
    facts = environment.Fingerprint({**facts.facts, "funcbench": funcbench_commit(), "release": record.name,
                                     "release_python": record.python},
                                    f"recorded by funcbench releases run, {datetime.date.today().isoformat()}")
    environment.record(Path(results_dir), machine, env_name(layout), facts, commit=record.commit)
    counted = sorted({item.params[0].strip("'") for item in work if item.benchmark.endswith(".track_instructions")})
    env = {**selection.environ, config.INSTRUCTIONS.name: ",".join(counted) or "none"}
    log(f"{record.name}: asv run of {len(work)} parameter sets at {record.commit[:8]} (torch git "
        f"{str(record.torch_git)[:12]}), results in {path.parent}")
    try:
        asv.run("-E", f"existing:{python}", "--set-commit-hash", record.commit, "--record-samples",
                bench=[f"^{re.escape(item.name)}$" for item in work], env=env)
    except AsvError as error:
        log(f"{record.name}: {str(error).splitlines()[0]}")
        return 1
    return 0


# ------------------------------------------------------------------------------ shards


@dataclasses.dataclass
class PairPlan:
    shards: List[List[Tuple[str, ParamSet, float]]]  # per shard: (release, parameter set, seconds)

    @property
    def digest(self) -> str:
        text = json.dumps([[[name, item.to_json()] for name, item, _ in shard] for shard in self.shards])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        seconds = [sum(c for *_, c in shard) for shard in self.shards]
        lines = [f"plan {self.digest}: {sum(map(len, self.shards))} (release, parameter set) pairs over "
                 f"{len(self.shards)} shards, ~{sum(seconds):.0f} s in all, the slowest ~{max(seconds):.0f} s"]
        for index, (shard, total) in enumerate(zip(self.shards, seconds), start=1):
            names = sorted({name for name, *_ in shard}, key=Version)
            lines.append(f"shard {index}/{len(self.shards)}: {len(shard)} pairs, ~{total:.0f} s, releases "
                         f"{', '.join(names) or '-'}")
        return "\n".join(lines)


def plan_pairs(releases: Sequence[str], work: Sequence[ParamSet], count: int, costs: Dict[str, float]) -> PairPlan:
    """(release, parameter set) pairs over ``count`` shards, longest first by the cost table."""
    median = cost_table.median_seconds(costs, (item.name for item in work))
    pairs = [(name, item, costs.get(item.name, median)) for name in releases for item in work]
    shards = longest_first(pairs, count, cost=lambda p: p[2], order=lambda p: (Version(p[0]), p[1]))
    return PairPlan([sorted(shard, key=lambda p: (Version(p[0]), p[1])) for shard in shards])


def run_shard(layout: Layout, plan: PairPlan, shard: Shard, selection: Selection, machine: str, results_dir: Path,
              commits: Dict[str, str], prepare: Callable[[str], EnvRecord], finish: Callable[[EnvRecord], None],
              log: Callable[[str], None] = print) -> int:
    """This shard's pairs into ``results_dir`` with its manifest, one asv run per release: each
    release ``prepare``d (looked up, or built) just before its run and ``finish``ed (kept, or
    pruned) after it, so that a runner holds one release's environment at a time where asked.
    ``commits``: every release of the plan -> its commit in the history."""
    results_dir = Path(results_dir)
    if results_dir.resolve() == layout.results.resolve() or layout.results.resolve() in results_dir.resolve().parents:
        raise ReleaseError(f"--results-dir {results_dir} is inside {layout.results}: put shards elsewhere and merge them "
                           f"(funcbench merge-results --into {layout.results} SHARD...)")
    mine = plan.shards[shard.index - 1]
    results_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest = ShardManifest(shard.index, shard.count, plan.digest, machine, sorted(set(commits.values())),
                             ["releases run"], sorted({item for _, item, _ in mine}), sum(c for *_, c in mine),
                             started=started, pairs=[(item, commits[name]) for name, item, _ in mine])
    manifest.write(results_dir)
    code = 0
    for name in sorted({name for name, *_ in mine}, key=Version):
        items = [item for n, item, _ in mine if n == name]
        try:
            record = prepare(name)
            code = measure(layout, record, selection, machine, results_dir, again=True, work=items, log=log) or code
            finish(record)
        except ReleaseError as error:  # this release's pairs stay unfinished, named below; the others go on
            log(f"funcbench releases run {shard}: {name}: {error}")
            code = 1
    finished = shard_run.finished_items(results_dir, machine, manifest.planned)
    manifest.finished = [f for f in finished if (f[0], f[1]) in set(manifest.pairs)]
    manifest.ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    manifest.write(results_dir)
    missing = len(mine) - len(manifest.finished)
    if missing:
        log(f"funcbench releases run {shard}: {missing} planned (release, parameter set) pair(s) did not finish")
    return code


def default_machine(machine: Optional[str]) -> str:
    return machine or platform.node()
