"""``funcbench merge-results``: the asv results of the N shards of one plan (``funcbench shard
I/N``) merged into one asv results tree, which ``asv publish``, ``asv compare`` and
funcbench.results.asv_results read as if one machine had run everything (asv has no merge: asv issue 1362).

A shard's results dir is an asv results dir plus its manifest (funcbench.results.manifest). asv
stores a parameter set it did not run (not selected by the shard's ``--bench``, or skipped) as
NaN, so each parameter set's value comes from the shard that holds a number (or None: failed)
for it. What the merge refuses, with one line naming the culprit (and before writing anything):
shards of other plans, machines or commits, a missing or repeated shard index, a shard dir
inside ``into`` or the reverse, a benchmark with two versions, differing ``machine.json``
fields or environment headers, and a parameter set two shards measured differently (unless
``on_duplicate="latest"``: the later run wins).

Nothing recorded is lost: a results file the merge replaces is first kept as
``<name>.<UTC time>.bak``, unless it is exactly what an earlier merge of the same plan wrote.
The environments' fingerprints funcbench recorded beside each shard's results
(funcbench.results.environment) are carried into ``into``, and so are the counts' per-function
profiles (funcbench.results.profiles), cell by cell. Those writes are recorded in ``into/funcbench-merged.jsonl``, one JSON object per line
(file, sha256, plan, time; funcbench.fleet.merge_record): its name does not end in ``.json``, so asv (which reads every
``*.json`` under results/ as results) and funcbench.results.asv_results never read it, nor the ``.bak``
files.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from funcbench.fleet import merge_record
from funcbench.results import environment, profiles
from funcbench.util.files import set_aside
from funcbench.results.result_files import is_result_file
from funcbench.catalogue.param_sets import ParamSet
from funcbench.results.manifest import ShardManifest
from funcbench.util.text import first_line

try:  # asv is no dependency of the package (benchmark environments lack it); only merging needs it
    from asv import util as asv_util
    from asv.benchmarks import Benchmarks
    from asv.machine import Machine
    from asv.results import Results, get_filename, iter_results_paths
except ImportError:  # pragma: no cover
    Results = None

ON_DUPLICATE = ("refuse", "latest")

Group = Tuple[str, str, str]  # (machine, commit, env_name): one asv results file


class MergeError(Exception):
    """Shards that cannot be merged, or an ``into`` that cannot take them: one line for the user."""


@dataclasses.dataclass(frozen=True)
class Unfinished:
    """A parameter set a shard's manifest planned that no shard finished at ``commit``."""
    item: ParamSet
    shard: int
    commit: str

    def __str__(self) -> str:
        return f"{self.item.name} (shard {self.shard}, commit {self.commit[:8]})"


@dataclasses.dataclass
class MergeOutcome:
    written: List[Path] = dataclasses.field(default_factory=list)  # machine.json, benchmarks.json, results files
    kept_as_bak: List[Path] = dataclasses.field(default_factory=list)  # what was there before, renamed
    unfinished: List[Unfinished] = dataclasses.field(default_factory=list)
    replaced: List[str] = dataclasses.field(default_factory=list)  # duplicates settled by on_duplicate="latest"


@dataclasses.dataclass
class _Shard:
    dir: Path
    manifest: ShardManifest
    files: Dict[Group, "Results"] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"shard {self.manifest.shard} ({self.dir})"


def merge(into: Path, shard_dirs: Sequence[Path], on_duplicate: str = "refuse",
          log: Callable[[str], None] = print) -> MergeOutcome:
    """Merge ``shard_dirs`` (every shard of one plan) into the asv results dir ``into``."""
    if Results is None:
        raise MergeError("merging asv results needs asv (pip install asv)")
    if on_duplicate not in ON_DUPLICATE:
        raise MergeError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, not {on_duplicate!r}")
    into = Path(into)
    shards = [_read_manifest(Path(d)) for d in shard_dirs]
    _check_plan(shards)
    _check_nesting(into, shards)
    for shard in shards:
        _load_results(shard)
    # Everything is read and checked before anything is written: bad input leaves `into` as it was.
    benchmarks, benchmarks_changed = _merge_benchmarks(into, shards)
    machines = _merge_machines(into, shards)
    outcome = MergeOutcome()
    groups: Dict[Group, List[Tuple[_Shard, "Results"]]] = {}
    for shard in shards:
        for group, results in shard.files.items():
            groups.setdefault(group, []).append((shard, results))
    merged = {group: _merge_group(group, members, benchmarks, on_duplicate, outcome, log)
              for group, members in sorted(groups.items())}
    outcome.unfinished = _unfinished(shards)

    plan = shards[0].manifest.plan
    try:
        for machine, info in machines.items():
            path = into / machine / "machine.json"
            if not path.exists():
                asv_util.write_json(str(path), info, Machine.api_version)  # as Machine.save does
                outcome.written.append(path)
        if benchmarks_changed:
            path = Path(Benchmarks.get_benchmark_file_path(str(into)))
            asv_util.write_json(str(path), benchmarks, Benchmarks.api_version)  # as Benchmarks.save does
            outcome.written.append(path)
        record = merge_record.read(into)
        for group, results in merged.items():
            name = get_filename(*group)  # where results.save writes: <machine>/<commit[:8]>-<env_name>.json
            path = into / name
            if path.exists() and record.get(name) != (merge_record.sha256(path), plan):
                outcome.kept_as_bak.append(set_aside(path))
                log(f"kept {path} as {outcome.kept_as_bak[-1].name}: merge-results had not written it")
            results.save(str(into))
            outcome.written.append(path)
            merge_record.append(into, name, merge_record.sha256(path), plan)
            log(f"wrote {path} ({len(results.get_all_result_keys())} benchmarks, from {len(groups[group])} shard(s))")
        for shard in shards:  # the environments' fingerprints funcbench recorded beside the shards' results
            for key, facts in environment.recorded(shard.dir, shard.manifest.machine).items():
                environment.record(into, shard.manifest.machine, key, facts)
        for (machine, commit, env_name) in merged:  # the counts' per-function profiles, cell by cell
            found = [p for p in (profiles.for_result(shard.dir, machine, commit, env_name) for shard in shards) if p]
            if found:
                path = profiles.carry(into, machine, found)
                outcome.written.append(path)
                log(f"wrote {path} ({len(profiles.ProfileFile.read(path).cells)} counted parameter sets' profiles)")
    except OSError as error:
        raise MergeError(f"cannot write into {into}: {error}") from None
    for item in outcome.unfinished:
        log(f"not finished: {item}")
    log(f"merged {len(shards)} shard(s) of plan {plan} into {into}: {len(merged)} results file(s)"
        + (f"; {len(outcome.unfinished)} planned parameter set(s) did not finish" if outcome.unfinished else ""))
    return outcome


# ------------------------------------------------------------------------------ reading


def _read_manifest(path: Path) -> _Shard:
    try:
        return _Shard(path, ShardManifest.read(path))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MergeError(f"{path} is no readable shard results dir (its funcbench-shard.json: "
                         f"{first_line(error)})") from None


def _check_plan(shards: List[_Shard]) -> None:
    if not shards:
        raise MergeError("no shard dirs given")
    first = shards[0].manifest
    for shard in shards[1:]:
        for field in ("plan", "shards", "machine"):
            if getattr(shard.manifest, field) != getattr(first, field):
                raise MergeError(f"{shard} has {field} {getattr(shard.manifest, field)!r}, {shards[0]} has "
                                 f"{getattr(first, field)!r}: not shards of one plan")
        if set(shard.manifest.commits) != set(first.commits):
            raise MergeError(f"{shard} ran commits {_short(shard.manifest.commits)}, {shards[0]} ran "
                             f"{_short(first.commits)}: not shards of one plan")
    seen: Dict[int, _Shard] = {}
    for shard in shards:
        index = shard.manifest.shard
        if not 1 <= index <= first.shards:
            raise MergeError(f"{shard} says it is shard {index} of {first.shards}")
        if index in seen:
            raise MergeError(f"shard {index} given twice: {seen[index].dir} and {shard.dir}")
        seen[index] = shard
    missing = [i for i in range(1, first.shards + 1) if i not in seen]
    if missing:
        raise MergeError(f"shard(s) {', '.join(map(str, missing))} of {first.shards} missing "
                         f"(plan {first.plan}): give every shard's results dir")


def _check_nesting(into: Path, shards: List[_Shard]) -> None:
    """asv publish reads every results file under its results dir, a shard's too: no shard dir
    may sit inside ``into`` (nor ``into`` or another shard inside a shard dir)."""
    target = into.resolve()
    for shard in shards:
        here = shard.dir.resolve()
        if here == target or target in here.parents:
            raise MergeError(f"{shard} is inside {into}: asv would read it as results; put shard dirs elsewhere")
        if here in target.parents:
            raise MergeError(f"{into} is inside {shard}: merge into a dir outside every shard dir")
        for other in shards:
            if other is not shard and here in other.dir.resolve().parents:
                raise MergeError(f"{other} is inside {shard}: asv would read both as one results dir")


def _load_results(shard: _Shard) -> None:
    """Every asv results file of the shard, read with asv's own Results.load."""
    manifest = shard.manifest
    for folder in sorted(p for p in shard.dir.iterdir() if (p / "machine.json").is_file()):
        for root, filename, machine in iter_results_paths(str(folder)):
            if not is_result_file(filename):  # funcbench's own records stay in the shard dirs
                continue
            path = Path(root) / filename
            try:
                results = Results.load(str(path), machine_name=machine)
            except asv_util.UserError as error:
                raise MergeError(f"{shard}: {first_line(error)}") from None
            if machine != manifest.machine:
                raise MergeError(f"{path} holds results of machine {machine!r}; the manifest of {shard} says "
                                 f"{manifest.machine!r}")
            if results.commit_hash not in manifest.commits:
                raise MergeError(f"{path} holds results of commit {results.commit_hash[:8]}, which the manifest of "
                                 f"{shard} does not name ({_short(manifest.commits)})")
            group = _group(results)
            if group in shard.files:
                raise MergeError(f"{shard} holds two results files of commit {group[1][:8]}, environment {group[2]}")
            shard.files[group] = results


def _merge_benchmarks(into: Path, shards: List[_Shard]) -> Tuple[dict, bool]:
    """The union of the shards' benchmarks.json and ``into``'s, and whether ``into``'s changes.

    Shards of one plan ran one suite: their entries must be equal. ``into``'s may hold older
    params (a registry change does not change a benchmark's version), which the shards' replace,
    but not another version: asv publish would drop every result of the other version."""
    found: Dict[str, Tuple[dict, _Shard]] = {}
    for shard in shards:
        path = Path(Benchmarks.get_benchmark_file_path(str(shard.dir)))
        if not path.exists():
            continue  # a shard that died before discovery; the others' list its benchmarks
        for name, entry in _load_json(path, Benchmarks.api_version).items():
            if name in found and found[name][0] != entry:
                other = found[name][1]
                fields = [k for k in sorted(set(entry) | set(found[name][0])) if entry.get(k) != found[name][0].get(k)]
                raise MergeError(f"benchmark {name} differs between {other} and {shard} ({', '.join(fields)}): "
                                 f"not one suite")
            found.setdefault(name, (entry, shard))
    merged = {name: entry for name, (entry, _) in found.items()}
    path = Path(Benchmarks.get_benchmark_file_path(str(into)))
    existing = _load_json(path, Benchmarks.api_version) if path.exists() else {}
    for name, entry in existing.items():
        if name in merged and merged[name].get("version") != entry.get("version"):
            raise MergeError(f"benchmark {name} has version {merged[name].get('version')!r} in the shards and "
                             f"{entry.get('version')!r} in {path}: merge into another dir")
        merged.setdefault(name, entry)
    for shard in shards:
        for group, results in shard.files.items():
            unknown = sorted(set(results.get_all_result_keys()) - set(merged))
            if unknown:
                raise MergeError(f"{shard} has results of {unknown[0]}, which no benchmarks.json lists")
    return merged, merged != existing


def _merge_machines(into: Path, shards: List[_Shard]) -> Dict[str, dict]:
    """Each machine's machine.json, equal in every shard that has its results and in ``into``."""
    found: Dict[str, Tuple[dict, str]] = {}
    sources = [(shard.dir, str(shard), {group[0] for group in shard.files}) for shard in shards]
    sources.append((into, str(into), {group[0] for shard in shards for group in shard.files}))
    for folder, label, machines in sources:
        for machine in sorted(machines):
            path = folder / machine / "machine.json"
            if folder is into and not path.exists():
                continue
            info = _load_json(path, Machine.api_version)
            if machine in found and found[machine][0] != info:
                first, where = found[machine]
                fields = [k for k in sorted(set(info) | set(first)) if info.get(k) != first.get(k)]
                raise MergeError(f"machine {machine} differs between {where} and {label} in {', '.join(fields)}: "
                                 f"one machine name must mean one machine")
            found.setdefault(machine, (info, label))
    return {machine: info for machine, (info, _) in found.items()}


# ------------------------------------------------------------------------------ merging


def _merge_group(group: Group, members: List[Tuple[_Shard, "Results"]], benchmarks: dict, on_duplicate: str,
                 outcome: MergeOutcome, log) -> "Results":
    """One results file from the shards' files of one (machine, commit, environment)."""
    machine, commit, env_name = group
    where = f"commit {commit[:8]}, environment {env_name}"
    first_shard, first = members[0]
    for shard, results in members[1:]:
        for field, a, b in zip(_HEADER, _header(first), _header(results)):
            if a != b:
                raise MergeError(f"{field} of {where} differs between {first_shard} and {shard}: {a!r} vs {b!r}")
    merged = Results(first.params, first._requirements, commit, first.date, first._python, env_name, first.env_vars)
    # asv has no setter for a stored row (add_result recomputes stats from samples and needs the
    # runner's result object), so rows are set as Results.load sets them.
    for _, results in members:  # file-level durations (<build>, <setup_cache ...>): summed per key
        for key, seconds in results.duration.items():
            if key.startswith("<") and seconds is not None:
                merged._duration[key] = merged._duration.get(key, 0.0) + seconds
    names = sorted({name for _, results in members for name in results.get_all_result_keys()})
    for name in names:
        holders = [(shard, r) for shard, r in members if name in r.get_all_result_keys()]
        versions = {r.benchmark_version.get(name) for _, r in holders}
        if len(versions) > 1:
            raise MergeError(f"benchmark {name} has versions {', '.join(map(repr, sorted(versions, key=str)))} "
                             f"in the shards' results of {where}")
        params = benchmarks[name]["params"]
        combos = list(itertools.product(*params))
        columns = []  # per holder: (shard, results, values, stats, samples, combos it holds)
        for shard, r in holders:
            own = set(itertools.product(*r.get_result_params(name)))
            columns.append((shard, r, r.get_result_value(name, params), r.get_result_stats(name, params),
                            r.get_result_samples(name, params), own))
        values, stats, samples = [], [], []
        for index, combo in enumerate(combos):
            measured = [(shard, r, v[index], st[index], sa[index]) for shard, r, v, st, sa, own in columns
                        if combo in own and not asv_util.is_nan(v[index])]  # NaN: not run there
            chosen = measured[0] if measured else None
            if any(m[2:] != chosen[2:] for m in measured[1:]):  # value, stats or samples differ
                label = f"{ParamSet(name, combo).name} at {where}"
                if on_duplicate == "refuse":
                    a, b = measured[0], measured[1]
                    raise MergeError(f"{label}: {a[0]} measured {a[2]!r}, {b[0]} measured {b[2]!r}; "
                                     f"--on-duplicate latest keeps the later run")
                chosen = max(measured, key=lambda m: (m[1].started_at.get(name) or 0, m[0].manifest.shard))
                outcome.replaced.append(label)
                log(f"{label}: measured by {len(measured)} shards, kept {chosen[0]}'s later run")
            values.append(chosen[2] if chosen else float("nan"))
            stats.append(chosen[3] if chosen else None)
            samples.append(chosen[4] if chosen else None)
        # A benchmark several shards ran: it started when the last of them started, and took
        # the time of all of them (sums also the runs a duplicate's winner replaced).
        starts = [r.started_at.get(name) for _, r in holders if r.started_at.get(name) is not None]
        seconds = [r.duration.get(name) for _, r in holders if r.duration.get(name) is not None]
        profiles = [(r.started_at.get(name) or 0, r._profiles[name]) for _, r in holders if r._profiles.get(name)]
        merged._results[name] = values
        merged._stats[name] = stats if any(s is not None for s in stats) else None
        merged._samples[name] = samples if any(s is not None for s in samples) else None
        merged._benchmark_params[name] = params
        merged._benchmark_version[name] = versions.pop()
        merged._started_at[name] = max(starts) if starts else None
        if seconds:
            merged._duration[name] = sum(seconds)
        if profiles:  # one profile per benchmark: the latest run's
            merged._profiles[name] = max(profiles)[1]
    return merged


_HEADER = ("params", "python", "requirements", "env_vars", "date")


def _header(results: "Results") -> tuple:
    # asv keeps python and requirements without a public accessor.
    return results.params, results._python, results._requirements, results.env_vars, results.date


def _group(results: "Results") -> Group:
    return results.params.get("machine"), results.commit_hash, results.env_name


def _unfinished(shards: List[_Shard]) -> List[Unfinished]:
    """Planned (item, commit)s that no shard finished: none holds a value (a number or None,
    failed) for it, and none lists it as finished with its benchmark in that results file
    (a skipped, n/a parameter set is NaN in the results: only the manifest says it ran)."""
    done = set()
    for shard in shards:
        for (_, commit, _), results in shard.files.items():
            for name in results.get_all_result_keys():
                params = results.get_result_params(name)
                for combo, value in zip(itertools.product(*params), results.get_result_value(name, params)):
                    if not asv_util.is_nan(value):
                        done.add((ParamSet(name, combo), commit))
        for item, commit, env_name in shard.manifest.finished:
            results = shard.files.get((shard.manifest.machine, commit, env_name))
            if results is not None and item.benchmark in results.get_all_result_keys():
                done.add((item, commit))
    return [Unfinished(item, shard.manifest.shard, commit)
            for shard in sorted(shards, key=lambda s: s.manifest.shard)
            for item, commit in shard.manifest.work() if (item, commit) not in done]


# ------------------------------------------------------------------------------ glue


def _load_json(path: Path, api_version: int) -> dict:
    try:
        return asv_util.load_json(str(path), api_version=api_version)
    except (OSError, asv_util.UserError) as error:
        raise MergeError(first_line(error)) from None


def _short(commits: Sequence[str]) -> str:
    return ", ".join(c[:8] for c in commits) or "none"
