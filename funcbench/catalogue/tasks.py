"""The ten functional-autograd tasks in each API, with the checks that guard their timings.

The APIs: ``torch.autograd.functional`` (autograd), eager ``torch.func`` (func), and
``torch.compile`` of the ``torch.func`` implementation (compile). An API is a table of task
implementations (compile reuses func's) and, where the op needs more than a call, a binder that
turns an implementation and its arguments into the op (``bind``).

A task implementation takes ``(forward, params, v)`` and returns only the derivative part of
the op's result, in the same layout for every API, so results can be compared and checked:
- vjp, vhp, hvp, jacobian, jacrev, jacfwd: a tuple shaped like ``params``;
- jvp: a scalar;
- hessian, hessian_revrev, hessian_fwdrev: ``h[i][j]`` of shape ``params[i].shape + params[j].shape``.
"""
from __future__ import annotations

import functools
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
APIS = ("autograd", "func", "compile")
EAGER_APIS = ("autograd", "func")  # the original's two
API_LABELS = {"autograd": "torch.autograd.functional", "func": "torch.func", "compile": "torch.compile(torch.func)"}
# Report rows: the original wrote "functorch <task>" for torch.func; compiled rows follow suit.
TASK_LABEL_PREFIX = {"autograd": "", "func": "functorch ", "compile": "compiled "}
# What an API's result is checked against once, before any timing (the original's tolerances).
REFERENCE_API = {"func": "autograd", "compile": "func"}

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

IMPLEMENTATIONS = {"autograd": AUTOGRAD_TASKS, "func": FUNC_TASKS, "compile": FUNC_TASKS}
assert set(AUTOGRAD_TASKS) == set(TASKS) and set(FUNC_TASKS) | set(FUNC_UNSUPPORTED) == set(TASKS)


class CompiledOp:
    """torch.compile of one torch.func implementation over fixed (forward, params, v).

    fullgraph=True: a graph break is an error at the first call, never a quietly eager op.
    Dynamo keeps compiled code per code object and recompiles for every new closure of it, up
    to a limit after which it runs eager without failing; every CompiledOp compiles the same
    lambda, so building one first drops dynamo's caches (one compiled cell per process at a
    time: the CLI runs cells one after the other, asv one per process)."""

    def __init__(self, impl, forward, params, v):
        import torch._dynamo

        torch._dynamo.reset()
        torch._dynamo.config.error_on_recompile = False  # the previous cell's guard
        self.compiled = torch.compile(lambda *p: impl(forward, p, v), fullgraph=True, dynamic=False)
        self.params = params

    def __call__(self):
        return self.compiled(*self.params)


def forbid_recompiles() -> None:
    """From now on a recompile raises: the op timed must be the one compiled in set-up."""
    import torch._dynamo

    torch._dynamo.config.error_on_recompile = True


# API -> how an implementation and its arguments become the op (default: call it each time).
BINDERS = {"compile": CompiledOp}


def bind(api: str, task: str, forward, params, v) -> Callable[[], object]:
    """The op of one (task, API) on fixed arguments: a call of it is exactly the timed work."""
    impl = IMPLEMENTATIONS[api][task]
    binder = BINDERS.get(api)
    return binder(impl, forward, params, v) if binder else functools.partial(impl, forward, params, v)


def task_label(task: str, api: str) -> str:
    """The task column of the original report: 'functorch <task>' for torch.func, 'compiled
    <task>' for torch.compile."""
    return TASK_LABEL_PREFIX[api] + task


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
