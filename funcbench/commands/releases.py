"""``funcbench releases``: torch across releases (docs/releases.md). One environment per release
(``build``, ``list``, ``prune``), the asv suite in each at its point of the history (``run``,
whole or one shard), the dashboard along releases (``publish``), and what moved (``compare``,
``steps``). Each verb is a subparser; its work lives in funcbench.fleet.release_* and
funcbench.results.release_*."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from packaging.version import InvalidVersion, Version

from funcbench.catalogue import config, cost_table, metrics
from funcbench.commands import compare as compare_command
from funcbench.commands import publish as publish_command
from funcbench.commands.common import UsageError, stderr, write
from funcbench.fleet import engines, release_envs, release_index, release_runs
from funcbench.fleet.release_envs import EnvRecord, Layout
from funcbench.fleet.release_index import ReleaseError
from funcbench.results import release_history, release_steps, result_rows
from funcbench.util.text import first_line

NAME = "releases"
HELP = "torch across releases: build one environment per release, run the suite in each, publish, compare, steps"


def add_arguments(parser) -> None:
    parser.add_argument("--dir", help=f"the releases folder (default {config.RELEASES_DIR.name} or .releases)")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=type(parser))
    build = verbs.add_parser("build", help="one environment per release (uv, one shared package cache)")
    build.add_argument("specs", nargs="*", metavar="SPEC", help="a version (2.8.0), a minor's newest patch (2.8), a "
                       "range (2.8:, 2.0:2.5), a torch wheel file, or a python with torch; default: 2.0: (every minor)")
    build.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable),
                       help="the interpreter the environments are made from (default: the one this runs on)")
    listing = verbs.add_parser("list", help="each release: built / failed and why / pruned / absent, python, torch git, disk")
    listing.add_argument("specs", nargs="*", metavar="SPEC", help="also list these as absent where not built")
    prune = verbs.add_parser("prune", help="remove environments; their records and results stay")
    prune.add_argument("specs", nargs="*", metavar="SPEC")
    prune.add_argument("--all", action="store_true", help="every environment")
    prune.add_argument("--clean-cache", action="store_true",
                       help="then empty uv's cache, so that the files no remaining environment links are freed")
    run = verbs.add_parser("run", help="the asv suite in each built release, at its point of the history")
    run.add_argument("specs", nargs="*", metavar="SPEC", help="default: every built release")
    run.add_argument("--tiers", default=",".join(release_runs.DEFAULT_TIERS),
                     help="the tiers whose counts and CPU clock are measured (default light,medium)")
    run.add_argument("--bench", action="append", default=[], metavar="REGEX",
                     help="asv --bench regexes instead of the tiers' counts and CPU clock (time_op needs "
                          "FUNCBENCH_CLOCKS=wall in the environment)")
    run.add_argument("--machine", help="asv's machine name (default: this host's name)")
    run.add_argument("--again", action="store_true",
                     help="measure a release again (the earlier results file kept as .bak)")
    run.add_argument("--build", action="store_true",
                     help="name releases as build does (default 2.0:) and build each just before its run (a CI runner)")
    run.add_argument("--prune", action="store_true",
                     help="with --build: prune each release after its run and empty uv's cache (one release on disk "
                          "at a time; each build downloads its packages again)")
    run.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable),
                     help="with --build: the interpreter the environments are made from")
    run.add_argument("--shard", metavar="I/N|auto", help="run one shard of a plan over (release, parameter set)")
    run.add_argument("--shards", type=int, metavar="N", help="the shard count where the engine has no variable for it")
    run.add_argument("--results-dir", help="with --shard: this shard's folder (merge-results puts them together)")
    run.add_argument("--print-plan", action="store_true", help="with --shard: print every shard's pairs and stop")
    publish = verbs.add_parser("publish", help="the dashboard along releases (offline), in the releases folder's html/")
    publish.add_argument("--serve", action="store_true", help="then serve it on 127.0.0.1")
    publish.add_argument("--port", type=int, default=8080)
    compare = verbs.add_parser("compare", help="the speedup table between two releases, other differences named")
    compare.add_argument("before", metavar="A")
    compare.add_argument("after", metavar="B")
    compare.add_argument("--metric", choices=metrics.REPORTED, default="instructions")
    compare.add_argument("--fail-above", type=float, metavar="R", help="exit 1 where a row's B / A exceeds R")
    compare.add_argument("--machine", help="whose results (default: this host's name)")
    compare.add_argument("--output", help="also write the table to this file")
    compare_command.add_explain_arguments(compare)
    steps = verbs.add_parser("steps", help="every release-to-release step of every cell beyond the metric's noise")
    steps.add_argument("--metric", choices=("instructions", "cpu", "time"), default="instructions")
    steps.add_argument("--at", type=float, help="the smallest step shown, a ratio (default: the metric's noise: "
                       + ", ".join(f"{m} {r}" for m, r in release_steps.STEP_AT.items()) + ")")
    steps.add_argument("--machine", help="whose results (default: this host's name)")
    steps.add_argument("--output", help="also write the table to this file")


def run(args) -> int:
    layout = Layout.at(args.dir)
    try:
        return VERBS[args.verb](args, layout)
    except (ReleaseError, release_history.HistoryError, cost_table.CostTableError, engines.ShardSpecError) as error:
        raise UsageError(first_line(error)) from None


# ------------------------------------------------------------------------------ which releases


def _name_of(spec: str) -> Optional[str]:
    """The release a wheel file or an interpreter names (no registry asked)."""
    if spec.endswith(".whl") or os.sep in spec:
        tag = "cp%d%d" % sys.version_info[:2]
        return release_index.resolve(spec, tag)[0].name if spec.endswith(".whl") else release_index.python_release(spec).name
    return None


def select(records: Dict[str, EnvRecord], specs: Sequence[str]) -> List[EnvRecord]:
    """The known releases ``specs`` name (all without), in version order; one line for a SPEC that
    names none here."""
    if not specs:
        return sorted(records.values(), key=lambda r: r.release.version)
    chosen: Dict[str, EnvRecord] = {}
    for spec in specs:
        named = _name_of(spec)
        if named is not None:
            found = [records[named]] if named in records else []
        elif ":" in spec:
            low, _, high = spec.partition(":")
            try:
                low_v, high_v = (Version(low) if low else None), (Version(high) if high else None)
            except InvalidVersion:
                raise ReleaseError(f"{spec!r} is no release range (2.8:, 2.0:2.5)") from None
            found = [r for r in records.values() if (low_v is None or r.release.version.release[:2] >= low_v.release[:2])
                     and (high_v is None or r.release.version.release[:2] <= high_v.release[:2])]
        elif spec in records:
            found = [records[spec]]
        else:
            try:
                version = Version(spec)
            except InvalidVersion:
                raise ReleaseError(f"{spec!r} is no torch version, range, wheel file or python") from None
            found = [r for r in records.values() if r.release.version.public == version.public
                     or (len(version.release) == 2 and r.release.version.release[:2] == version.release)]
        if not found:
            raise ReleaseError(f"no release {spec} in {records and 'this releases folder' or 'an empty releases folder'}"
                               f" (funcbench releases list; funcbench releases build {spec})")
        chosen.update({r.name: r for r in found})
    return sorted(chosen.values(), key=lambda r: r.release.version)


# ------------------------------------------------------------------------------ verbs


def _build(args, layout: Layout) -> int:
    tag = release_index.python_tag(args.python)
    releases, problems = release_index.resolve_all(args.specs, tag)
    for problem in problems.values():
        stderr(f"funcbench releases build: {problem}")
    layout.root.mkdir(parents=True, exist_ok=True)
    failed = [r.name for r in releases if release_envs.build(layout, r, args.python, log=stderr).status != release_envs.BUILT]
    if failed or problems:
        stderr(f"funcbench releases build: not built: {', '.join(failed + list(problems))}")
        return 1
    return 0


def _list(args, layout: Layout) -> int:
    records = release_envs.read_records(layout)
    absent: List[str] = []
    if args.specs:
        tag = release_index.python_tag(getattr(sys, "_base_executable", sys.executable))
        releases, problems = release_index.resolve_all(args.specs, tag)
        absent = [r.name for r in releases if r.name not in records]
        for problem in problems.values():
            stderr(f"funcbench releases list: {problem}")
    print(f"releases in {layout.root}:")
    print("| release | status | python | torch git | disk (GB) | packages |")
    print("|---|---|---|---|---:|---|")
    for record in sorted(records.values(), key=lambda r: r.release.version):
        status = record.state()
        python = "" if not record.python else (record.python if record.release.kind == "python"
                                               else f"{record.base_python} -> {record.python}")
        disk = f"{record.disk_bytes / 1e9:.2f}" if record.disk_bytes is not None else ""
        packages = ", ".join(f"{k} {v}" for k, v in sorted(record.packages.items()))
        print(f"| {record.name} | {status} | {python} | {str(record.torch_git or '')[:12]} | {disk} | {packages} |")
    for name in sorted(absent, key=Version):
        print(f"| {name} | absent | | | | |")
    return 0


def _prune(args, layout: Layout) -> int:
    if not args.specs and not args.all:
        raise UsageError("name the releases to prune (SPEC...) or --all")
    records = release_envs.read_records(layout)
    for record in select(records, [] if args.all else args.specs):
        release_envs.prune(layout, record, log=stderr)
    if args.clean_cache:
        release_envs.clean_cache(layout)
        stderr(f"funcbench releases prune: emptied uv's cache in {layout.cache}")
    return 0


def _run(args, layout: Layout) -> int:
    selection = release_runs.Selection.of(tuple(t for t in args.tiers.split(",") if t), args.bench)
    machine = release_runs.default_machine(args.machine)
    if args.prune and not args.build:
        raise UsageError("--prune goes with --build (it prunes what this run built)")
    if not args.shard and (args.results_dir or args.print_plan or args.shards):
        raise UsageError("--results-dir, --shards and --print-plan go with --shard")
    commits, prepare, finish = _releases(args, layout)
    if args.shard:
        return _run_shard(args, layout, selection, machine, commits, prepare, finish)
    work = selection.items()
    if not args.again:  # refuse before anything runs: a release measured already
        for name, commit in commits.items():
            record = release_envs.read_records(layout).get(name) or _placeholder(name, commit)
            path = release_runs.results_path(layout, layout.results, machine, record)
            done = release_runs.already_measured(path, machine, work, layout.results)
            if done:
                raise ReleaseError(f"{name} was measured already ({len(done)} of the {len(work)} selected parameter sets "
                                   f"in {path}); --again measures it again, keeping the earlier file as .bak")
    code = 0
    for name in sorted(commits, key=Version):
        try:
            record = prepare(name)
            code = release_runs.measure(layout, record, selection, machine, layout.results, args.again, work, stderr) or code
            finish(record)
        except ReleaseError as error:  # one release that cannot run is one line; the others go on
            stderr(f"funcbench releases run: {name}: {error}")
            code = 1
    return code


def _placeholder(name: str, commit: str) -> EnvRecord:
    return EnvRecord(release_index.Release(name, "registry", f"torch=={name}"), release_envs.BUILDING, "", commit=commit)


def _releases(args, layout: Layout):
    """(release -> its commit, prepare(name) -> a built record, finish(record)) for a run: the
    built releases the SPECs name; with --build, the releases they name on the registry (or the
    wheels and pythons), each built just before its run (and pruned after it with --prune)."""
    if not args.build:
        chosen = select(release_envs.read_records(layout), args.specs)
        if not chosen:
            raise ReleaseError(f"no release is built in {layout.root} (funcbench releases build, or run --build)")
        for record in chosen:  # refuse before anything runs: a release not built
            if record.status != release_envs.BUILT:
                raise ReleaseError(f"{record.name} is not built ({record.state()}): funcbench releases build {record.name}")
        by_name = {r.name: r for r in chosen}
        return {r.name: r.commit for r in chosen}, by_name.__getitem__, lambda record: None
    tag = release_index.python_tag(args.python)
    releases, problems = release_index.resolve_all(args.specs, tag)
    if problems:
        raise ReleaseError(next(iter(problems.values())))
    layout.root.mkdir(parents=True, exist_ok=True)
    known = release_envs.read_records(layout)
    commits = {}
    for release in releases:  # a commit depends on its release alone: known before anything is built
        date = release.date or (known[release.name].date if release.name in known else None)
        if date is None:
            record = release_envs.build(layout, release, args.python, log=stderr)
            date = record.date
        commits[release.name] = release_history.commit(layout.repo, release.name, date)
    by_name = {r.name: r for r in releases}

    def prepare(name: str) -> EnvRecord:
        record = release_envs.build(layout, by_name[name], args.python, log=stderr)
        if record.status != release_envs.BUILT:
            raise ReleaseError(f"not built: {record.reason}")
        return record

    def finish(record: EnvRecord) -> None:
        if args.prune:  # the environment's files are hard links into uv's cache: both go
            release_envs.prune(layout, record, log=stderr)
            release_envs.clean_cache(layout)

    return commits, prepare, finish


def _run_shard(args, layout, selection, machine, commits, prepare, finish) -> int:
    if not args.results_dir and not args.print_plan:
        raise UsageError("--shard needs --results-dir DIR (a folder of this shard's own)")
    shard = engines.shard_spec(args.shard, os.environ, args.shards)
    plan = release_runs.plan_pairs(sorted(commits, key=Version), selection.items(), shard.count, cost_table.read()[0])
    if args.print_plan:
        print(plan.describe())
        return 0
    mine = sorted({name for name, *_ in plan.shards[shard.index - 1]}, key=Version)
    stderr(f"funcbench releases run {shard} ({shard.source}): {len(plan.shards[shard.index - 1])} pairs of "
           f"{', '.join(mine) or 'no release'}, plan {plan.digest}, results in {args.results_dir}")
    return release_runs.run_shard(layout, plan, shard, selection, machine, Path(args.results_dir), commits, prepare,
                                  finish, stderr)


def _publish(args, layout: Layout) -> int:
    if not layout.results.is_dir():
        raise ReleaseError(f"nothing measured in {layout.results} yet (funcbench releases run)")
    for record in release_envs.read_records(layout).values():  # the history from the records (a CI merge job
        if record.commit and record.date:                      # has their state files, not the runners' repos)
            if release_history.commit(layout.repo, record.name, record.date) != record.commit:
                raise ReleaseError(f"{record.name}'s commit in {layout.repo} is not the one it was measured at "
                                   f"({record.commit[:8]}): its record's date was changed")
    return publish_command.publish(release_runs.conf(layout), args.serve, args.port)


def _side(layout: Layout, records: Dict[str, EnvRecord], spec: str, machine: str) -> str:
    chosen = select(records, [spec])
    if len(chosen) != 1:
        raise ReleaseError(f"{spec} names {len(chosen)} releases ({', '.join(r.name for r in chosen)}): name one")
    if not chosen[0].commit:
        raise ReleaseError(f"{chosen[0].name} has no commit in the history (it never built)")
    return f"asv:{chosen[0].commit[:8]}@{machine}"


def _compare(args, layout: Layout) -> int:
    records = release_envs.read_records(layout)
    machine = release_runs.default_machine(args.machine)
    before, after = (_side(layout, records, spec, machine) for spec in (args.before, args.after))
    stderr(f"funcbench releases compare: {args.before} = {before}, {args.after} = {after} in {layout.results}")
    return compare_command.compare_sides(before, after, str(layout.results), args.metric, args.fail_above, args.output,
                                         args.explain, args.explain_raw)


def _steps(args, layout: Layout) -> int:
    records = [r for r in select(release_envs.read_records(layout), []) if r.commit]
    machine = release_runs.default_machine(args.machine)
    rows = {r.name: result_rows.commit_rows(str(layout.results), machine, r.commit) for r in records}
    measured = [r.name for r in records if rows[r.name]]
    if len(measured) < 2:
        raise ReleaseError(f"steps need two measured releases; {layout.results} has {len(measured)} for machine {machine}")
    at = args.at or release_steps.STEP_AT[args.metric]
    found = release_steps.steps(release_steps.series(rows, args.metric), measured, at)
    text = (f"Steps of {args.metric} of at least {at}x between neighbouring releases ({', '.join(measured)}), "
            f"largest first, machine {machine}:\n\n" + release_steps.table(found, args.metric, at))
    print(text)
    if args.output:
        write(args.output, text + "\n")
    return 0


VERBS = {"build": _build, "list": _list, "prune": _prune, "run": _run, "publish": _publish, "compare": _compare,
         "steps": _steps}
