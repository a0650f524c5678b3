"""Which shard this process is: ``I/N`` from the command line, or read from a CI engine (``auto``).

``funcbench shard I/N|auto [--shards N]`` calls ``shard_spec(text, os.environ, shards)`` and gets a
``Shard`` (1-based ``index``, ``count``, and ``source``: where the numbers came from, for the log
and the manifest). Anything it cannot use raises ``ShardSpecError`` with one line for the user
that names the variable or the text at fault. Standard library only: this module sits on the
lowest floor (tests/test_layers.py) and imports nothing from funcbench.

``auto`` reads the variables each engine sets in every job of a fanned-out run, and turns its
index, 0- or 1-based, into funcbench's 1-based one:

======================  =====================================================  ======  =========================
engine                  index, count                                           base    notes
======================  =====================================================  ======  =========================
Slurm job array         SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT,            MIN     I = (ID - MIN) / STEP + 1;
                        SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_STEP,                    one evenly spaced range
                        SLURM_ARRAY_TASK_MAX (checked where set)                        only (``--array=A-B[:S]``)
Kubernetes Indexed Job  JOB_COMPLETION_INDEX, no count: ``--shards N``          0       N = .spec.completions
GitLab ``parallel:``    CI_NODE_INDEX, CI_NODE_TOTAL                            **1**
CircleCI                CIRCLE_NODE_INDEX, CIRCLE_NODE_TOTAL                    0
AWS Batch array job     AWS_BATCH_JOB_ARRAY_INDEX, AWS_BATCH_JOB_ARRAY_SIZE     0
Buildkite               BUILDKITE_PARALLEL_JOB, BUILDKITE_PARALLEL_JOB_COUNT    0
======================  =====================================================  ======  =========================

An engine counts as present when its index variable is set to something other than the empty
string. Slurm sets all five SLURM_ARRAY_TASK_* variables in every task of an array (slurmctld's
``_create_job_array``; STEP is the number after ``:`` in ``--array``, else 1): a list such as
``--array=1,3,4`` has no step that reaches every task, so MAX, MIN, STEP and COUNT disagree and
``auto`` refuses it rather than guess. GitLab sets CI_NODE_TOTAL=1 in every job and CI_NODE_INDEX
only in ``parallel:`` jobs, ``parallel: matrix:`` included: a matrix job is read as one shard of
the matrix.

GitHub Actions sets no such environment variables: ``strategy.job-index`` and
``strategy.job-total`` are expression contexts only, and ``auto`` does not read them (nor any
variable of funcbench's own). A workflow passes the numbers itself, from its matrix:
``funcbench shard "${{ matrix.shard }}/${{ strategy.job-total }}" ...`` with ``shard: [1, 2, 3]``
(recipes/github-actions.yml), or from the 0-based job index in the shell:
``funcbench shard "$((INDEX + 1))/$TOTAL" ...`` with ``INDEX: ${{ strategy.job-index }}`` and
``TOTAL: ${{ strategy.job-total }}`` in the step's ``env:``.

Where two engines' variables are both present they must name the same shard. ``--shards N``
(the CLI's) is the count for Kubernetes, and elsewhere (with ``I/N`` too) a check: it must equal
the count the engine or ``I/N`` gives.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, List, Mapping, Optional, Tuple

__all__ = ["Shard", "ShardSpecError", "Engine", "ENGINES", "shard_spec"]

_WHOLE = re.compile(r"[0-9]+")  # ASCII digits only: int() would also take "+3", " 3", "3_0" and "٣"
_EXPLICIT = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")
_SHOW = 40  # characters of a bad value shown in a message


class ShardSpecError(ValueError):
    """A shard that cannot be told from the text, the environment or --shards: one line for the user."""


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int  # 1-based: 1 <= index <= count
    count: int
    source: str  # where the numbers came from, e.g. "Slurm job array (SLURM_ARRAY_TASK_ID=3, ...)"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _show(value: str) -> str:
    """``value`` quoted for a one-line message: escapes (repr) and at most _SHOW characters."""
    return repr(value) if len(value) <= _SHOW else repr(value[:_SHOW]) + "..."


def _whole(name: str, value: str, what: str) -> int:
    """The whole number (>= 0) in ``value``, the value of variable ``name``; ShardSpecError otherwise."""
    text = value.strip()
    if not _WHOLE.fullmatch(text):
        raise ShardSpecError(f"{name}={_show(value)} is not a whole number ({what})")
    return int(text)


def _check_shards(shards: Optional[int]) -> Optional[int]:
    if shards is None:
        return None
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ShardSpecError(f"--shards must be a whole number >= 1, not {_show(str(shards))}")
    return shards


@dataclasses.dataclass(frozen=True)
class Engine:
    """One engine's variables. ``read`` turns the environment into (index, count, source), 1-based."""
    name: str
    index_var: str
    count_var: Optional[str]  # None: the engine has no count variable (Kubernetes: --shards)
    base: int  # what the engine's first index is: 0 or 1
    read: Callable[["Engine", Mapping[str, str], Optional[int]], Shard]

    @property
    def variables(self) -> Tuple[str, ...]:
        return (self.index_var,) + ((self.count_var,) if self.count_var else ())

    def present(self, environ: Mapping[str, str]) -> bool:
        return environ.get(self.index_var, "") != ""


def _counted(engine: Engine, environ: Mapping[str, str], shards: Optional[int]) -> Shard:
    """An engine with an index variable (0- or 1-based) and a count variable."""
    raw = environ[engine.index_var]
    index = _whole(engine.index_var, raw, engine.name)
    count_raw = environ.get(engine.count_var, "")
    if count_raw == "":
        raise ShardSpecError(f"{engine.index_var} is set but {engine.count_var} is not ({engine.name}): "
                             f"cannot tell how many shards there are; pass I/N instead of auto")
    count = _whole(engine.count_var, count_raw, engine.name)
    if count < 1:
        raise ShardSpecError(f"{engine.count_var}={count} ({engine.name}): there must be at least one shard")
    first, last = engine.base, engine.base + count - 1
    if not first <= index <= last:
        raise ShardSpecError(f"{engine.index_var}={index} is out of range for {engine.count_var}={count} "
                             f"({engine.name} counts from {engine.base}: {first}..{last})")
    source = f"{engine.name} ({engine.index_var}={index}, {engine.count_var}={count})"
    return _agree_with_shards(Shard(index - engine.base + 1, count, source), engine.count_var, shards)


def _agree_with_shards(shard: Shard, count_name: str, shards: Optional[int]) -> Shard:
    if shards is not None and shards != shard.count:
        raise ShardSpecError(f"--shards {shards} disagrees with {count_name}={shard.count} "
                             f"({shard.source}); drop --shards or make them equal")
    return shard


def _kubernetes(engine: Engine, environ: Mapping[str, str], shards: Optional[int]) -> Shard:
    """A Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0-based), and the count from --shards."""
    index = _whole(engine.index_var, environ[engine.index_var], engine.name)
    if shards is None:
        raise ShardSpecError(f"{engine.index_var}={index} ({engine.name}) comes with no count variable: "
                             f"pass --shards N, N being the Job's .spec.completions")
    if index >= shards:
        raise ShardSpecError(f"{engine.index_var}={index} is out of range for --shards {shards} "
                             f"({engine.name} counts from 0: 0..{shards - 1}; --shards must equal .spec.completions)")
    return Shard(index + 1, shards, f"{engine.name} ({engine.index_var}={index}, --shards {shards})")


SLURM_MIN, SLURM_MAX, SLURM_STEP = "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"


def _slurm(engine: Engine, environ: Mapping[str, str], shards: Optional[int]) -> Shard:
    """A Slurm job array: the task's place on the MIN, MIN+STEP, ... grid of COUNT tasks."""
    ids, counts = engine.index_var, engine.count_var
    task_id = _whole(ids, environ[ids], engine.name)
    values = {}
    for name in (counts, SLURM_MIN, SLURM_STEP):
        if environ.get(name, "") == "":
            raise ShardSpecError(f"{ids} is set but {name} is not ({engine.name}; Slurm sets it in every "
                                 f"array task): pass I/N instead of auto")
        values[name] = _whole(name, environ[name], engine.name)
    count, low, step = values[counts], values[SLURM_MIN], values[SLURM_STEP]
    high = _whole(SLURM_MAX, environ[SLURM_MAX], engine.name) if environ.get(SLURM_MAX, "") != "" else None
    if count < 1:
        raise ShardSpecError(f"{counts}={count} ({engine.name}): there must be at least one task")
    if step < 1:
        raise ShardSpecError(f"{SLURM_STEP}={step} ({engine.name}): the step must be at least 1")
    grid = f"{SLURM_MIN}={low}, {SLURM_STEP}={step}, {counts}={count}"
    if high is not None:
        grid += f", {SLURM_MAX}={high}"
        if high < low or (high - low) % step or (high - low) // step + 1 != count:
            raise ShardSpecError(f"{engine.name} is not one evenly spaced range ({grid}): "
                                 f"submit --array=A-B or --array=A-B:S, or pass I/N instead of auto")
    if task_id < low or (high is not None and task_id > high):
        raise ShardSpecError(f"{ids}={task_id} is out of range ({grid})")
    if (task_id - low) % step:
        raise ShardSpecError(f"{ids}={task_id} is not on the array's grid {low}, {low + step}, ... ({grid})")
    index = (task_id - low) // step + 1
    if index > count:
        raise ShardSpecError(f"{ids}={task_id} is out of range: task {index} of {count} ({grid})")
    return _agree_with_shards(Shard(index, count, f"{engine.name} ({ids}={task_id}, {grid})"), counts, shards)


ENGINES: Tuple[Engine, ...] = (
    Engine("Slurm job array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", 0, _slurm),  # base: MIN
    Engine("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", None, 0, _kubernetes),
    Engine("GitLab parallel", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1, _counted),
    Engine("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0, _counted),
    Engine("AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", 0, _counted),
    Engine("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0, _counted),
)


def _explicit(text: str, shards: Optional[int]) -> Shard:
    match = _EXPLICIT.fullmatch(text)
    if not match:
        raise ShardSpecError(f"shard {_show(text)} is neither I/N nor auto: give I/N with 1 <= I <= N "
                             f"(e.g. 2/3), or auto to read a CI engine's variables")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardSpecError(f"shard {_show(text)}: N must be at least 1 (give I/N with 1 <= I <= N)")
    if not 1 <= index <= count:
        raise ShardSpecError(f"shard {_show(text)}: I must be 1..{count} (shards count from 1; "
                             f"give I/N with 1 <= I <= N)")
    if shards is not None and shards != count:
        raise ShardSpecError(f"--shards {shards} disagrees with shard {index}/{count}; "
                             f"drop --shards or make them equal")
    return Shard(index, count, f"command line ({index}/{count})")


def _looked_for() -> str:
    return "; ".join(f"{e.name} ({', '.join(e.variables)})" for e in ENGINES)


def _auto(environ: Mapping[str, str], shards: Optional[int]) -> Shard:
    found: List[Tuple[Engine, Shard]] = [(e, e.read(e, environ, shards)) for e in ENGINES if e.present(environ)]
    if not found:
        raise ShardSpecError(f"auto found no shard variables; looked for {_looked_for()}. GitHub Actions sets "
                             f"none: pass I/N, e.g. \"$((INDEX + 1))/$TOTAL\" from strategy.job-index/job-total")
    (_, first), rest = found[0], found[1:]
    for _, other in rest:
        if (other.index, other.count) != (first.index, first.count):
            raise ShardSpecError(f"two engines disagree: {first.source} says {first}, {other.source} says "
                                 f"{other}; unset one engine's variables or pass I/N")
    if not rest:
        return first
    return Shard(first.index, first.count, " and ".join(s.source for _, s in found))


def shard_spec(text: str, environ: Mapping[str, str] = os.environ, shards: Optional[int] = None) -> Shard:
    """The shard ``text`` names: ``"I/N"`` (1-based) or ``"auto"`` (from ``environ``, see the module
    docstring). ``shards`` is the CLI's ``--shards N``: the count for a Kubernetes Indexed Job, and
    a check against every other count. ShardSpecError (one line) when it cannot be told."""
    if not isinstance(text, str):
        raise ShardSpecError(f"shard must be I/N or auto, not {_show(str(text))}")
    shards = _check_shards(shards)
    if text.strip().lower() == "auto":
        return _auto(environ, shards)
    return _explicit(text, shards)
