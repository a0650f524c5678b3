"""asv's results files: the one rule for which files are results, and one load of each.

asv (0.6.6, results API version 2) writes one file per (machine, commit, environment):
``results/<machine>/<commit[:8]>-<env_name>.json``, next to ``results/<machine>/machine.json`` and
``results/benchmarks.json``. A file is read once, by asv's own ``asv.results.Results.load``; its
header (``ResultFile``) and its rows (funcbench.results.result_rows) both come from that load. Only a
file asv cannot load (or where asv is not installed) is read as plain JSON, to say why.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Dict, List, Optional

from funcbench.catalogue import config

RESULTS_API_VERSION = 2  # asv.results.Results.api_version in asv 0.6.x
SKIP_FILES = ("machine.json", "benchmarks.json")
OWN_FILES = "funcbench-"  # funcbench's own records beside asv's results (e.g. environment fingerprints)


class SelectionError(Exception):
    """A selection or results directory that cannot give a table: one line for the user."""


def existing_env_name(python: str) -> str:
    """asv's name of the existing environment of ``python`` (its path, separators as '_')."""
    return "existing-py" + python.replace(os.sep, "_")


def is_result_file(name: str) -> bool:
    """Whether a file name in a machine's folder is an asv results file (asv reads every other
    ``*.json`` there as one too, so funcbench's own records are told apart by their prefix)."""
    return name.endswith(".json") and name not in SKIP_FILES and not name.startswith(OWN_FILES)


def date_text(ms: Optional[int]) -> str:
    if not ms:
        return "no date"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclasses.dataclass
class ResultFile:
    """The header of one asv results file, and asv's load of it (None where asv could not load it)."""
    path: str
    machine: str
    commit: str = ""
    date: Optional[int] = None  # commit date, ms since the epoch
    env_name: str = ""
    env_vars: Dict[str, str] = dataclasses.field(default_factory=dict)
    python: str = ""
    requirements: Dict[str, str] = dataclasses.field(default_factory=dict)
    started_at: Optional[int] = None  # latest benchmark start in the file, ms since the epoch
    benchmarks: int = 0
    problem: Optional[str] = None  # why the file cannot be used (e.g. another results API)
    results: Any = dataclasses.field(default=None, repr=False, compare=False)  # asv.results.Results

    @property
    def short(self) -> str:
        return self.commit[:8]

    def setting(self, setting: config.Setting) -> str:
        """A FUNCBENCH_* variable asv recorded for the environment, or the suite's default."""
        return self.env_vars.get(setting.name) or setting.default

    def sort_key(self):
        return (self.date or 0, self.started_at or 0)

    def describe(self, preset: Optional[str] = None, device: Optional[str] = None) -> str:
        return (f"commit {self.short} ({date_text(self.date)}), machine {self.machine}, environment {self.env_name} "
                f"(preset {preset or self.setting(config.PRESET)}, device {device or self.setting(config.DEVICE)})")

    def loaded(self):
        """asv's Results of the file: the load ``read_file`` made, else asv's error (SelectionError)."""
        return self.results if self.results is not None else load_results(self.path, self.machine)


def load_results(path: str, machine: str):
    """asv's ``Results.load`` of one file; SelectionError (one line) where asv cannot."""
    try:
        from asv import util as asv_util
        from asv.results import Results
    except ImportError:
        raise SelectionError("reading asv results needs asv (pip install asv)") from None
    try:
        return Results.load(path, machine_name=machine)
    except asv_util.UserError as error:
        raise SelectionError(str(error).splitlines()[0]) from None


def read_file(path: str, machine: str) -> ResultFile:
    """One results file's header from asv's load of it (kept for its rows); a file asv cannot
    load is read as JSON for its header and why it cannot be used."""
    try:
        results = load_results(path, machine)
        name = os.path.basename(path)
        # asv has no public accessor for python and requirements: its own attributes (asv 0.6.x).
        return ResultFile(
            path=path, machine=machine, commit=str(results.commit_hash or name.split("-")[0]),
            date=results.date if isinstance(results.date, int) else None,
            env_name=str(results.env_name or name[9:-5]),
            env_vars={str(k): str(v) for k, v in (results.env_vars or {}).items()},
            python=str(results._python), requirements={str(k): str(v) for k, v in (results._requirements or {}).items()},
            started_at=max((s for s in results.started_at.values() if s), default=None),
            benchmarks=len(results.get_all_result_keys()), results=results)
    except (SelectionError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return _read_json_header(path, machine)


def _read_json_header(path: str, machine: str) -> ResultFile:
    """The header of a file asv could not load, and why it cannot be used (a file whose header
    reads well here gets asv's reason when its rows are read)."""
    entry = ResultFile(path=path, machine=machine)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        entry.problem = f"not a readable JSON file ({error})"
        return entry
    if not isinstance(data, dict):
        entry.problem = "not an asv results file"
        return entry
    version = data.get("version")
    entry.commit = str(data.get("commit_hash") or os.path.basename(path).split("-")[0])
    entry.env_name = str(data.get("env_name") or os.path.basename(path)[9:-5])
    entry.date = data.get("date") if isinstance(data.get("date"), int) else None
    if version != RESULTS_API_VERSION:
        hint = "run `asv update` to convert it" if isinstance(version, int) and version < RESULTS_API_VERSION \
            else "written by another asv"
        entry.problem = (f"asv results API version {version}, funcbench reads version {RESULTS_API_VERSION} "
                         f"(asv 0.6.x); {hint}")
        return entry
    try:
        entry.env_vars = {str(k): str(v) for k, v in (data.get("env_vars") or {}).items()}
        entry.python = str(data.get("python", ""))
        entry.requirements = {str(k): str(v) for k, v in (data.get("requirements") or {}).items()}
        results = data["results"]
        columns = data["result_columns"]
        entry.benchmarks = len(results)
        if "started_at" in columns:
            column = columns.index("started_at")
            starts = [row[column] for row in results.values() if len(row) > column and row[column]]
            entry.started_at = max(starts) if starts else None
    except (KeyError, TypeError, AttributeError) as error:
        entry.problem = f"not an asv results file (missing or malformed {error})"
    return entry


def scan(results_dir: str) -> List[ResultFile]:
    """Every results file under ``results_dir`` (unusable ones carry a ``problem``)."""
    if not os.path.isdir(results_dir):
        raise SelectionError(f"no asv results directory {results_dir!r} (run `asv run` first, "
                             f"or name the directory with --results-dir)")
    entries = []
    for machine in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, machine)
        if not os.path.isfile(os.path.join(folder, "machine.json")):
            continue
        for name in sorted(os.listdir(folder)):
            if is_result_file(name):
                entries.append(read_file(os.path.join(folder, name), machine))
    if not entries:
        raise SelectionError(f"asv results directory {results_dir!r} holds no results "
                             f"(no <machine>/machine.json with result files next to it)")
    return entries
