"""Reading asv's results/ directory into the original report and speedup tables.

asv (0.6.6, results API version 2) writes one file per (machine, commit, environment):
``results/<machine>/<commit[:8]>-<env_name>.json``, next to ``results/<machine>/machine.json`` and
``results/benchmarks.json``. Each ``time_*`` benchmark of the suite is parameterised by model,
task and api; a results file holds, per parameter combination, asv's result (the median of
the per-call samples), its statistics (99% confidence interval of the median, quartiles) and,
with ``asv run --record-samples``, the samples themselves (seconds per call).

Mapping to the original tables:
- mean / var: the mean and unbiased variance of the recorded samples when there are any;
  otherwise the median asv stored and a variance derived from the interquartile range
  (``((q_75 - q_25) / 1.349) ** 2``, the variance of a normal distribution with that IQR).
- model column: ``model_label(model, preset)``; task column: ``task_label(task, api)``. The
  preset and device of a row come from its benchmark's ``preset`` / ``device`` parameters
  (``-E existing:PYTHON`` environments ignore the matrix, so asv records no environment
  variables for them), else from the variables asv recorded (the matrix's ``env_nobuild``
  FUNCBENCH_PRESET / FUNCBENCH_DEVICE), else the suite's defaults (funcbench.config).
- significance (compare): asv's own test, ``asv._stats.is_different`` (the one ``asv compare``
  uses): Mann-Whitney U on the samples when both sides recorded enough of them, otherwise
  whether the 99% confidence intervals overlap. A change it cannot tell from noise gets '~'.

Selections name one results file: ``asv:COMMIT[@MACHINE][/ENV]`` on the compare command line,
``--commit/--machine/--environment`` on the report command. COMMIT is a hash prefix, ENV an
environment name, or an end or a part of one that only one environment has; whatever is left out
defaults to the newest (commit date, then when the run started).
"""
from __future__ import annotations

import ast
import dataclasses
import datetime
import itertools
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from . import config
from .measurement import METRICS, Measurement
from .models.common import PRESETS
from .registry import MODELS, Cell
from .report import Key, Report
from .tasks import APIS, TASKS

RESULTS_API_VERSION = 2  # asv.results.Results.api_version in asv 0.6.x
SELECTION_PREFIX = "asv:"
IQR_TO_SIGMA = 1.349  # interquartile range of a standard normal distribution
SKIP_FILES = ("machine.json", "benchmarks.json")


class SelectionError(Exception):
    """A selection or results directory that cannot give a table: one line for the user."""


@dataclasses.dataclass
class ResultFile:
    """The header of one asv results file (everything but the benchmark values)."""
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

    @property
    def short(self) -> str:
        return self.commit[:8]

    def var(self, setting: config.Setting) -> str:
        """A FUNCBENCH_* variable asv recorded for the environment, or the suite's default."""
        return self.env_vars.get(setting.name) or setting.default

    def sort_key(self):
        return (self.date or 0, self.started_at or 0)

    def describe(self, preset: Optional[str] = None, device: Optional[str] = None) -> str:
        return (f"commit {self.short} ({_date(self.date)}), machine {self.machine}, environment {self.env_name} "
                f"(preset {preset or self.var(config.PRESET)}, device {device or self.var(config.DEVICE)})")


@dataclasses.dataclass
class AsvSide:
    """One side of a comparison read from asv: the report, whose measurements carry asv's
    statistics and samples per row."""
    source: ResultFile
    report: Report
    metric: str = "time"
    missing: List[str] = dataclasses.field(default_factory=list)  # cells whose benchmark failed
    selection: str = ""  # the selection that named it, and notes on what its defaults chose
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def sampled(self) -> int:
        """Rows whose mean/var come from recorded samples."""
        return sum(m.samples is not None for m in self.report.measurements.values())

    def identity(self) -> Tuple[str, str]:
        """(preset, device) of the rows, from their params: the environment's variables are
        empty for `-E existing` runs. Several values are listed; no rows: the environment's."""
        found = [sorted({getattr(m, what) for m in self.report.measurements.values()}) for what in ("preset", "device")]
        return tuple(", ".join(values) if values else "" for values in found)

    def describe(self) -> str:
        return self.source.describe(*self.identity())


# ----------------------------------------------------------------------------- scanning


def _date(ms: Optional[int]) -> str:
    if not ms:
        return "no date"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _read_header(path: str, machine: str) -> ResultFile:
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
            if name.endswith(".json") and name not in SKIP_FILES:
                entries.append(_read_header(os.path.join(folder, name), machine))
    if not entries:
        raise SelectionError(f"asv results directory {results_dir!r} holds no results "
                             f"(no <machine>/machine.json with result files next to it)")
    return entries


# ---------------------------------------------------------------------------- selection


def parse_selection(spec: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """``asv:COMMIT[@MACHINE][/ENV]`` -> (commit, machine, environment); empty parts are None."""
    if not is_selection(spec):
        raise SelectionError(f"{spec!r} is not an asv selection (asv:COMMIT[@MACHINE][/ENV])")
    rest = spec[len(SELECTION_PREFIX):]
    rest, _, env = rest.partition("/")
    commit, _, machine = rest.partition("@")
    return commit or None, machine or None, env or None


def is_selection(spec: str) -> bool:
    return spec.startswith(SELECTION_PREFIX)


def _names(values) -> str:
    return ", ".join(sorted(set(values))) or "none"


def select(entries: Sequence[ResultFile], commit: Optional[str] = None, machine: Optional[str] = None,
           environment: Optional[str] = None) -> Tuple[ResultFile, List[str]]:
    """The one results file a selection names, and notes on what the defaults chose among."""
    candidates = list(entries)
    if machine is not None:
        candidates = [e for e in candidates if e.machine == machine]
        if not candidates:
            raise SelectionError(f"unknown machine {machine!r}; machines: {_names(e.machine for e in entries)}")
    where = f" on machine {machine}" if machine else ""
    if commit is not None:
        wanted = commit.lower()
        matching = [e for e in candidates if e.commit.lower().startswith(wanted)]
        if not matching:
            raise SelectionError(f"unknown commit {commit!r}{where}; commits: {_names(e.short for e in candidates)}")
        commits = {e.commit for e in matching}
        if len(commits) > 1:
            raise SelectionError(f"commit {commit!r} is ambiguous{where}: {_names(c[:12] for c in commits)}")
        candidates = matching
        where += f" at commit {commit}"
    if environment is not None:
        # An exact name, else the one name ending with it (existing-..._bin_python vs ..._python3),
        # else the one name containing it.
        matching = []
        for test in (str.__eq__, str.endswith, str.__contains__):
            matching = [e for e in candidates if test(e.env_name, environment)]
            if len({e.env_name for e in matching}) == 1:
                break
        if not matching:
            raise SelectionError(f"unknown environment {environment!r}{where}; environments: "
                                 f"{_names(e.env_name for e in candidates)}")
        if len({e.env_name for e in matching}) > 1:
            raise SelectionError(f"environment {environment!r} is ambiguous{where}: "
                                 f"{_names(e.env_name for e in matching)}")
        candidates = matching
    usable = [e for e in candidates if e.problem is None]
    if not usable:
        bad = candidates[0]
        raise SelectionError(f"{bad.path}: {bad.problem}")
    chosen = max(usable, key=ResultFile.sort_key)
    notes = []
    same_commit = [e for e in usable if e.commit == chosen.commit]
    same_machine = [e for e in same_commit if e.machine == chosen.machine]
    for what, given, seen, picked in (("commits", commit, {e.short for e in usable}, chosen.short),
                                      ("machines", machine, {e.machine for e in same_commit}, chosen.machine),
                                      ("environments", environment, {e.env_name for e in same_machine},
                                       chosen.env_name)):
        if given is None and len(seen) > 1:
            notes.append(f"took the newest of {len(seen)} {what}; the others: {_names(seen - {picked})}")
    skipped = [e for e in candidates if e.problem is not None]
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable file(s), e.g. {skipped[0].path}: {skipped[0].problem}")
    return chosen, notes


# ------------------------------------------------------------------------------ reading


def _param_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _benchmark_param_names(results_dir: str) -> Dict[str, List[str]]:
    try:
        with open(os.path.join(results_dir, "benchmarks.json"), encoding="utf-8") as handle:
            data = json.load(handle)
        return {name: list(info.get("param_names") or []) for name, info in data.items() if isinstance(info, dict)}
    except (OSError, ValueError, AttributeError):
        return {}


def _guess_names(values: Sequence[Sequence[object]]) -> List[str]:
    """Name parameters by their values when benchmarks.json does not have the benchmark."""
    known = {"model": set(MODELS), "task": set(TASKS), "api": set(APIS), "preset": set(PRESETS),
             "device": {"cpu", "cuda"}}
    names = []
    for index, column in enumerate(values):
        name = next((n for n, choices in known.items() if column and all(v in choices for v in column)), None)
        if name is None and column and all(isinstance(v, str) and _split_cell(v) for v in column):
            name = "cell"
        names.append(name or f"param{index + 1}")
    return names


def _split_cell(text: str) -> Optional[Cell]:
    parts = text.split(":")
    return Cell(*parts) if len(parts) == 3 else None


def row_order(cell: Cell):
    """Rows in the registry's order of models, tasks and APIs (unknown names last)."""
    model, task, api = cell
    rank = lambda seq, v: seq.index(v) if v in seq else len(seq)  # noqa: E731
    return (rank(list(MODELS), model), str(model), rank(list(TASKS), task), str(task), rank(list(APIS), api), str(api))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Which asv benchmarks hold each metric's values (method name -> metric).
METRIC_METHODS = {"time": lambda method: method.startswith("time_"),
                  "instructions": lambda method: method == "track_instructions",
                  "compile_seconds": lambda method: method == "track_compile_seconds"}
CELL_PARAMS = ("model", "task", "api")  # a time class's; the one-value classes have one "cell" param


def read_side(results_dir: str, entry: ResultFile, metric: str = "time") -> AsvSide:
    """The rows of one results file for ``metric``: its benchmarks with model/task/api params
    (``time_*`` for time, ``track_instructions`` for instructions)."""
    if metric not in METRICS:
        raise SelectionError(f"unknown metric {metric!r}; choose from: {', '.join(METRICS)}")
    try:
        from asv import util as asv_util
        from asv.results import Results
    except ImportError:
        raise SelectionError("reading asv results needs asv (pip install asv)") from None
    try:
        results = Results.load(entry.path, machine_name=entry.machine)
    except asv_util.UserError as error:
        raise SelectionError(str(error).splitlines()[0]) from None
    param_names = _benchmark_param_names(results_dir)
    measurements: List[Measurement] = []
    missing = []
    for name in sorted(results.get_all_result_keys()):
        if not METRIC_METHODS[metric](name.rsplit(".", 1)[-1]):
            continue
        params = results.get_result_params(name)
        if not params:
            continue  # not parameterised: no model / task / api to put in the table
        values = [[_param_value(v) for v in column] for column in params]
        names = param_names.get(name) or _guess_names(values)
        if len(names) != len(values):
            names = _guess_names(values)
        if not (set(CELL_PARAMS) <= set(names) <= {*CELL_PARAMS, "preset", "device"}
                or "cell" in names and set(names) <= {"cell", "preset", "device"}):
            continue  # not a funcbench benchmark: its rows would not be one cell each
        result = results.get_result_value(name, params) or []
        stats = results.get_result_stats(name, params) or [None] * len(result)
        samples = results.get_result_samples(name, params) or [None] * len(result)
        for combo, value, stat, sample in zip(itertools.product(*values), result, stats, samples):
            named = dict(zip(names, combo))
            cell = _split_cell(str(named["cell"])) if "cell" in named else Cell(*(str(named[n]) for n in CELL_PARAMS))
            if cell is None:
                continue
            preset = str(named.get("preset") or entry.var(config.PRESET))
            device = str(named.get("device") or entry.var(config.DEVICE))
            if value is None:  # failed; nan = skipped (n/a: not a default task, unsupported)
                missing.append(str(cell))
            if not _is_number(value):
                continue
            points = [s for s in (sample or []) if _is_number(s)]
            if points:
                measurements.append(Measurement.from_samples(cell, preset, device, metric, points, stat))
                continue
            q25, q75 = (stat or {}).get("q_25"), (stat or {}).get("q_75")
            var = ((q75 - q25) / IQR_TO_SIGMA) ** 2 if _is_number(q25) and _is_number(q75) else 0.0
            measurements.append(Measurement(cell, preset, device, metric, float(value), var, None, stat))
    report = Report()
    for measurement in sorted(measurements, key=lambda m: row_order(m.cell)):
        report.add(measurement)
    return AsvSide(source=entry, report=report, metric=metric, missing=missing)


def load(results_dir: str, commit=None, machine=None, environment=None,
         metric: str = "time") -> Tuple[AsvSide, List[str]]:
    entry, notes = select(scan(results_dir), commit, machine, environment)
    return read_side(results_dir, entry, metric), notes


def load_selection(selection: str, results_dir: str, metric: str = "time") -> Tuple[AsvSide, List[str]]:
    return load(results_dir, *parse_selection(selection), metric=metric)


# ------------------------------------------------------------------------------ compare


def not_significant(before, after) -> List[Key]:
    """Rows on both sides whose change asv's statistics cannot tell from noise.

    Only rows that carry asv statistics on both sides are tested (a report file has none, nor
    has a track_* result such as an instruction count).
    """
    if not (isinstance(before, AsvSide) and isinstance(after, AsvSide)):
        return []
    from asv import _stats

    flagged = []
    for key, old in before.report.measurements.items():
        new = after.report.measurements.get(key)
        if new is None or not old.stats or not new.stats:
            continue
        if not all(k in s for s in (old.stats, new.stats) for k in ("ci_99_a", "ci_99_b")):
            continue
        old_samples = list(old.samples) if old.samples else None
        new_samples = list(new.samples) if new.samples else None
        if not _stats.is_different(old_samples, new_samples, old.stats, new.stats):
            flagged.append(key)
    return flagged


# ----------------------------------------------------------------------------- listing


def listing(results_dir: str) -> str:
    """Commits (newest first, with dates), machines and environments under ``results_dir``."""
    entries = scan(results_dir)
    lines = [f"asv results in {results_dir}:"]
    by_commit: Dict[str, List[ResultFile]] = {}
    for entry in entries:
        by_commit.setdefault(entry.commit, []).append(entry)
    ordered = sorted(by_commit.values(), key=lambda group: max(e.sort_key() for e in group), reverse=True)
    for group in ordered:
        lines.append(f"commit {group[0].commit[:8]}  {_date(group[0].date)}  ({group[0].commit})")
        for entry in sorted(group, key=lambda e: (e.machine, e.env_name)):
            if entry.problem:
                lines.append(f"  @{entry.machine}/{entry.env_name}  UNUSABLE: {entry.problem}")
                continue
            torch_version = entry.requirements.get("torch")
            lines.append(f"  @{entry.machine}/{entry.env_name}  preset {entry.var(config.PRESET)}, "
                         f"device {entry.var(config.DEVICE)}, python {entry.python}"
                         + (f", torch {torch_version}" if torch_version else "")
                         + f", {entry.benchmarks} benchmarks, run {_date(entry.started_at)}")
    lines.append(f"select one with: funcbench report --commit C --machine M --environment E, "
                 f"or {SELECTION_PREFIX}C@M/E in funcbench compare")
    return "\n".join(lines)


def heading(side: AsvSide) -> str:
    if not side.report.rows:
        return f"asv results for {side.describe()}: no {side.metric} results with model/task/api params"
    if side.metric != "time":
        what = {"instructions": "instructions per call", "compile_seconds": "seconds to compile, empty cache"}
        return (f"asv results for {side.describe()}; {what[side.metric]} (var 0: asv keeps one value per cell "
                f"of a track_* benchmark):")
    how = ("mean and var of the recorded samples" if side.sampled == len(side.report.rows)
           else "mean = asv's median, var from the interquartile range (no --record-samples)" if not side.sampled
           else f"{side.sampled} of {len(side.report.rows)} rows from recorded samples")
    return f"asv results for {side.describe()}; {how}:"


__all__ = ["AsvSide", "ResultFile", "SelectionError", "heading", "is_selection", "listing",
           "load", "load_selection", "not_significant", "parse_selection", "read_side", "scan", "select"]
