"""The typed contract between the counting parent and the child under valgrind: a request in,
a response out, each a JSON file in the child's folder, and the callgrind dumps the response
names (``dump_total`` reads one). Nothing else passes between them (the child's environment is
pinned: parent.child_environment)."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

REQUEST, RESPONSE = "request.json", "response.json"
SIZE = "cells"  # how many cells the request holds: all the worker reads of it (child.main)


@dataclasses.dataclass(frozen=True)
class CellRequest:
    cell: str  # model:task:api
    warmup: int  # uncounted calls after the checked one, the last after gc.collect() (0: none)
    calls: int  # counted calls


@dataclasses.dataclass(frozen=True)
class CountRequest:
    cells: Tuple[CellRequest, ...]
    preset: str
    controls: Optional[str] = None  # the compiled client-request shim; None: torch's toggles, instrumented from the start
    injection: str = ""  # TEST-ONLY "model:task:api:factor", priced in instructions by the child
    injected_op: str = ""  # TEST-ONLY "model:task:api:op": one real ATen op after that cell's (injection.OPS)

    def write(self, folder: Path) -> None:
        """The request, how many cells it holds, and each cell's own one-cell request (what the
        process counting it reads: the same size however many cells the whole request holds)."""
        (Path(folder) / REQUEST).write_text(json.dumps(dataclasses.asdict(self)))
        (Path(folder) / SIZE).write_text(f"{len(self.cells):06d}")  # one length for any request
        for index, cell in enumerate(self.cells):
            one = dataclasses.replace(self, cells=(cell,))
            (Path(folder) / f"cell-{index:04d}.request.json").write_text(json.dumps(dataclasses.asdict(one)))

    @staticmethod
    def size(folder: Path) -> int:
        return int((Path(folder) / SIZE).read_text())

    @classmethod
    def read_cell(cls, folder: Path, index: int) -> "CountRequest":
        """The one-cell request of cell ``index``."""
        return cls._from(json.loads((Path(folder) / f"cell-{index:04d}.request.json").read_text()))

    @classmethod
    def read(cls, folder: Path) -> "CountRequest":
        return cls._from(json.loads((Path(folder) / REQUEST).read_text()))

    @classmethod
    def _from(cls, data: dict) -> "CountRequest":
        return cls(tuple(CellRequest(**c) for c in data.pop("cells")), **data)


@dataclasses.dataclass
class CellDumps:
    """Where one cell's counts are: callgrind dump numbers (counted from 1), or why it failed."""
    cell: str
    baseline: Optional[int] = None  # the dump of a no-op between the same toggles (subtracted)
    dumps: List[int] = dataclasses.field(default_factory=list)  # one per counted call
    injected_iterations: int = 0  # TEST-ONLY spin() iterations added after the op
    error: Optional[str] = None
    pid: Optional[int] = None  # the process the cell was counted in: its dumps are callgrind.out.<pid>.<n>


@dataclasses.dataclass
class CountResponse:
    pid: int  # the worker's; each cell's dumps are its own process's (CellDumps.pid)
    cells: List[CellDumps] = dataclasses.field(default_factory=list)

    def write(self, folder: Path) -> None:
        (Path(folder) / RESPONSE).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def read(cls, folder: Path) -> "CountResponse":
        data = json.loads((Path(folder) / RESPONSE).read_text())
        return cls(data["pid"], [CellDumps(**c) for c in data["cells"]])


def dump_total(path: Path) -> int:
    """The dump's ``totals:`` line (the sum of its cost lines). Not ``summary:``: in the first
    dump after instrumentation is switched back on, callgrind 3.19 writes a wrapped-around
    negative summary there."""
    with open(path) as handle:
        for line in handle:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise ValueError(f"{path}: no totals line (not a callgrind dump)")


class Function(NamedTuple):
    """A function as callgrind names it: its symbol (demangled by valgrind), the source file of its
    debug information and its object file ("???" where callgrind has none)."""
    name: str
    file: str
    object: str


# The dump's lines that name a function, a file or an object ("fn=(12) name" defines id 12, "fn=(12)"
# uses it; a dump defines every id it uses). Callee lines (cfn, cfi, cob) define names too.
# callgrind names a function's recursive activations f'2, f'3, ...: one function here, whatever the depth.
_RECURSION = re.compile(r"'\d+$")
_TABLES = {"fn": "fn", "cfn": "fn", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "ob": "ob", "cob": "ob"}


def dump_functions(path: Path) -> Dict[Function, int]:
    """Each function's *self* instructions in one dump (callgrind format 1, one event, Ir): the
    cost lines under its ``fn=``, not the inclusive cost line after each ``calls=``. They sum to
    the dump's ``totals:`` exactly; a dump where they do not raises ValueError."""
    names = {"fn": {}, "fl": {}, "ob": {}}
    current = {"fn": "???", "fl": "???", "ob": "???"}
    counts: Dict[Function, int] = {}
    here = None
    skip_next_cost = False  # the line after calls= is the call's inclusive cost
    total = None
    with open(path) as handle:
        for line in handle:
            first = line[:1]
            if first.isdigit() or first in "+-*":
                if skip_next_cost:
                    skip_next_cost = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    counts[here] = counts.get(here, 0) + int(parts[1])
                continue
            key, sep, value = line.rstrip("\n").partition("=")
            if sep and key in _TABLES:
                table = names[_TABLES[key]]
                if value.startswith("("):
                    number, _, name = value[1:].partition(")")
                    name = name[1:] if name else table[number]
                    table[number] = name
                else:  # uncompressed (--compress-strings=no)
                    name = value
                if key in current:  # fn, fl, ob: where the next cost lines belong (fi/fe: inlined code, same fn)
                    current[key] = name
                    if key == "fn":
                        here = Function(_RECURSION.sub("", name), current["fl"], current["ob"])
            elif key == "calls" and sep:
                skip_next_cost = True
            elif line.startswith("totals:"):
                total = int(line.split()[1])
    found = sum(counts.values())
    if total is None or found != total:
        raise ValueError(f"{path}: functions sum to {found} instructions, the dump's totals line says {total}")
    counts.pop(None, None)  # cost before any fn= (none in callgrind's own dumps)
    return counts
