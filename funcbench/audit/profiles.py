"""The audit's ``explain`` part: what keeping per-function counts costs, and whether explaining a
count names a known change.

- cost: one counting of the light tier in a kept work folder; reading its dumps' totals only
  (what counting did before profiles) against totals, per-function counts and demangling
  (``parent.read_counts`` + ``parent.demangle``), as a share of the counting's seconds; the bytes
  of the profile file it makes.
- injection: per repetition, per op of ``injection.OPS`` and per cell, that cell counted with
  the op injected (FUNCBENCH_INJECT_OP's path) and once without (counted in the same call as
  another cell's injection: each cell has a valgrind process of its own); the rank of the op's
  kernel among ``funcbench.results.explain``'s movers (1 = largest |Δ|), and whether the listed
  lines, ``other`` and ``total`` sum exactly.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from funcbench.catalogue import registry
from funcbench.catalogue.registry import Cell
from funcbench.measurement import injection
from funcbench.measurement.instructions import parent
from funcbench.measurement.instructions.protocol import CountResponse, dump_total
from funcbench.results import explain, profiles

DEFAULT_CELLS = ("ppl_simple_reg:vjp:autograd", "multiheadattn:vjp:func")


def keeping_cost(preset: str, log: Callable[[str], None] = print) -> dict:
    cells = registry.select(["light"])
    log(f"explain: counting the light tier ({len(cells)} cells) in a kept folder")
    with tempfile.TemporaryDirectory(prefix="funcbench-audit-counts-") as folder:
        work = Path(folder)
        started = time.monotonic()
        counts = parent.count(cells, preset, workdir=work)
        counting = time.monotonic() - started
        parts = sorted(p for p in work.iterdir() if p.is_dir())
        started = time.monotonic()
        for part in parts:
            for entry in CountResponse.read(part).cells:
                for number in ([*entry.dumps, entry.baseline] if not entry.error else []):
                    dump_total(part / f"callgrind.out.{entry.pid}.{number}")
        totals_only = time.monotonic() - started
        started = time.monotonic()
        again: Dict[Cell, parent.Count] = {}
        for part in parts:
            again.update(parent.read_counts(part, CountResponse.read(part)))
        parent.demangle([c.profile for c in again.values()])
        with_profiles = time.monotonic() - started
        kept = profiles.ProfileFile("0" * 40, "audit", {
            profiles.cell_key(c, preset): profiles.CellProfile(int(n.per_call), n.profile)
            for c, n in counts.items() if not n.error})
        started = time.monotonic()
        size = kept.write(work / kept.name)
        writing = time.monotonic() - started
    exact = all(sum(p.functions.values()) == p.total for p in kept.cells.values())
    return dict(cells=len(kept.cells), functions=sum(len(p.functions) for p in kept.cells.values()), bytes=size,
                counting_s=counting, totals_only_s=totals_only, with_profiles_s=with_profiles, write_s=writing,
                added_share=(with_profiles - totals_only + writing) / counting, sums_exact=exact)


def injected_movers(cells: Sequence[Cell], preset: str, reps: int, top: int = 3,
                    log: Callable[[str], None] = print) -> List[dict]:
    rows = []
    for rep in range(1, reps + 1):
        for op, (kernel, _) in injection.OPS.items():
            counted = {}  # cell -> count with op injected into cell; every other cell: without
            for cell in cells:
                log(f"explain: repetition {rep}, {op} injected into {cell}")
                counted[cell] = parent.count(list(cells), preset, injected_op=f"{cell}:{op}")
            for cell in cells:
                clean = next(counted[other][cell] for other in cells if other != cell)
                injected = counted[cell][cell]
                if clean.error or injected.error:
                    rows.append(dict(rep=rep, op=op, kernel=kernel, cell=str(cell), rank=None, in_top=False,
                                     share=None, delta=None, sums_exact=False, error=clean.error or injected.error))
                    continue
                found = explain.explain(*(profiles.CellProfile(int(c.per_call), c.profile) for c in (clean, injected)),
                                        top=10 ** 9)  # every mover ranked
                rank = next((i for i, m in enumerate(found.movers, start=1) if kernel in m.label), None)
                exact = all(sum(getattr(m, side) for m in [*found.movers, found.other]) == getattr(found.total, side)
                            for side in ("before", "after")) and (found.total.before, found.total.after) == (
                                clean.per_call, injected.per_call)
                rows.append(dict(rep=rep, op=op, kernel=kernel, cell=str(cell), rank=rank, in_top=rank is not None
                                 and rank <= top, share=found.share(found.movers[rank - 1]) if rank else None,
                                 delta=found.total.delta, sums_exact=exact))
    return rows
