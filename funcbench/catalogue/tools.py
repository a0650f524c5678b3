"""What this machine has that some cells need: a C++ compiler (torch.compile on the CPU), triton
(on CUDA), valgrind (instruction counts), CUDA devices. Each answer is a reason a cell cannot
run here, or None; ``registry.why_not`` asks them, nothing else does.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from typing import Optional


@functools.lru_cache(maxsize=None)
def compile_unavailable_reason(device: str = "cpu") -> Optional[str]:
    """Why torch.compile cannot run here (no C++ compiler for inductor on the CPU, no triton on
    CUDA, a Python dynamo does not support), or None."""
    from funcbench.catalogue import compat

    unsupported = compat.dynamo_unsupported_reason()
    if unsupported:
        return unsupported
    if device.startswith("cuda"):
        from torch.utils._triton import has_triton
        return None if has_triton() else "torch.compile on CUDA needs triton, which does not import here"
    compilers = [os.environ.get("CXX", "")] + ["g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return "torch.compile's inductor needs a C++ compiler (g++ or clang++; Debian: apt-get install g++)"
    return None


def valgrind_unavailable_reason(device: str = "cpu") -> Optional[str]:
    """Why instructions cannot be counted here, or None."""
    if not device.startswith("cpu"):
        return f"instruction counts are a CPU metric (FUNCBENCH_DEVICE={device})"
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian: apt-get install valgrind)"
    import torch
    if not torch._C._valgrind_supported_platform():
        return "this torch build or platform does not support callgrind's client requests"
    return None


def cuda_device_count_in_child() -> int:
    """torch.cuda.device_count() read in a child process: asv forks every benchmark process
    from the one that imports the suite, and a CUDA context does not survive fork."""
    code = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return int(result.stdout.split()[-1]) if result.returncode == 0 and result.stdout.split() else 0
