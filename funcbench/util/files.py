"""Files kept rather than replaced."""
from __future__ import annotations

import datetime
from pathlib import Path


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.<UTC time>.bak`` (``-1``, ``-2``... where that is taken) and
    return the new path: kept, and never read as a result again (asv reads only ``*.json``)."""
    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    bak, count = path.with_name(f"{path.name}.{stamp}.bak"), 1
    while bak.exists():
        bak, count = path.with_name(f"{path.name}.{stamp}-{count}.bak"), count + 1
    path.rename(bak)
    return bak
