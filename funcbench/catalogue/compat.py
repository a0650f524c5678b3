"""What differs between the torch releases funcbench measures (2.0 to the newest), bridged in one
place so that every release runs the same math: each helper takes the newest spelling where the
release has it and the older one where it does not.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch


def math_attention() -> ContextManager:
    """Scaled dot-product attention restricted to its math backend, which has every derivative
    (the fused CPU and CUDA kernels have no double backward). torch.nn.attention.sdpa_kernel
    exists from 2.3; before it, torch.backends.cuda.sdp_kernel sets the same global flags, which
    the CPU's choice reads too."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)
    return sdpa_kernel(SDPBackend.MATH)


@contextlib.contextmanager
def functorch_disabled():
    """torch.func's transforms switched off for plain-tensor work (DETR's matcher). From 2.1
    ``torch._C._DisableFuncTorch`` is a context manager; in 2.0 it is a guard that holds while
    the object lives."""
    guard = torch._C._DisableFuncTorch
    if hasattr(guard, "__enter__"):
        with guard():
            yield
        return
    held = guard()
    try:
        yield
    finally:
        del held


def dynamo_unsupported_reason() -> Optional[str]:
    """Why dynamo (torch.compile) cannot run with this Python and torch, or None. Releases before
    2.1 have no ``is_dynamo_supported`` and raise from their check instead (Python 3.11: "not yet
    supported")."""
    import torch._dynamo

    supported = getattr(torch._dynamo, "is_dynamo_supported", None)
    if supported is not None:
        return None if supported() else "torch.compile does not support this Python"
    try:
        torch._dynamo.eval_frame.check_if_dynamo_supported()
    except Exception as error:  # each release words it its own way
        text = str(error).strip().splitlines()
        return f"torch {torch.__version__}: {text[0] if text else type(error).__name__}"
    return None
