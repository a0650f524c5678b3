"""Two sides measured interleaved, so the machine's drift falls on both: the data the time gate
trusts.

A shared VM's speed drifts by several per cent over minutes. Two asv runs one after the other
put all of that drift between the sides, and asv's test, which sees only the samples within
each run, calls it a change (measured here: the same build run twice, one run after the other, 36 of 62
rows "significantly different", docs/measurements.md). asv interleaves rounds across commits itself, but refuses
to for existing environments, which is how two torch builds are compared. So:

- two torch builds (two existing pythons): ``rounds`` alternations of one-round asv runs, A B B
  A A B ..., each appending its samples (``asv run -E existing:PY --set-commit-hash C
  --append-samples -a rounds=1``);
- two funcbench commits: one ``asv run`` of both commits, whose rounds asv interleaves.

Each finished comparison is recorded in ``<results>/<machine>/funcbench-interleaved.json``;
``funcbench compare --fail-above`` on time trusts only pairs recorded there.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, ContextManager, List, Optional, Sequence

from funcbench.catalogue import config
from funcbench.results import environment
from funcbench.fleet.asv_driver import Asv, existing_env_name, git
from funcbench.util.files import set_aside

MANIFEST = "funcbench-interleaved.json"
# Every eager cell's time, by the clocks the run times with (FUNCBENCH_CLOCKS; by default the CPU
# clock on a CPU device): the other clock's parameter sets are n/a.
DEFAULT_BENCH = (r"^benchmarks\.\w+\.time_(cpu_)?op",)


class InterleaveError(RuntimeError):
    """One line for the user: a side that is neither a python nor a commit, a failed asv run."""


@dataclasses.dataclass(frozen=True)
class Side:
    """One side: an existing python (a torch build) or a funcbench commit."""
    label: str
    python: Optional[str] = None  # absolute path of an existing environment's python
    commit: Optional[str] = None  # full hash of a commit asv builds in its matrix environment

    @property
    def env_name(self) -> Optional[str]:
        """asv's name of the existing environment."""
        return None if self.python is None else existing_env_name(self.python)


def resolve(label: str, repo: Path = config.ROOT) -> Side:
    """A path to a python executable, or a commit-ish of ``repo``."""
    path = Path(label)
    if os.sep in label or path.exists():
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InterleaveError(f"{label!r} is not an executable python")
        return Side(label, python=str(path.absolute()))
    try:
        return Side(label, commit=git("rev-parse", "--verify", "--quiet", f"{label}^{{commit}}", cwd=repo))
    except subprocess.CalledProcessError:
        raise InterleaveError(f"{label!r} is neither a python executable nor a commit of this repository") from None


def check_sides(before: Side, after: Side) -> None:
    if (before.python is None) != (after.python is None):
        raise InterleaveError("compare two pythons (torch builds) or two commits, not one of each")
    if before == after:
        raise InterleaveError(f"both sides are {before.label!r}")


def environment_differences(before: Side, after: Side, asv: Asv) -> List[str]:
    """What differs between two pythons beyond the torch build, said before anything runs (and
    recorded beside the results, for compare): two torch builds should differ in nothing else.
    Two commits run in the same environments: nothing to probe."""
    if before.python is None:
        return [f"two funcbench commits in the same environment(s): {before.label} -> {after.label}"]
    prints = [environment.probe(side.python) for side in (before, after)]
    for side, fingerprint in zip((before, after), prints):
        environment.record(asv.results_dir, asv.machine, side.env_name, fingerprint)
    return environment.describe(environment.differences(*prints))


def manifest_path(results_dir: Path, machine: str) -> Path:
    return Path(results_dir) / machine / MANIFEST


def recorded(results_dir: Path, machine: str) -> List[dict]:
    try:
        return json.loads(manifest_path(results_dir, machine).read_text())
    except (OSError, ValueError):
        return []


def is_interleaved(results_dir: Path, machine: str, before: tuple, after: tuple) -> bool:
    """Whether ``funcbench interleave`` measured these two (commit, environment) sides together."""
    pair = {tuple(before), tuple(after)}
    return any({tuple(s) for s in entry["sides"]} == pair for entry in recorded(results_dir, machine))


def _record(results_dir: Path, machine: str, entry: dict) -> None:
    path = manifest_path(results_dir, machine)
    entries = [e for e in recorded(results_dir, machine) if {tuple(s) for s in e["sides"]} != {tuple(s) for s in entry["sides"]}]
    path.write_text(json.dumps(entries + [entry], indent=2))


def _keep_earlier(results_dir: Path, machine: str, commit: str, env_name: str) -> List[str]:
    """Set a results file the run would replace (or append to) aside as .bak: nothing recorded
    is lost, and asv never reads it as a result."""
    return [str(set_aside(path)) for path in (Path(results_dir) / machine).glob(f"{commit[:8]}-{env_name}.json")]


def interleave(before: Side, after: Side, asv: Asv, bench: Sequence[str] = DEFAULT_BENCH, rounds: int = 6,
               log=print, around: Optional[Callable[[Side], ContextManager]] = None) -> List[dict]:
    """Measure both sides interleaved with ``asv`` (its configuration and machine); returns the
    manifest entries written, one per compared pair of (commit, environment). ``around(side)``
    (the audit's load) wraps each run of a side; two commits share one run, wrapped as the after side's."""
    around = around or (lambda side: contextlib.nullcontext())
    check_sides(before, after)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if before.python:
        commit = git("rev-parse", "HEAD", cwd=asv.repo)  # the suite's commit, as --set-commit-hash
        pairs = [[(commit, before.env_name), (commit, after.env_name)]]
    else:
        pairs = [[(before.commit, env), (after.commit, env)] for env in _matrix_env_names(asv)]
    for pair in pairs:
        for commit, env_name in pair:
            for moved in _keep_earlier(asv.results_dir, asv.machine, commit, env_name):
                log(f"funcbench interleave: kept the earlier results as {moved}")
    if before.python:
        # A B B A A B ...: each side leads as often as it trails, so a steady drift falls on both.
        order = [side for index in range(rounds) for side in ((before, after) if index % 2 == 0 else (after, before))]
        for number, side in enumerate(order, start=1):
            log(f"funcbench interleave: run {number}/{len(order)}: {side.label}")
            with around(side):
                asv.run("-E", f"existing:{side.python}", "--set-commit-hash", pairs[0][0][0], "--append-samples",
                        "-a", "rounds=1", bench=bench)
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as hashes:
            hashes.write(f"{before.commit}\n{after.commit}\n")
        try:  # one run of both commits: asv interleaves their rounds
            with around(after):
                asv.run(f"HASHFILE:{hashes.name}", "--record-samples", "--interleave-rounds", bench=bench)
        finally:
            os.unlink(hashes.name)
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entries = [dict(sides=[list(s) for s in pair], labels=[before.label, after.label], rounds=rounds,
                    bench=list(bench), started=started, finished=finished) for pair in pairs]
    for entry in entries:
        _record(asv.results_dir, asv.machine, entry)
    return entries


def _matrix_env_names(asv: Asv) -> List[str]:
    """The environment names asv gives the configuration's matrix."""
    from asv import environment
    from asv.config import Config

    conf = Config.load(str(asv.conf))
    return [env.name for env in environment.get_environments(conf, None)]
