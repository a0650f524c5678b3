"""Files kept rather than replaced."""
from __future__ import annotations

import datetime
import shutil
from pathlib import Path


def _bak_name(path: Path) -> Path:
    """``<name>.<UTC time>.bak`` beside ``path`` (``-1``, ``-2``... where that is taken)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    bak, count = path.with_name(f"{path.name}.{stamp}.bak"), 1
    while bak.exists():
        bak, count = path.with_name(f"{path.name}.{stamp}-{count}.bak"), count + 1
    return bak


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.<UTC time>.bak`` and return the new path: kept, and never read
    as a result again (asv reads only ``*.json``)."""
    bak = _bak_name(Path(path))
    Path(path).rename(bak)
    return bak


def keep_copy(path: Path) -> Path:
    """Copy ``path`` to ``<name>.<UTC time>.bak`` and return the copy: for a file a tool goes on
    adding to (asv run adds to a commit's results file, keeping what it does not rerun)."""
    bak = _bak_name(Path(path))
    shutil.copy2(path, bak)
    return bak
