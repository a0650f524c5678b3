"""asv's results read as funcbench's report and speedup tables: selections, sides, asv compare's marks.

Each ``time_*`` benchmark of the suite is parameterised by model, task and api; a results file
(funcbench.results.result_files; its rows: funcbench.results.result_rows) holds, per parameter combination,
asv's result (the median of the per-call samples), its statistics (99% confidence interval of
the median, quartiles) and, with ``asv run --record-samples``, the samples themselves (seconds
per call).

Mapping to the original tables:
- mean / var: the mean and unbiased variance of the recorded samples when there are any;
  otherwise the median asv stored and a variance derived from the interquartile range
  (``((q_75 - q_25) / 1.349) ** 2``, the variance of a normal distribution with that IQR).
- model column: ``model_label(model, preset)``; task column: ``task_label(task, api)``. The
  preset and device of a row come from its benchmark's ``preset`` / ``device`` parameters
  (``-E existing:PYTHON`` environments ignore the matrix, so asv records no environment
  variables for them), else from the variables asv recorded (the matrix's ``env_nobuild``
  FUNCBENCH_PRESET / FUNCBENCH_DEVICE), else the suite's defaults (funcbench.catalogue.config).
- significance (compare): asv's own test, ``asv._stats.is_different`` (the one ``asv compare``
  uses): Mann-Whitney U on the samples when both sides recorded enough of them, otherwise
  whether the 99% confidence intervals overlap. A change it cannot tell from noise gets '~'.

Selections name one results file: ``asv:COMMIT[@MACHINE][/ENV]`` on the compare command line,
``--commit/--machine/--environment`` on the report command. COMMIT is a hash prefix, ENV an
environment name, or an end or a part of one that only one environment has; whatever is left out
defaults to the newest (commit date, then when the run started).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.catalogue import config
from funcbench.catalogue import metrics
from funcbench.results.values import Measurement
from funcbench.catalogue.metrics import REPORTED, TIME_METRICS
from funcbench.catalogue.registry import Cell, row_order
from funcbench.results.report import Key, Report
from funcbench.results.result_files import ResultFile, SelectionError, date_text, scan
from funcbench.results.result_rows import Row, is_number, rows_of

SELECTION_PREFIX = "asv:"
IQR_TO_SIGMA = 1.349  # interquartile range of a standard normal distribution


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


def read_side(results_dir: str, entry: ResultFile, metric: Optional[str] = "time") -> AsvSide:
    """The rows of one results file for ``metric``: its benchmarks with model/task/api params
    (``time_*`` for time, ``time_cpu_*`` for cpu, ``track_instructions`` for instructions).
    ``metric`` None: time where the file has wall-clock results, else cpu where it has CPU-clock
    ones. SelectionError (one line) for cpu on a file without CPU-clock results."""
    if metric is not None and metric not in REPORTED:
        raise SelectionError(f"unknown metric {metric!r}; choose from: {', '.join(REPORTED)}")
    of = metrics.METHOD_METRICS.get  # which metric a row's method records: no series mixes two clocks
    rows = rows_of(results_dir, entry.loaded())
    if metric is None:
        metric = next((m for m in TIME_METRICS if any(r.measured and r.cell and of(r.method) == m
                                                       for r in rows)), "time")
    if metric == "cpu" and not any(r.cell and of(r.method) == "cpu" for r in rows):
        raise SelectionError(f"{entry.path} holds no CPU-clock results (time_cpu_* benchmarks): run them with "
                             f"{config.CLOCKS.name}=cpu (the default on a CPU device) or wall,cpu")
    measurements: List[Measurement] = []
    missing = []
    for row in rows:
        cell = row.cell
        if cell is None or of(row.method) != metric:
            continue  # another metric, or not a funcbench benchmark: its rows would not be one cell each
        preset = str(row.param("preset") or entry.setting(config.PRESET))
        device = str(row.param("device") or entry.setting(config.DEVICE))
        if row.value is None:  # failed; nan = skipped (n/a: not a default task, unsupported)
            missing.append(str(cell))
        if not row.measured:
            continue
        points = [s for s in (row.samples or []) if is_number(s)]
        if points:
            measurements.append(Measurement.from_samples(cell, preset, device, metric, points, row.stats))
            continue
        q25, q75 = (row.stats or {}).get("q_25"), (row.stats or {}).get("q_75")
        var = ((q75 - q25) / IQR_TO_SIGMA) ** 2 if is_number(q25) and is_number(q75) else 0.0
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
        lines.append(f"commit {group[0].commit[:8]}  {date_text(group[0].date)}  ({group[0].commit})")
        for entry in sorted(group, key=lambda e: (e.machine, e.env_name)):
            if entry.problem:
                lines.append(f"  @{entry.machine}/{entry.env_name}  UNUSABLE: {entry.problem}")
                continue
            torch_version = entry.requirements.get("torch")
            lines.append(f"  @{entry.machine}/{entry.env_name}  preset {entry.setting(config.PRESET)}, "
                         f"device {entry.setting(config.DEVICE)}, python {entry.python}"
                         + (f", torch {torch_version}" if torch_version else "")
                         + f", {entry.benchmarks} benchmarks, run {date_text(entry.started_at)}")
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
    return f"asv results for {side.describe()}; seconds per call by {metrics.clock_words(side.metric)}; {how}:"


__all__ = ["AsvSide", "Marked", "heading", "is_selection", "listing", "load", "load_selection", "mark_changes",
           "not_significant", "parse_selection", "read_side", "select"]
