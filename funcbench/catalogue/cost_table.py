"""The committed cost table, ``shard_costs.json``: seconds per asv parameter set (by its name,
``param_sets.ParamSet.name``) from a reference run, and that machine's calibration seconds.
Shard plans, the main job and the counting's split over valgrind workers read it;
``funcbench shard-costs`` writes it (funcbench.fleet.reference_costs measures it)."""
from __future__ import annotations

import datetime
import json
import statistics
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

COSTS = Path(__file__).with_name("shard_costs.json")


class CostTableError(RuntimeError):
    """A cost table that cannot be read: one line for the user."""


def read(path: Path = COSTS) -> Tuple[Dict[str, float], Optional[float]]:
    """(seconds per parameter set, the reference machine's calibration seconds or None)."""
    try:
        data = json.loads(Path(path).read_text())
        return {k: float(v) for k, v in data["seconds"].items()}, data.get("calibration_s")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CostTableError(f"cannot read the cost table {path}: {error}") from None


def median_seconds(costs: Dict[str, float], names: Iterable[str]) -> float:
    """What a parameter set the table does not know costs: the median of those of ``names`` it
    knows (1 s where it knows none)."""
    known = [costs[name] for name in names if name in costs]
    return statistics.median(known) if known else 1.0


def write(table: Dict[str, float], sources: Sequence[Path], output: Path = COSTS,
          calibration_s: Optional[float] = None) -> Path:
    data = dict(comment="seconds per asv parameter set, from a reference run; regenerate with "
                        "`funcbench shard-costs RESULTS_FILE ...` on the machine of that run (docs/past-one-machine.md)",
                sources=[str(s) for s in sources], written=datetime.date.today().isoformat(),
                calibration_s=calibration_s, seconds=dict(sorted(table.items())))
    Path(output).write_text(json.dumps(data, indent=1) + "\n")
    return Path(output)


def update(table: Dict[str, float], sources: Sequence[Path], output: Path = COSTS,
           calibration_s: Optional[float] = None) -> Path:
    """Add (or replace) ``table``'s parameter sets in the cost table at ``output``, keeping its
    others: a run of a part the reference run left out (a tier counted apart) joins the table.
    Its seconds are rescaled to the table's machine speed by the two calibrations."""
    old, old_calibration = read(output)
    scale = old_calibration / calibration_s if old_calibration and calibration_s else 1.0
    merged = {**old, **{name: round(seconds * scale, 3) for name, seconds in table.items()}}
    known = json.loads(Path(output).read_text()).get("sources", [])
    return write(merged, [*known, *map(str, sources)], output, old_calibration or calibration_s)
