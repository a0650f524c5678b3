"""Files kept rather than replaced."""
from __future__ import annotations

import datetime
import os
import shutil
import tempfile
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


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` through a temporary file and one rename: a reader sees the old file
    or the new one, never half of one. Its mode is a new file's (mkstemp's would be 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
