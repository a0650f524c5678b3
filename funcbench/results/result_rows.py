"""The rows of asv results files: one per benchmark parameter set, as asv recorded it.

Parameter names come from the results dir's ``benchmarks.json`` (asv writes it with every run).
Only a benchmark it does not describe (no benchmarks.json, or one of another version of the
suite, with other params) has its parameters named from their values (``_guess_names``).
"""
from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.catalogue import config
from funcbench.catalogue.config import UnknownName
from funcbench.catalogue.registry import MODELS, Cell
from funcbench.results.result_files import load_results
from funcbench.catalogue.tasks import APIS, TASKS

CELL_PARAMS = ("model", "task", "api")  # a time class's; the one-value classes have one "cell" param


def param_value(text: str):
    """A parameter's value from asv's repr of it."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
        return next((param_value(raw) for n, raw in self.params if n == name), None)

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
        return is_number(self.value)


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
    """Name parameters by their values: the fallback for a benchmark benchmarks.json does not describe."""
    known = {"model": set(MODELS), "task": set(TASKS), "api": set(APIS), "preset": set(config.PRESETS),
             "device": {"cpu", "cuda"}}
    names = []
    for index, column in enumerate(values):
        name = next((n for n, choices in known.items() if column and all(v in choices for v in column)), None)
        if name is None and column and all(_is_cell(v) for v in column):
            name = "cell"
        names.append(name or f"param{index + 1}")
    return names


def _samples(sample) -> Optional[Tuple[float, ...]]:
    return None if sample is None else tuple(sample)


def rows_of(results_dir: str, results) -> List[Row]:
    """Every parameter set of every benchmark in asv's ``Results`` of one file (the load
    funcbench.results.result_files made), keyed through the file's result columns."""
    param_names = _benchmark_param_names(results_dir)
    out = []
    for name in sorted(results.get_all_result_keys()):
        params = results.get_result_params(name)
        values = results.get_result_value(name, params)
        stats = results.get_result_stats(name, params)
        samples = results.get_result_samples(name, params)
        version = results.benchmark_version.get(name)
        if not params:  # not parameterised: one value
            out.append(Row(name, (), values[0] if values else None, (stats or [None])[0],
                           _samples((samples or [None])[0]), version))
            continue
        names = param_names.get(name) or []
        if len(names) != len(params):  # benchmarks.json does not describe this benchmark's params
            names = _guess_names([[param_value(v) for v in column] for column in params])
        for index, combo in enumerate(itertools.product(*params)):
            out.append(Row(name, tuple(zip(names, combo)), values[index], stats[index] if stats else None,
                           _samples(samples[index]) if samples else None, version))
    return out


def read_rows(results_dir: str, path: str, machine: str) -> List[Row]:
    """The rows of one results file (SelectionError, one line, where asv cannot load it)."""
    return rows_of(results_dir, load_results(path, machine))


def _commit_files(results_dir: str, machine: str, commit: str) -> List[Path]:
    return sorted((Path(results_dir) / machine).glob(f"{commit[:8]}-*.json"))


def commit_rows(results_dir: str, machine: str, commit: str) -> List[Row]:
    """The rows of every results file of ``commit`` (a hash or its first 8 characters) on ``machine``."""
    return [row for path in _commit_files(results_dir, machine, commit)
            for row in read_rows(results_dir, str(path), machine)]


def durations(results_dir: str, machine: str, commit: str) -> Dict[str, float]:
    """benchmark -> seconds asv spent on it (all its parameter sets and rounds; also asv's
    ``<build>`` and ``<setup_cache ...>`` entries), over the results files of ``commit``."""
    out: Dict[str, float] = {}
    for path in _commit_files(results_dir, machine, commit):
        out.update({k: v for k, v in load_results(str(path), machine).duration.items() if v is not None})
    return out


def measured_cells(rows: Sequence[Row], method: str = "time_op") -> Dict[Cell, Row]:
    """Cell -> row, for rows of ``method`` that ran (not n/a, not failed)."""
    return {row.cell: row for row in rows if row.method == method and row.cell and row.measured}
