"""What every model getter shares: the getter contract, seeding and functional calls."""
from __future__ import annotations

import functools
from typing import Callable, Dict, Sequence, Tuple

import torch
from torch import Tensor, nn

Forward = Callable[..., Tensor]
GetterReturnType = Tuple[Forward, Tuple[Tensor, ...]]

from funcbench.catalogue.config import PRESETS, choose

DEFAULT_SEED = 0


def seeded_getter(getter: Callable[..., GetterReturnType]) -> Callable[..., GetterReturnType]:
    """Run a getter under its own seed, leaving the caller's RNG state untouched.

    Getters build modules and draw inputs on the CPU and move them afterwards, so the
    same seed gives the same weights and inputs on every device and every commit. The preset
    is checked here, once per build (config.UnknownName naming the presets).
    """

    @functools.wraps(getter)
    def wrapper(device, preset: str, seed: int = DEFAULT_SEED) -> GetterReturnType:
        choose("preset", preset, PRESETS)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return getter(torch.device(device), preset)

    return wrapper


def functionalize(module: nn.Module, device: torch.device):
    """Move ``module`` to ``device`` and split it into (call, params).

    ``params`` are detached leaf copies with ``requires_grad=True``; ``call(params, *a, **kw)``
    runs the module with them through ``torch.func.functional_call`` (no attribute surgery,
    so the module is never mutated and ``forward`` stays side-effect free).
    """
    module.to(device)
    names: Sequence[str] = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())

    def call(new_params: Sequence[Tensor], *args, **kwargs):
        weights: Dict[str, Tensor] = dict(zip(names, new_params))
        return torch.func.functional_call(module, weights, args, kwargs)

    return call, params


def without_batch_stats_updates(module: nn.Module) -> nn.Module:
    """Batch norm on batch statistics with no running-stat buffers (what the original did
    with replace_all_batch_norm_modules_): forward has no side effect and torch.func can
    transform it."""
    torch.func.replace_all_batch_norm_modules_(module)
    return module
