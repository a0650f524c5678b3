"""CUDA peak memory: torch.cuda.max_memory_allocated over one call of an op (host peak memory is
asv's own peakmem_* benchmark)."""
from __future__ import annotations

import torch

from funcbench.measurement.prepared import Prepared


def cuda_peak_memory(prepared: Prepared) -> int:
    """Bytes the CUDA allocator held at most during one call of the op."""
    device = prepared.case.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    prepared.op()
    return torch.cuda.max_memory_allocated(device)
