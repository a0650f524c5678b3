"""The typed contract between the counting parent and the child under valgrind: a request in,
a response out, each a JSON file in the child's folder, and the callgrind dumps the response
names (``dump_total`` reads one). Nothing else passes between them (the child's environment is
pinned: parent.child_environment)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Tuple

REQUEST, RESPONSE = "request.json", "response.json"


@dataclasses.dataclass(frozen=True)
class CellRequest:
    cell: str  # model:task:api
    warmup: int  # uncounted calls before counting
    calls: int  # counted calls


@dataclasses.dataclass(frozen=True)
class CountRequest:
    cells: Tuple[CellRequest, ...]
    preset: str
    controls: Optional[str] = None  # the compiled client-request shim; None: torch's toggles, instrumented from the start
    injection: str = ""  # TEST-ONLY "model:task:api:factor", priced in instructions by the child

    def write(self, folder: Path) -> None:
        (Path(folder) / REQUEST).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def read(cls, folder: Path) -> "CountRequest":
        data = json.loads((Path(folder) / REQUEST).read_text())
        return cls(tuple(CellRequest(**c) for c in data.pop("cells")), **data)


@dataclasses.dataclass
class CellDumps:
    """Where one cell's counts are: callgrind dump numbers (counted from 1), or why it failed."""
    cell: str
    baseline: Optional[int] = None  # the dump of a no-op between the same toggles (subtracted)
    dumps: List[int] = dataclasses.field(default_factory=list)  # one per counted call
    injected_iterations: int = 0  # TEST-ONLY spin() iterations added after the op
    error: Optional[str] = None


@dataclasses.dataclass
class CountResponse:
    pid: int  # the dumps are callgrind.out.<pid>.<n>
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
