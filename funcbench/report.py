"""Holding and showing results: the original benchmark's markdown report and speedup table.

The formats are the original script's, so files written by it and by funcbench compare
with each other. Rows of a non-full preset carry it in the model column
(``wav2letter[small]``): a small-preset row never matches a full-size row.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Optional, Sequence, Tuple

from .measurement import Measurement
from .tasks import task_label

REPORT_HEADER = ("model", "task", "mean", "var")
COMPARE_HEADER = ("model", "task", "speedup", "mean (before)", "var (before)", "mean (after)", "var (after)")
FULL_PRESET = "full"

Key = Tuple[str, str]  # (model label, task label)


class ReportFormatError(ValueError):
    """A report file that is not the original markdown table."""


def model_label(model: str, preset: str) -> str:
    return model if preset == FULL_PRESET else f"{model}[{preset}]"


def row_key(measurement: Measurement) -> Key:
    """The (model, task) columns of a measurement's row, as the original script wrote them."""
    cell = measurement.cell
    return model_label(cell.model, measurement.preset), task_label(cell.task, cell.api)


def _line(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |\n"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    return _line(header) + _line(["--"] * len(header)) + "".join(_line(r) for r in rows)


@dataclasses.dataclass
class Report:
    """Mean and variance of per-call values (seconds, or instructions), per (model label, task
    label); ``measurements`` keeps the full Measurement of rows that came from one (a report
    file read back has only the two numbers)."""
    rows: Dict[Key, Tuple[float, float]] = dataclasses.field(default_factory=dict)
    measurements: Dict[Key, Measurement] = dataclasses.field(default_factory=dict)

    def add(self, measurement: Measurement) -> Key:
        # mean and var as the original: torch.var's unbiased estimate; 0 for a single value.
        key = row_key(measurement)
        self.rows[key] = (measurement.mean, measurement.var)
        self.measurements[key] = measurement
        return key

    def to_markdown(self) -> str:
        return _table(REPORT_HEADER, [(m, t, mean, var) for (m, t), (mean, var) in self.rows.items()])

    @classmethod
    def from_markdown(cls, text: str, source: str = "report") -> "Report":
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2 or _cells(lines[0]) != list(REPORT_HEADER):
            raise ReportFormatError(f"{source}: not a funcbench report (expected the header "
                                    f"'{_line(REPORT_HEADER).strip()}')")
        report = cls()
        for number, line in enumerate(lines[2:], start=3):
            cells = _cells(line)
            try:
                model, task, mean, var = cells
                report.rows[(model, task)] = (float(mean), float(var))
            except ValueError:
                raise ReportFormatError(f"{source}: line {number} is not '| model | task | mean | var |': "
                                        f"{line.strip()!r}") from None
        return report


def _cells(line: str):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def compare(before: Report, after: Report, not_significant: Optional[Iterable[Key]] = None) -> str:
    """The original speedup table (speedup = mean before / mean after; None where a row is
    missing on one side). Keys in ``not_significant`` get their speedup marked with '~'
    (asv's mark for a change its statistics cannot tell from noise)."""
    flagged = set(not_significant or ())
    keys = list(before.rows) + [k for k in after.rows if k not in before.rows]
    rows = []
    for key in keys:
        b, a = before.rows.get(key), after.rows.get(key)
        speedup = b[0] / a[0] if b and a and a[0] > 0 else None
        if speedup is not None and key in flagged:
            speedup = f"~{speedup}"
        rows.append((*key, speedup, *(b or (None, None)), *(a or (None, None))))
    return _table(COMPARE_HEADER, rows)
