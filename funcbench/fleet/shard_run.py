"""One shard of an asv run: ``funcbench shard I/N|auto --results-dir DIR -- ASV_RUN_ARGS...``, so
that N runners of a CI matrix, a Slurm array or a Kubernetes Indexed Job share one commit's
suite (funcbench.fleet.shard_plan plans them); ``funcbench merge-results`` puts the shards back together.

A shard runs ``asv run ASV_RUN_ARGS --bench <each of its items>`` from a copy of asv.conf.json
whose results_dir is DIR (asv has no --results-dir), counts only its own cells
(FUNCBENCH_INSTRUCTIONS narrowed to them: a count does not depend on what else is counted), and
writes ``DIR/funcbench-shard.json``: what it was asked to run, and what finished.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import platform
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from funcbench.catalogue import config
from funcbench.results import result_files, result_rows
from funcbench.fleet.asv_driver import Asv, AsvError, private_conf
from funcbench.fleet.engines import Shard
from funcbench.util.files import set_aside
from funcbench.catalogue.param_sets import ParamSet
from funcbench.results.manifest import ShardManifest
from funcbench.fleet.shard_plan import Plan


class ShardError(RuntimeError):
    """A shard that cannot be run as asked: one line for the user."""


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


def finished_items(results_dir: Path, machine: str, planned: Sequence[ParamSet]) -> List[Tuple[ParamSet, str, str]]:
    """(item, commit, environment) for every planned item a results file of ``results_dir`` holds a
    value for (a number, or None: it ran and failed); NaN is 'not run'."""
    wanted = {i.name for i in planned}
    done = []
    for path in sorted((Path(results_dir) / machine).glob("*.json")):
        if not result_files.is_result_file(path.name):
            continue
        header = result_files.read_file(str(path), machine)
        if header.problem:
            continue
        for row in result_rows.rows_of(str(results_dir), header.loaded()):
            name = ParamSet(row.benchmark, tuple(raw for _, raw in row.params)).name
            if name in wanted and (row.value is None or not math.isnan(row.value)):
                done.append((ParamSet(row.benchmark, tuple(raw for _, raw in row.params)), header.commit, header.env_name))
    return sorted(done)


def run(shard: Shard, plan: Plan, run_args: RunArgs, results_dir: Path, conf: Path = config.ROOT / "asv.conf.json",
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
    mine = [item for item, _ in plan.shards[shard.index - 1]]
    commits = _commits(conf, run_args)  # before anything is written: a refused range leaves no folder
    stamp = datetime.datetime.now(datetime.timezone.utc)
    results_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted((results_dir / machine).glob("*.json")) if (results_dir / machine).is_dir() else []:
        if old.name != "machine.json":  # an earlier try of this shard: kept, never read as a result again
            log(f"funcbench shard: kept the earlier results as {set_aside(old).name}")
    manifest = ShardManifest(shard.index, shard.count, plan.digest, machine, commits,
                             list(run_args.args), mine, plan.seconds[shard.index - 1],
                             started=stamp.isoformat(timespec="seconds"))
    manifest.write(results_dir)
    if not mine:
        log(f"funcbench shard {shard}: nothing planned for this shard ({len(plan.shards)} shards, fewer items)")
        manifest.ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifest.write(results_dir)
        return 0
    shard_conf = private_conf(results_dir / "funcbench-shard.asv.conf.json", base=conf, results_dir=results_dir.resolve())
    counted = sorted({item.params[0].strip("'") for item in mine if item.benchmark.endswith(".track_instructions")})
    env = {config.INSTRUCTIONS.name: ",".join(counted) or "none"}  # this shard's counts only
    log(f"funcbench shard {shard} ({shard.source}): {len(mine)} parameter sets, ~{manifest.seconds:.0f} s, "
        f"plan {plan.digest}, results in {results_dir}")
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
