"""``funcbench compare``: the speedup table between two sides, its summary and its gate."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from funcbench.results import asv_results, environment, explain, profiles, side_environment, result_files
from funcbench.fleet import interleave
from funcbench.catalogue.metrics import REPORTED, TIME_METRICS
from funcbench.results.report import Report, ReportFormatError, changes, compare, over_limit, summary
from funcbench.commands.common import UsageError, stderr, write

NAME = "compare"
HELP = "the speedup table between two reports"
# The metrics whose gate (--fail-above) trusts only sides measured interleaved: time by either
# clock. Identical sides a few minutes apart on the 2-core VM under load differed by up to 1.32x
# by the CPU clock (2.26x by the wall clock); interleaved, by up to 1.21x (docs/cpu-time.md).
INTERLEAVED_ONLY = frozenset({"time", "cpu"})


def add_arguments(parser) -> None:
    parser.add_argument("--before", required=True,
                        help="the baseline: a report file, or asv:COMMIT[@MACHINE][/ENV] from --results-dir")
    parser.add_argument("--after", required=True,
                        help="the change: a report file, or asv:COMMIT[@MACHINE][/ENV] from --results-dir")
    parser.add_argument("--output", help="also write the table to this file")
    parser.add_argument("--results-dir", default="results", help="asv's results directory (default results)")
    parser.add_argument("--metric", choices=REPORTED,
                        help="time (wall clock: time_op, time_compiled_op), cpu (CPU clock: time_cpu_op, "
                             "time_cpu_compiled_op), instructions or compile_seconds of asv sides; default: time, or "
                             "cpu where the before side has no wall-clock results")
    parser.add_argument("--fail-above", type=float, metavar="R",
                        help="exit 1 if a row's after / before exceeds R (time: significant rows only; "
                             "instructions: the plain ratio), naming each such row on stderr")
    add_explain_arguments(parser)


def add_explain_arguments(parser) -> None:
    parser.add_argument("--explain", nargs="?", const="", metavar="N|all|all:N",
                        help="instructions: under the table, the N functions (default 5) whose self instructions "
                             "moved most for each row beyond the gate (--fail-above R, else every change beyond "
                             "the counts' noise), or for every row (all), from the per-function counts kept with "
                             "each count")
    parser.add_argument("--explain-raw", action="store_true",
                        help="with --explain: list the interpreter's dict lookups one by one instead of as one "
                             "noise line")


def run(args) -> int:
    return compare_sides(args.before, args.after, args.results_dir, args.metric, args.fail_above, args.output,
                         args.explain, args.explain_raw)


def compare_sides(before_selection: str, after_selection: str, results_dir: str, metric: Optional[str],
                  fail_above: Optional[float], output: Optional[str], explain_value: Optional[str] = None,
                  explain_raw: bool = False) -> int:
    """The table of two sides (report files or asv selections), its summary on stderr, and the
    gate: 1 where a row exceeds ``fail_above``. ``metric`` None: the before side's time.
    ``explain_value`` (not None: --explain given): the movers of the rows beyond the gate."""
    if fail_above is not None and fail_above <= 0:
        raise UsageError(f"--fail-above must be a positive ratio (after / before), got {fail_above}")
    try:
        every_row, top = explain.parse_explain(explain_value)
    except ValueError:
        raise UsageError(f"--explain takes N (functions per row), all or all:N, not {explain_value!r}") from None
    if explain_value is not None and metric is None:
        metric = "instructions"
    if explain_value is not None and metric != "instructions":
        raise UsageError("--explain explains instruction counts: add --metric instructions")
    if explain_raw and explain_value is None:
        raise UsageError("--explain-raw goes with --explain")
    before = load_side(before_selection, results_dir, metric)
    # No --metric: the before side's time (wall where it has wall-clock results, else CPU time).
    metric = metric or (before.metric if isinstance(before, asv_results.AsvSide) else "time")
    after = load_side(after_selection, results_dir, metric)
    both_asv = all(isinstance(side, asv_results.AsvSide) for side in (before, after))
    with_statistics = both_asv and metric in TIME_METRICS
    if fail_above is not None and metric in TIME_METRICS:
        if not with_statistics:
            raise UsageError(f"--fail-above on {metric} needs two asv sides (asv:...) run with --record-samples: "
                             "a report file has no statistics to tell a change from noise")
        if metric in INTERLEAVED_ONLY and not _interleaved(before, after, results_dir):
            raise UsageError(f"--fail-above on {metric} trusts only sides measured interleaved; {before_selection} "
                             f"and {after_selection} were not: run `funcbench interleave` (or gate on --metric "
                             f"instructions)")
    not_significant = asv_results.not_significant(before, after)
    before_report, after_report = _report(before), _report(after)
    differences = _environment_differences(before, after, results_dir) if both_asv else []
    for line in environment.describe(differences) if both_asv else []:
        stderr(f"funcbench compare ({metric}): {line}")
    text = compare(before_report, after_report, not_significant=not_significant)
    rows = changes(before_report, after_report, not_significant, metric, with_statistics)
    if explain_value is not None:
        if not both_asv:
            raise UsageError("--explain needs two asv sides (asv:...): a report file keeps no per-function counts")
        chosen = rows if every_row else (over_limit(rows, fail_above, metric) if fail_above is not None
                                         else [r for r in rows if r.significant])
        text += explained(before, after, chosen, results_dir, top, explain_raw)
    print(text)
    if output:
        write(output, text)
    others = [d for d in differences if not d.torch_build]
    for number, line in enumerate(summary(rows)):
        if number == 0 and others:
            line += f"; the sides differ in {len(others)} thing(s) besides the torch build (above)"
        stderr(f"funcbench compare ({metric}): {line}")
    if fail_above is None:
        return 0
    failing = over_limit(rows, fail_above, metric)
    for row in failing:
        stderr(f"funcbench compare: FAIL {row.label}: {row.ratio:.4f} x the before side's {metric} "
               f"(limit {fail_above})")
    return 1 if failing else 0


def read_report(path: str) -> Report:
    try:
        with open(path) as handle:
            return Report.from_markdown(handle.read(), source=path)
    except OSError as error:
        raise UsageError(f"cannot read report {path!r}: {error.strerror}") from None
    except ReportFormatError as error:
        raise UsageError(str(error)) from None


def load_side(selection: str, results_dir: str, metric: Optional[str]):
    """One side of a comparison: a report file, or an asv selection asv:COMMIT[@MACHINE][/ENV]
    of ``results_dir`` (an asv_results.AsvSide, which carries asv's statistics too)."""
    if not asv_results.is_selection(selection):
        return read_report(selection)
    try:
        side, notes = asv_results.load_selection(selection, results_dir, metric)
    except result_files.SelectionError as error:
        raise UsageError(f"{selection}: {error}") from None
    side.selection, side.notes = selection, notes  # said by _report once both sides loaded (errors stay one line)
    return side


def _report(side) -> Report:
    """The table of a side; an asv side says on stderr which results file it read."""
    if not isinstance(side, asv_results.AsvSide):
        return side
    stderr(f"{side.selection} = {side.source.describe()}" + "".join(f"; {note}" for note in side.notes))
    return side.report


def _environment_differences(before, after, results_dir: str) -> List[environment.Difference]:
    """What differs between the sides' environments, each side's facts said first (stderr)."""
    prints = []
    for label, side in (("before", before), ("after", after)):
        facts = side_environment.fingerprint(side.source, results_dir)
        brief = ", ".join(f"{what} {facts.get(key)}" for key, what in
                          (("torch", "torch"), ("torch_git", "git"), ("python", "python"), ("python_home", "from"),
                           ("asv_machine", "machine")) if facts.get(key))
        stderr(f"funcbench compare: {label}: {brief or 'no facts'} ({facts.source})")
        prints.append(facts)
    return environment.differences(*prints)


def _interleaved(before, after, results_dir: str) -> bool:
    """Whether `funcbench interleave` measured the two asv sides together (its manifest says)."""
    a, b = before.source, after.source
    return a.machine == b.machine and interleave.is_interleaved(
        results_dir, a.machine, (a.commit, a.env_name), (b.commit, b.env_name))


def explained(before, after, rows, results_dir: str, top: int, raw: bool) -> str:
    """Under the table: for each of ``rows`` on both sides, its movers; then one line naming the
    rows whose sides kept no per-function counts."""
    sides = [profiles.for_result(Path(results_dir), s.source.machine, s.source.commit, s.source.env_name)
             for s in (before, after)]
    blocks, unexplained = [], []
    for row in rows:
        if row.ratio is None:
            continue
        cells = [side.report.measurements[row.key] for side in (before, after)]
        found = [kept.cells.get(profiles.cell_key(m.cell, m.preset)) if kept else None for kept, m in zip(sides, cells)]
        if not all(found) or any(not p.exact or p.total != round(m.mean) for p, m in zip(found, cells)):
            unexplained.append(row.label)
            continue
        movers = explain.explain(*found, top=top, raw=raw)
        blocks.append(explain.table(f"**{row.label}**: {movers.total.before:,} → {movers.total.after:,} instructions "
                                    f"({(row.ratio - 1) * 100:+.2f} %)", movers))
    if not rows:
        blocks.append("No row to explain (none beyond the gate; `--explain all` explains every row).")
    if unexplained:
        blocks.append(explain.unexplained_line(unexplained))
    return "\n" + "\n\n".join(blocks) + "\n"
