"""Holding and showing results: the original benchmark's markdown report and speedup table.

The formats are the original script's, so files written by it and by funcbench compare
with each other. Rows of a non-full preset carry it in the model column
(``wav2letter[small]``): a small-preset row never matches a full-size row.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from funcbench.catalogue.config import ORIGINAL_PRESET
from funcbench.results.values import Measurement
from funcbench.catalogue.tasks import task_label

REPORT_HEADER = ("model", "task", "mean", "var")
COMPARE_HEADER = ("model", "task", "speedup", "mean (before)", "var (before)", "mean (after)", "var (after)")

Key = Tuple[str, str]  # (model label, task label)


class ReportFormatError(ValueError):
    """A report file that is not the original markdown table."""


def model_label(model: str, preset: str) -> str:
    return model if preset == ORIGINAL_PRESET else f"{model}[{preset}]"


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


@dataclasses.dataclass(frozen=True)
class Change:
    """One row of a comparison: the (mean, var) of each side (None where the row is missing)
    and whether the change is significant: asv's test for time rows with asv statistics on both
    sides, a change beyond INSTRUCTION_NOISE for instruction counts, None where nothing can tell
    (a report file: no samples, no statistics)."""
    key: Key
    before: Optional[Tuple[float, float]]
    after: Optional[Tuple[float, float]]
    significant: Optional[bool] = None

    @property
    def ratio(self) -> Optional[float]:
        """after / before: above 1 is slower (more time, more instructions)."""
        if not (self.before and self.after) or self.before[0] <= 0:
            return None
        return self.after[0] / self.before[0]

    @property
    def speedup(self) -> Optional[float]:
        """The original table's speedup: mean before / mean after."""
        return self.before[0] / self.after[0] if self.before and self.after and self.after[0] > 0 else None

    @property
    def label(self) -> str:
        return f"{self.key[0]} {self.key[1]}"


# Two countings of one build in one environment agree to the instruction, the same build installed in
# two places up to 0.4 % (docs/instruction-counts.md); a change within 0.2 % is not called a change.
INSTRUCTION_NOISE = 0.002


def changes(before: Report, after: Report, not_significant: Optional[Iterable[Key]] = None,
            metric: str = "time", statistics: bool = False) -> List[Change]:
    """Every row of either side, in the before side's order. ``statistics``: the time rows carry
    asv statistics on both sides, so rows outside ``not_significant`` are significant."""
    flagged = set(not_significant or ())
    keys = list(before.rows) + [k for k in after.rows if k not in before.rows]
    out = []
    for key in keys:
        row = Change(key, before.rows.get(key), after.rows.get(key))
        ratio = row.ratio
        if ratio is not None and metric == "instructions":
            row = dataclasses.replace(row, significant=abs(ratio - 1) > INSTRUCTION_NOISE)
        elif ratio is not None and statistics:
            row = dataclasses.replace(row, significant=key not in flagged)
        out.append(row)
    return out


def compare(before: Report, after: Report, not_significant: Optional[Iterable[Key]] = None) -> str:
    """The original speedup table (speedup = mean before / mean after; None where a row is
    missing on one side). Keys in ``not_significant`` get their speedup marked with '~'
    (asv's mark for a change its statistics cannot tell from noise)."""
    flagged = set(not_significant or ())
    rows = []
    for change in changes(before, after):
        speedup = change.speedup
        if speedup is not None and change.key in flagged:
            speedup = f"~{speedup}"
        rows.append((*change.key, speedup, *(change.before or (None, None)), *(change.after or (None, None))))
    return _table(COMPARE_HEADER, rows)


def compile_summary(times: Report, compile_seconds: Report) -> str:
    """Per compiled cell: eager torch.func against compiled per-call time, the speedup, and the
    seconds the cold compile took (a markdown table for docs/compile.md and PRs)."""
    by_cell = {(m.cell, m.preset): m for m in times.measurements.values()}
    cold = {(m.cell, m.preset): m for m in compile_seconds.measurements.values()}
    rows = []
    for (cell, preset), compiled in by_cell.items():
        if cell.api != "compile":
            continue
        eager = by_cell.get((cell._replace(api="func"), preset))
        seconds = cold.get((cell, preset))
        speedup = f"{eager.median / compiled.median:.2f}x" if eager else "n/a"
        rows.append((f"{model_label(cell.model, preset)} {cell.task}", _ms(eager.median if eager else None),
                     _ms(compiled.median), speedup, f"{seconds.mean:.1f}" if seconds else "n/a"))
    header = ("cell", "eager torch.func (ms)", "compiled (ms)", "speedup", "compile, empty cache (s)")
    return "| " + " | ".join(header) + " |\n|---|---:|---:|---:|---:|\n" + "".join(
        "| " + " | ".join(row) + " |\n" for row in rows)


def _ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def summary(rows: Sequence[Change]) -> List[str]:
    """What a reviewer reads first: how many rows got slower, faster or stayed, and the slowest
    and fastest changed rows as percentages (of time, or of instructions)."""
    both = [r for r in rows if r.ratio is not None]
    judged = [r for r in both if r.significant is not None]
    slower = [r for r in judged if r.significant and r.ratio > 1]
    faster = [r for r in judged if r.significant and r.ratio < 1]
    only = [f"{sum(r.after is None for r in rows)} only before", f"{sum(r.before is None for r in rows)} only after"]
    if not judged:
        slower, faster = [r for r in both if r.ratio > 1], [r for r in both if r.ratio < 1]
        head = (f"{len(both)} rows on both sides (no statistics: every difference counts): {len(slower)} slower, "
                f"{len(faster)} faster, {len(both) - len(slower) - len(faster)} equal")
    else:
        head = (f"{len(both)} rows on both sides: {len(slower)} significantly slower, {len(faster)} significantly "
                f"faster, {len(judged) - len(slower) - len(faster)} unchanged"
                + (f", {len(both) - len(judged)} without statistics" if len(judged) < len(both) else ""))
    lines = [f"{head}; {', '.join(only)}"]
    if slower:
        worst = max(slower, key=lambda r: r.ratio)
        lines.append(f"slowest: {worst.label} {_percent(worst.ratio)}")
    if faster:
        best = min(faster, key=lambda r: r.ratio)
        lines.append(f"fastest: {best.label} {_percent(best.ratio)}")
    return lines


def over_limit(rows: Sequence[Change], limit: float, metric: str) -> List[Change]:
    """The rows the gate fails on: after / before above ``limit``; time rows only where asv's
    statistics call the change significant, instruction rows on the plain ratio."""
    return [r for r in rows if r.ratio is not None and r.ratio > limit
            and (metric == "instructions" or r.significant)]
