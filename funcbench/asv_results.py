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
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import config, environment
from .config import UnknownName
from .environment import Fingerprint
from .measurement import CLOCK_WORDS, METRICS, TIME_METRICS, Measurement
from .registry import MODELS, Cell, row_order
from .report import Key, Report
from .tasks import APIS, TASKS

RESULTS_API_VERSION = 2  # asv.results.Results.api_version in asv 0.6.x
SELECTION_PREFIX = "asv:"
IQR_TO_SIGMA = 1.349  # interquartile range of a standard normal distribution
SKIP_FILES = ("machine.json", "benchmarks.json")  # and funcbench's own records beside them (funcbench-*.json)


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

    def setting(self, setting: config.Setting) -> str:
        """A FUNCBENCH_* variable asv recorded for the environment, or the suite's default."""
        return self.env_vars.get(setting.name) or setting.default

    def sort_key(self):
        return (self.date or 0, self.started_at or 0)

    def describe(self, preset: Optional[str] = None, device: Optional[str] = None) -> str:
        return (f"commit {self.short} ({_date(self.date)}), machine {self.machine}, environment {self.env_name} "
                f"(preset {preset or self.setting(config.PRESET)}, device {device or self.setting(config.DEVICE)})")


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
            if name.endswith(".json") and name not in SKIP_FILES and not name.startswith("funcbench-"):
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


def _is_cell(value) -> bool:
    try:
        Cell.parse(value, check=False)
        return isinstance(value, str)
    except UnknownName:
        return False


def _guess_names(values: Sequence[Sequence[object]]) -> List[str]:
    """Name parameters by their values when benchmarks.json does not have the benchmark."""
    known = {"model": set(MODELS), "task": set(TASKS), "api": set(APIS), "preset": set(config.PRESETS),
             "device": {"cpu", "cuda"}}
    names = []
    for index, column in enumerate(values):
        name = next((n for n, choices in known.items() if column and all(v in choices for v in column)), None)
        if name is None and column and all(_is_cell(v) for v in column):
            name = "cell"
        names.append(name or f"param{index + 1}")
    return names


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


CELL_PARAMS = ("model", "task", "api")  # a time class's; the one-value classes have one "cell" param


@dataclasses.dataclass(frozen=True)
class Row:
    """One benchmark parameter set of a results file, as asv recorded it."""
    benchmark: str  # benchmarks.ppl_simple_reg.time_op
    params: Tuple[Tuple[str, str], ...]  # (name, asv's repr of the value) in the benchmark's order
    value: Optional[float]  # None: failed; nan: skipped (n/a, or not selected by --bench)
    stats: Optional[dict] = None
    samples: Optional[Tuple[float, ...]] = None
    version: Optional[str] = None

    @property
    def method(self) -> str:
        return self.benchmark.rsplit(".", 1)[-1]

    @property
    def name(self) -> str:
        """asv's name of the parameter set: ``benchmark(p1, p2, ...)``."""
        return f"{self.benchmark}({', '.join(raw for _, raw in self.params)})"

    def param(self, name: str):
        return next((_param_value(raw) for n, raw in self.params if n == name), None)

    @property
    def cell(self) -> Optional[Cell]:
        """The cell of a funcbench benchmark's parameter set (a cell param, or model/task/api
        params, with at most preset and device besides); None for any other benchmark."""
        names = {n for n, _ in self.params}
        try:
            if "cell" in names and names <= {"cell", "preset", "device"}:
                return Cell.parse(self.param("cell"), check=False)
            if set(CELL_PARAMS) <= names <= {*CELL_PARAMS, "preset", "device"}:
                return Cell(*(str(self.param(n)) for n in CELL_PARAMS))
        except UnknownName:
            pass
        return None

    @property
    def measured(self) -> bool:
        return _is_number(self.value)


def read_rows(results_dir: str, path: str, machine: str) -> List[Row]:
    """Every parameter set of every benchmark in one results file, read through asv's own
    results API (``asv.results.Results``): rows keyed through the file's result columns."""
    try:
        from asv import util as asv_util
        from asv.results import Results
    except ImportError:
        raise SelectionError("reading asv results needs asv (pip install asv)") from None
    try:
        results = Results.load(path, machine_name=machine)
    except asv_util.UserError as error:
        raise SelectionError(str(error).splitlines()[0]) from None
    param_names = _benchmark_param_names(results_dir)
    rows = []
    for name in sorted(results.get_all_result_keys()):
        params = results.get_result_params(name)
        values = results.get_result_value(name, params)
        stats = results.get_result_stats(name, params)
        samples = results.get_result_samples(name, params)
        version = results.benchmark_version.get(name)
        if not params:  # not parameterised: one value
            rows.append(Row(name, (), values[0] if values else None, (stats or [None])[0],
                            _samples((samples or [None])[0]), version))
            continue
        names = param_names.get(name) or []
        if len(names) != len(params):
            names = _guess_names([[_param_value(v) for v in column] for column in params])
        for index, combo in enumerate(itertools.product(*params)):
            rows.append(Row(name, tuple(zip(names, combo)), values[index], stats[index] if stats else None,
                            _samples(samples[index]) if samples else None, version))
    return rows


def _samples(sample) -> Optional[Tuple[float, ...]]:
    return None if sample is None else tuple(sample)


def commit_rows(results_dir: str, machine: str, commit: str) -> List[Row]:
    """The rows of every results file of ``commit`` (a hash or its first 8 characters) on ``machine``."""
    folder = Path(results_dir) / machine
    return [row for path in sorted(folder.glob(f"{commit[:8]}-*.json"))
            for row in read_rows(results_dir, str(path), machine)]


def durations(results_dir: str, machine: str, commit: str) -> Dict[str, float]:
    """benchmark -> seconds asv spent on it (all its parameter sets and rounds; also asv's
    ``<build>`` and ``<setup_cache ...>`` entries), over the results files of ``commit``."""
    from asv.results import Results

    out: Dict[str, float] = {}
    for path in sorted((Path(results_dir) / machine).glob(f"{commit[:8]}-*.json")):
        out.update({k: v for k, v in Results.load(str(path), machine_name=machine).duration.items() if v is not None})
    return out


def measured_cells(rows: Sequence[Row], method: str = "time_op") -> Dict[Cell, Row]:
    """Cell -> row, for rows of ``method`` that ran (not n/a, not failed)."""
    return {row.cell: row for row in rows if row.method == method and row.cell and row.measured}


# Which asv benchmarks hold each metric's values (method name -> metric): no series mixes two clocks.
METRIC_METHODS = {"time": lambda method: method.startswith("time_") and not method.startswith("time_cpu_"),
                  "cpu": lambda method: method.startswith("time_cpu_"),
                  "instructions": lambda method: method == "track_instructions",
                  "compile_seconds": lambda method: method == "track_compile_seconds"}


def read_side(results_dir: str, entry: ResultFile, metric: Optional[str] = "time") -> AsvSide:
    """The rows of one results file for ``metric``: its benchmarks with model/task/api params
    (``time_*`` for time, ``time_cpu_*`` for cpu, ``track_instructions`` for instructions).
    ``metric`` None: time where the file has wall-clock results, else cpu where it has CPU-clock
    ones. SelectionError (one line) for cpu on a file without CPU-clock results."""
    if metric is not None and metric not in METRICS:
        raise SelectionError(f"unknown metric {metric!r}; choose from: {', '.join(METRICS)}")
    rows = read_rows(results_dir, entry.path, entry.machine)
    if metric is None:
        metric = next((m for m in TIME_METRICS if any(r.measured and r.cell and METRIC_METHODS[m](r.method)
                                                       for r in rows)), "time")
    if metric == "cpu" and not any(r.cell and METRIC_METHODS["cpu"](r.method) for r in rows):
        raise SelectionError(f"{entry.path} holds no CPU-clock results (time_cpu_* benchmarks): run them with "
                             f"{config.CLOCKS.name}=cpu (the default on a CPU device) or wall,cpu")
    measurements: List[Measurement] = []
    missing = []
    for row in rows:
        cell = row.cell
        if cell is None or not METRIC_METHODS[metric](row.method):
            continue  # another metric, or not a funcbench benchmark: its rows would not be one cell each
        preset = str(row.param("preset") or entry.setting(config.PRESET))
        device = str(row.param("device") or entry.setting(config.DEVICE))
        if row.value is None:  # failed; nan = skipped (n/a: not a default task, unsupported)
            missing.append(str(cell))
        if not row.measured:
            continue
        points = [s for s in (row.samples or []) if _is_number(s)]
        if points:
            measurements.append(Measurement.from_samples(cell, preset, device, metric, points, row.stats))
            continue
        q25, q75 = (row.stats or {}).get("q_25"), (row.stats or {}).get("q_75")
        var = ((q75 - q25) / IQR_TO_SIGMA) ** 2 if _is_number(q25) and _is_number(q75) else 0.0
        measurements.append(Measurement(cell, preset, device, metric, float(row.value), var, None, row.stats))
    report = Report()
    for measurement in sorted(measurements, key=lambda m: row_order(m.cell)):
        report.add(measurement)
    return AsvSide(source=entry, report=report, metric=metric, missing=missing)


def load(results_dir: str, commit=None, machine=None, environment=None,
         metric: Optional[str] = "time") -> Tuple[AsvSide, List[str]]:
    entry, notes = select(scan(results_dir), commit, machine, environment)
    return read_side(results_dir, entry, metric), notes


def load_selection(selection: str, results_dir: str, metric: Optional[str] = "time") -> Tuple[AsvSide, List[str]]:
    return load(results_dir, *parse_selection(selection), metric=metric)


# ------------------------------------------------------------------------------ compare


def _asv_is_better(a: float, b: float, a_stats, b_stats, factor: float) -> bool:
    """asv compare's own test (asv.commands.compare._is_result_better, which asks
    asv._stats.is_different): ``a`` better than ``b`` by ``factor`` and, where both carry
    statistics, significantly so."""
    from asv.commands.compare import _is_result_better

    return _is_result_better(a, b, a_stats, b_stats, factor)


def is_significant(old: Measurement, new: Measurement) -> Optional[bool]:
    """asv's test (asv._stats.is_different: Mann-Whitney U on the samples, else the 99 %
    confidence intervals) between two measurements; None where either lacks statistics."""
    if not old.stats or not new.stats:
        return None
    if not all(k in s for s in (old.stats, new.stats) for k in ("ci_99_a", "ci_99_b")):
        return None
    from asv import _stats

    return bool(_stats.is_different(list(old.samples) if old.samples else None,
                                    list(new.samples) if new.samples else None, old.stats, new.stats))


def not_significant(before, after) -> List[Key]:
    """Rows on both sides whose change asv's statistics cannot tell from noise.

    Only rows that carry asv statistics on both sides are tested (a report file has none, nor
    has a track_* result such as an instruction count).
    """
    if not (isinstance(before, AsvSide) and isinstance(after, AsvSide)):
        return []
    flagged = []
    for key, old in before.report.measurements.items():
        new = after.report.measurements.get(key)
        if new is not None and is_significant(old, new) is False:
            flagged.append(key)
    return flagged


@dataclasses.dataclass(frozen=True)
class Marked:
    """One parameter set compared as ``asv compare --factor F`` marks it: '+' worse, '-' better,
    ' ' same, 'x' versions differ, '!' newly failed, '*' fixed; ``beyond_factor``: the ratio is
    beyond the factor but asv's test cannot tell it from noise (asv prints '~ratio')."""
    name: str
    cell: Optional[Cell]
    method: str
    mark: str
    before: Optional[float]
    after: Optional[float]
    ratio: Optional[float]
    beyond_factor: bool = False


def _na(value) -> bool:
    return value is None or value != value


def mark_changes(before: Sequence[Row], after: Sequence[Row], factor: float) -> List[Marked]:
    """Every parameter set of two sides marked as asv compare marks it, from the rows' values,
    statistics and samples (asv's own test; no printed table parsed)."""
    old_rows, new_rows = {r.name: r for r in before}, {r.name: r for r in after}
    out = []
    for name in sorted(set(old_rows) | set(new_rows)):
        old, new = old_rows.get(name), new_rows.get(name)
        a, b = (old.value if old else math.nan), (new.value if new else math.nan)  # asv: missing is skipped
        ratio = None if _na(a) or _na(b) or a == 0 else b / a
        old_ss = (old.stats, list(old.samples) if old.samples else None) if old and old.stats else None
        new_ss = (new.stats, list(new.samples) if new.samples else None) if new and new.stats else None
        beyond = False
        if old and new and old.version and new.version and old.version != new.version:
            mark = "x"
        elif a is not None and b is None:
            mark = "!"
        elif a is None and b is not None:
            mark = "*"
        elif _na(a) or _na(b):
            mark = " "
        elif _asv_is_better(b, a, new_ss, old_ss, factor):
            mark = "-"
        elif _asv_is_better(a, b, old_ss, new_ss, factor):
            mark = "+"
        else:
            mark = " "
            beyond = _asv_is_better(a, b, None, None, factor) or _asv_is_better(b, a, None, None, factor)
        row = old or new
        out.append(Marked(name, row.cell, row.method, mark, None if _na(a) else a, None if _na(b) else b, ratio, beyond))
    return out


# ------------------------------------------------------------------------- environments


def _machine_facts(results_dir: str, machine: str) -> Dict[str, str]:
    """What asv's machine.json says of a machine (asv's names prefixed: they are asv's words)."""
    try:
        with open(os.path.join(results_dir, machine, "machine.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    facts = {"asv_machine": machine}
    facts.update({f"asv_{k}": str(v) for k, v in data.items() if k in ("arch", "cpu", "num_cpu", "os", "ram")})
    return facts


def _existing_python(env_name: str) -> Optional[str]:
    """The interpreter of an ``existing`` environment, from asv's name for it (its path with the
    separators written as '_'), where exactly one such interpreter exists here."""
    prefix = "existing-py"
    if not env_name.startswith(prefix + "_"):
        return None
    parts = env_name[len(prefix):].split("_")[1:]
    if not parts or len(parts) > 14:
        return None
    found = []
    for choice in itertools.product("/_", repeat=len(parts) - 1):
        path = "/" + parts[0] + "".join(sep + part for sep, part in zip(choice, parts[1:]))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
    return found[0] if len(found) == 1 else None


def _matrix_python(env_name: str, conf_path: str = "asv.conf.json") -> Optional[str]:
    """The interpreter of a matrix environment that asv made here from ``conf_path``."""
    if not os.path.isfile(conf_path):
        return None
    try:
        from asv import environment as asv_environment
        from asv.config import Config

        for env in asv_environment.get_environments(Config.load(conf_path), None):
            python = os.path.join(env._path, "bin", "python")
            if env.name == env_name and os.path.isfile(python):
                return python
    except Exception:  # another asv, a conf it cannot load: the environment is simply not known here
        return None
    return None


def side_environment(side: AsvSide, results_dir: str) -> Fingerprint:
    """What a side ran on: the fingerprint funcbench recorded when it ran it, else its
    interpreter probed now where it is still here, else only what asv's results say (python
    version, the matrix's requirements, machine.json). asv's machine facts are always added."""
    entry = side.source
    asv_facts = _machine_facts(results_dir, entry.machine)
    if os.sep not in entry.python:  # an existing environment's is its path, which its name says already
        asv_facts["asv_python"] = entry.python
    asv_facts.update({f"asv_req_{k}": v for k, v in entry.requirements.items()})
    found = environment.recorded(Path(results_dir), entry.machine).get(entry.env_name)
    if found is None:
        python = _existing_python(entry.env_name) or _matrix_python(entry.env_name)
        if python:
            try:
                found = environment.probe(python)
                found = Fingerprint(found.facts, f"{found.source} (now, not when it was measured)")
            except environment.ProbeFailed:
                found = None
    if found is None:
        return Fingerprint(asv_facts, "asv's results only (funcbench recorded nothing, the interpreter is not here)")
    return Fingerprint({**found.facts, **asv_facts}, found.source)


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
            lines.append(f"  @{entry.machine}/{entry.env_name}  preset {entry.setting(config.PRESET)}, "
                         f"device {entry.setting(config.DEVICE)}, python {entry.python}"
                         + (f", torch {torch_version}" if torch_version else "")
                         + f", {entry.benchmarks} benchmarks, run {_date(entry.started_at)}")
    lines.append(f"select one with: funcbench report --commit C --machine M --environment E, "
                 f"or {SELECTION_PREFIX}C@M/E in funcbench compare")
    return "\n".join(lines)


def heading(side: AsvSide) -> str:
    if not side.report.rows:
        return f"asv results for {side.describe()}: no {side.metric} results with model/task/api params"
    if side.metric not in TIME_METRICS:
        what = {"instructions": "instructions per call", "compile_seconds": "seconds to compile, empty cache"}
        return (f"asv results for {side.describe()}; {what[side.metric]} (var 0: asv keeps one value per cell "
                f"of a track_* benchmark):")
    how = ("mean and var of the recorded samples" if side.sampled == len(side.report.rows)
           else "mean = asv's median, var from the interquartile range (no --record-samples)" if not side.sampled
           else f"{side.sampled} of {len(side.report.rows)} rows from recorded samples")
    return f"asv results for {side.describe()}; seconds per call by {CLOCK_WORDS[side.metric]}; {how}:"


__all__ = ["AsvSide", "ResultFile", "SelectionError", "heading", "is_selection", "listing",
           "load", "load_selection", "not_significant", "parse_selection", "read_side", "scan", "select"]
