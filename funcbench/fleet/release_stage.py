"""The fixed path a release is measured at.

Every release is measured at one fixed path: its environment is moved (one rename) to
``/tmp/funcbench-release`` for its run and back after it, with funcbench imported from
``/tmp/funcbench-source``, a link to this checkout. asv names an existing environment by its
interpreter's path and draws each name as a line of its own; and the paths a process holds
shape its heap: counts of one build moved between releases folders (0.03 % for two of one
length, 0.5 % for another length, and still 0.5 % through a link to the environment, since
native code resolves links). At one real path a release counts the same in any folder and on
any machine, and every release (every runner's shard too) is one line. One run at a time per
machine (a lock); an environment a killed run left there goes back before the next run.
"""
from __future__ import annotations

import contextlib
import fcntl
import subprocess
from pathlib import Path
from typing import Callable

from funcbench.catalogue import config
from funcbench.fleet.release_index import ReleaseError

# The fixed paths every release is measured through (see above), and the lock of the machine's one run.
STAGE, SOURCE, LOCK = Path("/tmp/funcbench-release"), Path("/tmp/funcbench-source"), Path("/tmp/funcbench-release.lock")
PYTHON = str(STAGE / "bin" / "python")  # what asv runs, whatever the releases folder
COMPILE_TIMEOUT_S = 1800


def compile_byte_code(env_dir: Path, site: Path) -> None:
    """Every module's byte code, compiled at STAGE (the environment staged there). Byte code left
    to the first import moved the first counting in a new environment (ppl_simple_reg vjp
    911,132, then 910,460 on every later run); compiled in the environment's own folder it would
    name that folder."""
    staged = STAGE / site.relative_to(env_dir)
    try:  # compileall exits 1 for the odd file no Python 3 compiles (templates, tests): not a failure
        subprocess.run([PYTHON, "-m", "compileall", "-q", "-f", "-j", "0", str(staged)],
                       capture_output=True, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"compiling byte code: no result within {COMPILE_TIMEOUT_S} s") from None


def _point(link: Path, target: Path) -> None:
    """``link`` -> ``target`` in one rename (never half there)."""
    partial = link.with_name(link.name + ".partial")
    if partial.is_symlink() or partial.exists():
        partial.unlink()
    partial.symlink_to(Path(target).absolute(), target_is_directory=True)
    partial.replace(link)


@contextlib.contextmanager
def machine_lock(log: Callable[[str], None] = print):
    """Held while the fixed links are set and used (one measuring or checking run per machine)."""
    with open(LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log(f"waiting for another funcbench releases run on this machine ({LOCK})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


HOME_MARK = ".funcbench-home"  # in a staged environment: the folder it goes back to


def unstage(log: Callable[[str], None] = print, after_run: bool = False) -> None:
    """Put back the environment at STAGE, after its run or where a killed run left it (hold
    machine_lock); remove a link there."""
    if STAGE.is_symlink():
        STAGE.unlink()
    elif STAGE.exists():
        mark = STAGE / HOME_MARK
        if not mark.is_file():
            raise ReleaseError(f"{STAGE} is not an environment of funcbench's: move it away")
        home = Path(mark.read_text().strip())
        if home.exists():
            raise ReleaseError(f"{STAGE} belongs in {home}, which exists again: move one of them away")
        STAGE.rename(home)
        (home / HOME_MARK).unlink()
        if not after_run:
            log(f"put back {home} (a killed run had left it at {STAGE})")


@contextlib.contextmanager
def staged(name: str, python: str, movable: bool, adopted: Path, log: Callable[[str], None] = print):
    """Release ``name``'s interpreter ``python`` at STAGE and this checkout at SOURCE for the
    block (hold machine_lock); yields STAGE's interpreter. An environment funcbench made
    (``movable``) is moved there and back; an interpreter it did not make, or one on another
    file system than /tmp, is reached through a link (a venv linked whole, since its interpreter
    finds its pyvenv.cfg beside the path it was started by; else through ``adopted``/bin/python),
    and its counts depend on where it lies."""
    unstage(log)
    _point(SOURCE, config.ROOT)
    home = Path(python).parent.parent
    moved = False
    if movable:
        (home / HOME_MARK).write_text(str(home.absolute()))
        try:
            home.rename(STAGE)
            moved = True
        except OSError as error:
            (home / HOME_MARK).unlink()
            log(f"{name}: cannot move {home} to {STAGE} ({error.strerror}): measured through a link, so its counts "
                f"depend on its folder")
    if not moved:
        if not (home / "pyvenv.cfg").is_file():
            home = adopted
            (home / "bin").mkdir(parents=True, exist_ok=True)
            link = home / "bin" / "python"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path(python).resolve())
        _point(STAGE, home)
    try:
        yield PYTHON
    finally:
        if moved:
            unstage(log, after_run=True)
        else:
            STAGE.unlink()


