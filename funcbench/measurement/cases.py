"""A cell built: its model (built once per process), its ``v`` and its task's implementation
bound to them, ready to call. The one check before a build is ``registry.why_not``.

A cell's life: ``registry.Cell`` (what) -> ``cases.Case`` (built here) -> ``prepared.Prepared``
(checked and warmed up in a benchmark process) -> a value asv records -> ``Measurement`` (read
back) -> a report row (docs/developing.md#a-cells-life).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from funcbench.catalogue import registry
from funcbench.catalogue.config import PRESET, RunSettings, UnknownName
from funcbench.catalogue.models.common import DEFAULT_SEED
from funcbench.catalogue.registry import Cell, Unsupported
from funcbench.catalogue.tasks import REFERENCE_API, assert_consistent, bind, check_result, draw_v, forbid_recompiles


def resolve_device(device) -> torch.device:
    """A torch.device that exists here, or UnknownName/Unsupported saying why not."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UnknownName(f"unknown device {device!r}; use cpu, cuda or cuda:N ({error})") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise Unsupported(f"device {device!r} asked for, but CUDA is not available here")
        if resolved.index is not None and resolved.index >= count:
            raise Unsupported(f"device {device!r} asked for, but only {count} CUDA device(s) exist")
    elif resolved.type != "cpu":
        raise UnknownName(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    return resolved


@functools.lru_cache(maxsize=None)
def build(model: str, device: str = "cpu", preset: str = PRESET.default, seed: int = DEFAULT_SEED):
    """(forward, params) of a model, built once per process: asv calls setup before every
    timed call, and a model build costs up to seconds. The getter checks the preset."""
    reason = registry.unavailable_reason(model)
    if reason:
        raise Unsupported(f"{model} is unavailable here: {reason}")
    return registry.getter(model)(resolve_device(device), preset, seed)


@dataclasses.dataclass
class Case:
    """One (model, task, API) ready to run on fixed arguments: ``run()`` is one call of the
    task's implementation, exactly the work a timing measures (without waiting for a device)."""
    model: str
    task: str
    api: str
    device: str
    preset: str
    forward: Callable[..., Tensor]
    params: Tuple[Tensor, ...]
    v: object
    bound: Callable[[], object] = None  # the task's implementation bound to the arguments (tasks.bind)

    def __post_init__(self):
        if self.bound is None:
            self.bound = bind(self.api, self.task, self.forward, self.params, self.v)

    @property
    def cell(self) -> Cell:
        return Cell(self.model, self.task, self.api)

    def call(self):
        return self.bound()

    def call_checked(self):
        """One call whose result is checked (finite, right shape): warm-up and guard at once.
        A compiled op is compiled by this call, checked against eager torch.func with the
        original's tolerances, called once more, and from then on may not recompile."""
        result = self.call()
        check_result(self.task, result, self.params)
        if self.api == "compile":
            reference = bind(REFERENCE_API[self.api], self.task, self.forward, self.params, self.v)()
            assert_consistent(self.task, reference, result)
            self.call()  # some one-time work happens on the second call (measured: 0.27 ms, then 0.07)
            forbid_recompiles()
        return result


@functools.lru_cache(maxsize=None)
def _draw_v(model: str, task: str, device: str, preset: str, seed: int):
    forward, params = build(model, device, preset, seed)
    output = forward(*params).detach() if task == "vjp" else None
    return draw_v(task, output, params, seed)


def forget_builds() -> None:
    """Drop every cached model (a run over many models keeps one model alive at a time)."""
    _draw_v.cache_clear()
    build.cache_clear()


def build_case(cell: Cell, device: str = "cpu", preset: str = PRESET.default, seed: int = DEFAULT_SEED,
               run: Optional[RunSettings] = None, metric: str = "time") -> Case:
    """Build (or reuse) the model and v of one cell; Unsupported saying why_not if it is not
    measured here (with ``run``: not by that asv run). The one check of a cell before a build."""
    cell = Cell.parse(str(cell))  # a cell of names this suite knows (UnknownName otherwise)
    model, task, api = cell
    reason = registry.why_not(cell, preset, str(device), metric, run)
    if reason:
        raise Unsupported(reason)
    # An asv run's device param is a kind (cpu, cuda); the run names the device (cuda:1).
    device = str(resolve_device(run.device if run is not None else device))
    forward, params = build(model, device, preset, seed)
    # v depends only on the task's kind, so both APIs see the same v.
    return Case(model, task, api, device, preset, forward, params, _draw_v(model, task, device, preset, seed))
