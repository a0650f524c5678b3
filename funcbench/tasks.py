"""The ten functional-autograd tasks, in both APIs, with the checks that guard their timings.

A task implementation takes ``(forward, params, v)`` and returns only the derivative part of
the op's result, in the same layout for both APIs, so results can be compared and checked:
- vjp, vhp, hvp, jacobian, jacrev, jacfwd: a tuple shaped like ``params``;
- jvp: a scalar;
- hessian, hessian_revrev, hessian_fwdrev: ``h[i][j]`` of shape ``params[i].shape + params[j].shape``.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import torch
import torch.autograd.functional as AF
import torch.func as F
from torch import Tensor

TASKS = ("vjp", "jvp", "vhp", "hvp", "jacobian", "hessian",
         "jacrev", "jacfwd", "hessian_revrev", "hessian_fwdrev")
# The original's default tasks for the deep models (the ppl models run all); the others are
# the "slow tasks" of --run-slow-tasks.
VECTOR_PRODUCT_TASKS = ("vjp", "vhp", "jvp")
APIS = ("autograd", "func")
API_LABELS = {"autograd": "torch.autograd.functional", "func": "torch.func"}

# Which v each task takes: a tangent/cotangent like the scalar output or like the params.
V_LIKE_OUTPUT = ("vjp",)
V_LIKE_PARAMS = ("jvp", "vhp", "hvp")

# The original's one-time consistency check between the two APIs.
CONSISTENCY_TOLERANCE = {"rtol": 1e-5, "atol": 5e-3}
CONSISTENCY_TOLERANCE_BY_TASK = {"vhp": {"rtol": 1e-5, "atol": 1e-2}}

Impl = Callable[[Callable[..., Tensor], Tuple[Tensor, ...], object], object]


def _all(params: Sequence[Tensor]) -> Tuple[int, ...]:
    return tuple(range(len(params)))


# strict=True where the API allows it; autograd.functional refuses strict with vectorize=True.
AUTOGRAD_TASKS: Dict[str, Impl] = {
    "vjp": lambda f, p, v: AF.vjp(f, p, v, strict=True)[1],
    "jvp": lambda f, p, v: AF.jvp(f, p, v, strict=True)[1],
    "vhp": lambda f, p, v: AF.vhp(f, p, v, strict=True)[1],
    "hvp": lambda f, p, v: AF.hvp(f, p, v, strict=True)[1],
    "jacobian": lambda f, p, v: AF.jacobian(f, p, strict=True),
    "hessian": lambda f, p, v: AF.hessian(f, p, strict=True),
    "jacrev": lambda f, p, v: AF.jacobian(f, p, vectorize=True),
    "jacfwd": lambda f, p, v: AF.jacobian(f, p, vectorize=True, strategy="forward-mode"),
    "hessian_revrev": lambda f, p, v: AF.hessian(f, p, vectorize=True),
    "hessian_fwdrev": lambda f, p, v: AF.hessian(f, p, vectorize=True, outer_jacobian_strategy="forward-mode"),
}


def _func_vjp(f, p, v):
    _, vjp_fn = F.vjp(f, *p)
    return vjp_fn(v)


def _func_vhp(f, p, v):
    # The gradient is the output, the loss rides along as aux.
    _, vjp_fn, _ = F.vjp(F.grad_and_value(f, argnums=_all(p)), *p, has_aux=True)
    return vjp_fn(v)


def _func_hvp(f, p, v):
    _, tangent, _ = F.jvp(F.grad_and_value(f, argnums=_all(p)), p, v, has_aux=True)
    return tangent


FUNC_TASKS: Dict[str, Impl] = {
    "vjp": _func_vjp,
    "jvp": lambda f, p, v: F.jvp(f, p, v)[1],
    "vhp": _func_vhp,
    "hvp": _func_hvp,
    # "jacobian" (non-vectorized) has no torch.func twin: see FUNC_UNSUPPORTED.
    "hessian": lambda f, p, v: F.hessian(f, argnums=_all(p))(*p),
    "jacrev": lambda f, p, v: F.jacrev(f, argnums=_all(p))(*p),
    "jacfwd": lambda f, p, v: F.jacfwd(f, argnums=_all(p))(*p),
    "hessian_revrev": lambda f, p, v: F.jacrev(F.jacrev(f, argnums=_all(p)), argnums=_all(p))(*p),
    "hessian_fwdrev": lambda f, p, v: F.jacfwd(F.jacrev(f, argnums=_all(p)), argnums=_all(p))(*p),
}
FUNC_UNSUPPORTED = {"jacobian": "torch.func has no non-vectorized jacobian"}

IMPLEMENTATIONS = {"autograd": AUTOGRAD_TASKS, "func": FUNC_TASKS}
assert set(AUTOGRAD_TASKS) == set(TASKS) and set(FUNC_TASKS) | set(FUNC_UNSUPPORTED) == set(TASKS)


def task_label(task: str, api: str) -> str:
    """The task column of the original report: torch.func rows are 'functorch <task>'."""
    return task if api == "autograd" else f"functorch {task}"


def draw_v(task: str, output: Tensor, params: Sequence[Tensor], seed: int):
    """The task's v, drawn once from a seeded generator on the CPU, then moved: the same
    v on every device and every commit. None for tasks that take none."""
    generator = torch.Generator().manual_seed(seed)

    def like(t: Tensor) -> Tensor:
        return torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)

    if task in V_LIKE_OUTPUT:
        return like(output)
    if task in V_LIKE_PARAMS:
        return tuple(like(p) for p in params)
    return None


def expected_shapes(task: str, params: Sequence[Tensor]):
    shapes = [tuple(p.shape) for p in params]
    if task == "jvp":
        return ()
    if task.startswith("hessian"):
        return [[a + b for b in shapes] for a in shapes]
    return shapes


def _shapes(result):
    if isinstance(result, Tensor):
        return tuple(result.shape)
    return [_shapes(r) for r in result]


def _leaves(result):
    if isinstance(result, Tensor):
        yield result
    else:
        for r in result:
            yield from _leaves(r)


class ResultCheckError(AssertionError):
    """An op's result has the wrong shape or is not finite: its timing would be meaningless."""


def check_result(task: str, result, params: Sequence[Tensor]) -> None:
    expected, got = expected_shapes(task, params), _shapes(result)
    if got != expected:
        raise ResultCheckError(f"{task}: result shapes {got}, expected {expected}")
    for leaf in _leaves(result):
        if not torch.isfinite(leaf).all():
            raise ResultCheckError(f"{task}: result has non-finite values")


def assert_consistent(task: str, autograd_result, func_result) -> None:
    """torch.func matches torch.autograd.functional (the original's check and tolerances)."""
    tolerance = CONSISTENCY_TOLERANCE_BY_TASK.get(task, CONSISTENCY_TOLERANCE)
    for a, b in zip(_leaves(autograd_result), _leaves(func_result), strict=True):
        # Values, not dtypes: on torch 2.14 torch.func.jvp returns a float64 tangent for
        # `0-dim float32 tensor * python float` (DETR's loss weights), autograd float32.
        torch.testing.assert_close(b, a, check_dtype=False, **tolerance)
