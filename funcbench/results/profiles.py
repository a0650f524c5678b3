"""Holding per-function instruction counts: callgrind's self instructions of every function in a
counted cell's median call, kept beside asv's results so that a count that moved can say where.

One file per asv results file, ``results/<machine>/funcbench-profiles-<commit[:8]>-<env_name>.json.gz``
(gzipped JSON; its name does not end in ``.json``, so asv, which reads every ``*.json`` under
results/ as results, never reads it). It holds, per counted parameter set ("model:task:api preset"),
the count asv stored (``total``) and each function's self instructions, which sum to it exactly.

The counting runs in asv's benchmark process, which knows its commit and environment
(ASV_COMMIT, ASV_ENV_NAME; in an existing environment asv gives neither, and funcbench's asv
adapter passes them as COMMIT_VARIABLE and ENV_VARIABLE) but not asv's machine: it writes ``<results>/funcbench-profiles/
<commit[:8]>-<env_name>.json.gz`` (*unfiled*), and ``file`` moves that beside the results file
asv wrote (funcbench's asv adapter does after every ``asv run``). A plain ``asv run`` leaves it
unfiled, where ``for_result`` finds it too. A recount of a cell replaces that cell's profile,
as asv replaces its count; every other cell's stays.
"""
from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from funcbench.catalogue import config
from funcbench.measurement.instructions.protocol import Function
from funcbench.results.result_files import existing_env_name
from funcbench.util.files import set_aside, write_atomically

FORMAT = 1
PREFIX, SUFFIX = "funcbench-profiles-", ".json.gz"
UNFILED = "funcbench-profiles"  # the folder in results/ where asv's benchmark process writes
# Where the benchmark process writes: set by funcbench's asv adapter to <results>/funcbench-profiles;
# unset (a plain `asv run`), the results_dir of $ASV_CONF_DIR/asv.conf.json.
DIR_VARIABLE = config.PROFILES_DIR.name
# The commit and environment the results go to where asv does not say: asv runs a benchmark in an
# existing environment without any ASV_ variable. funcbench's asv adapter sets them from
# --set-commit-hash and -E existing:PYTHON. A plain `asv run -E existing:...` with DIR_VARIABLE set
# keeps a *pending* profile (no commit) that for_result takes for a results file whose counts it
# matches to the instruction; without DIR_VARIABLE it keeps none (it cannot know where results are).
COMMIT_VARIABLE, ENV_VARIABLE = "FUNCBENCH_PROFILES_COMMIT", "FUNCBENCH_PROFILES_ENV"
PENDING = "pending"  # the name's commit part of a profile kept without a commit


@dataclasses.dataclass
class CellProfile:
    total: int  # the count asv stored for the parameter set (the median counted call)
    functions: Dict[Function, int]  # self instructions per function; they sum to total

    @property
    def exact(self) -> bool:
        """Whether the functions sum to the count (a file another tool wrote might not)."""
        return sum(self.functions.values()) == self.total


@dataclasses.dataclass
class ProfileFile:
    commit: str
    env_name: str
    cells: Dict[str, CellProfile] = dataclasses.field(default_factory=dict)  # key: cell_key(cell, preset)

    @property
    def name(self) -> str:
        return f"{self.commit[:8] or PENDING}-{self.env_name}{SUFFIX}"

    def to_json(self) -> dict:
        """One name table for the file; per cell its functions' indices in that table, ascending, as
        differences from the previous (``ids``), and their counts (``counts``) in the same order:
        half the gzipped bytes of [index, count] pairs."""
        names = {f: i for i, f in enumerate(sorted({f for p in self.cells.values() for f in p.functions}))}
        cells = {}
        for key, profile in sorted(self.cells.items()):
            rows = sorted((names[f], n) for f, n in profile.functions.items())
            ids = [i for i, _ in rows]
            cells[key] = {"total": profile.total, "ids": [b - a for a, b in zip([0, *ids], ids)],
                          "counts": [n for _, n in rows]}
        return {"format": FORMAT, "commit": self.commit, "env_name": self.env_name,
                "names": [list(f) for f in names], "cells": cells}

    @classmethod
    def from_json(cls, data: dict, source: str) -> "ProfileFile":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source}: not a funcbench profile file of format {FORMAT}")
        names = [Function(*entry) for entry in data["names"]]
        cells = {}
        for key, entry in data["cells"].items():
            ids = list(itertools.accumulate(entry["ids"]))
            if len(ids) != len(entry["counts"]) or ids != sorted(set(ids)) or (ids and not 0 <= ids[0] <= ids[-1] < len(names)):
                raise ValueError(f"{source}: {key}: its function indices do not fit its counts or the name table")
            cells[key] = CellProfile(int(entry["total"]), {names[i]: int(n) for i, n in zip(ids, entry["counts"])})
        return cls(str(data["commit"]), str(data["env_name"]), cells)

    def write(self, path: Path) -> int:
        """Write atomically (a reader never sees half a file); the bytes written."""
        data = gzip.compress(json.dumps(self.to_json(), separators=(",", ":")).encode(), mtime=0)
        write_atomically(path, data)
        return len(data)

    @classmethod
    def read(cls, path: Path) -> "ProfileFile":
        try:
            return cls.from_json(json.loads(gzip.decompress(Path(path).read_bytes())), str(path))
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"{path}: not a readable profile file ({str(error).splitlines()[0]})") from None

    def updated(self, other: "ProfileFile") -> "ProfileFile":
        """This file's cells with ``other``'s (a later count) replacing those it counted again."""
        return ProfileFile(self.commit, self.env_name, {**self.cells, **other.cells})


def cell_key(cell: object, preset: str) -> str:
    return f"{cell} {preset}"


def from_counts(commit: str, env_name: str, counts: Mapping[str, object], preset: str,
                profiles: Mapping[str, Mapping[Tuple[str, str, str], int]]) -> ProfileFile:
    """A counting's profiles (count_for_run's "profiles"), each with the count asv stores."""
    cells = {}
    for cell, functions in profiles.items():
        total = counts.get(cell)
        if isinstance(total, (int, float)):
            cells[cell_key(cell, preset)] = CellProfile(int(total), {Function(*f): int(n) for f, n in functions.items()})
    return ProfileFile(commit, env_name, cells)


def unfiled_dir(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Where asv's benchmark process writes: DIR_VARIABLE, else asv.conf.json's results_dir under
    $ASV_CONF_DIR; None outside asv."""
    environ = os.environ if environ is None else environ
    if environ.get(DIR_VARIABLE):
        return Path(environ[DIR_VARIABLE])
    conf_dir = environ.get("ASV_CONF_DIR")
    if not conf_dir:
        return None
    try:
        results = config.load_asv_conf(Path(conf_dir) / "asv.conf.json").get("results_dir", "results")
    except (OSError, ValueError):
        results = "results"
    return Path(conf_dir) / results / UNFILED


def keep(counts: dict, environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """In asv's benchmark process (setup_cache): count_for_run's profiles written unfiled, merged
    with what an earlier count of the same commit and environment wrote; the path, or None
    outside asv or without profiles."""
    environ = os.environ if environ is None else environ
    folder = unfiled_dir(environ)
    commit = environ.get(COMMIT_VARIABLE) or environ.get("ASV_COMMIT") or ""  # "": pending
    # asv names an existing environment by the interpreter it runs, sys.executable here
    env_name = environ.get(ENV_VARIABLE) or environ.get("ASV_ENV_NAME") or existing_env_name(sys.executable)
    if not (folder and counts.get("profiles")):
        return None
    new = from_counts(commit, env_name, counts["cells"], counts["preset"], counts["profiles"])
    path = folder / new.name
    _merged_into(path, new)
    return path


def _merged_into(path: Path, new: ProfileFile) -> None:
    """Write ``new`` at ``path`` over the cells it counted again; a file there that cannot be read
    (or is another commit's) is first set aside as ``<name>.<UTC time>.bak``, never lost."""
    old = None
    if path.is_file():
        try:
            old = ProfileFile.read(path)
        except ValueError:
            pass
        if old is None or old.commit != new.commit:
            set_aside(path)
            old = None
    (old.updated(new) if old else new).write(path)


def _read_or_none(path: Path) -> Optional[ProfileFile]:
    try:
        return ProfileFile.read(path) if path.is_file() else None
    except ValueError:
        return None


def filed_path(results_dir: Path, machine: str, commit: str, env_name: str) -> Path:
    return Path(results_dir) / machine / f"{PREFIX}{commit[:8]}-{env_name}{SUFFIX}"


def file(results_dir: Path, machine: Optional[str] = None) -> List[Path]:
    """Move every unfiled profile beside its asv results file: in ``machine``'s folder where that
    holds it, else the folder whose results file of that commit and environment is the newest
    (the one asv just wrote). One without a results file stays unfiled. The paths written."""
    results_dir = Path(results_dir)
    written = []
    for path in sorted((results_dir / UNFILED).glob(f"*{SUFFIX}")):
        name = path.name[:-len(SUFFIX)] + ".json"
        folders = [p.parent for p in results_dir.glob(f"*/{name}") if (p.parent / "machine.json").is_file()]
        if not folders:
            continue
        mine = [f for f in folders if f.name == machine]
        folder = mine[0] if mine else max(folders, key=lambda f: (f / name).stat().st_mtime)
        new = _read_or_none(path)
        if new is None:  # not ours to judge: left where it is, and for_result skips it
            continue
        target = filed_path(results_dir, folder.name, new.commit, new.env_name)
        _merged_into(target, new)
        path.unlink()
        written.append(target)
    return written


def for_result(results_dir: Path, machine: str, commit: str, env_name: str) -> Optional[ProfileFile]:
    """The profiles of one asv results file: filed beside it, else unfiled, else the environment's
    pending one (kept without a commit; a reader uses a cell's profile only where its total is the
    result's count); None where there are none (counted before profiles were kept, or by another
    tool, or by a plain asv run in an existing environment without DIR_VARIABLE)."""
    for path in (filed_path(results_dir, machine, commit, env_name),
                 Path(results_dir) / UNFILED / f"{commit[:8]}-{env_name}{SUFFIX}",
                 Path(results_dir) / UNFILED / f"{PENDING}-{env_name}{SUFFIX}"):
        found = _read_or_none(path)
        if found is not None and found.commit in (commit, ""):
            return dataclasses.replace(found, commit=commit)
    return None


def carry(results_dir: Path, machine: str, found: List[ProfileFile]) -> Path:
    """Profiles of one results file from several places (shards of one plan: each counted its own
    cells) merged, in order, into ``results_dir``'s filed profile; its path."""
    merged = found[0]
    for other in found[1:]:
        merged = merged.updated(other)
    path = filed_path(results_dir, machine, merged.commit, merged.env_name)
    _merged_into(path, merged)
    return path
