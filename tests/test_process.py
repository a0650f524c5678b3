"""funcbench.measurement.process: glibc malloc pinned so that a large block freed
by one call is reused by the next instead of being unmapped and page-faulted in again."""
import os
import platform
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BLOCK = 40 << 20  # above glibc's largest dynamic mmap threshold (32 MiB): by default a fresh mmap each time

FAULTS_PER_ALLOCATION = textwrap.dedent(f"""
    import resource, statistics, sys, torch
    from funcbench.measurement.process import steady_allocator
    if sys.argv[1] == "steady":
        assert steady_allocator()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    counts = []
    for _ in range(25):
        before = faults()
        torch.empty({BLOCK}, dtype=torch.uint8).fill_(1)  # allocate, touch every page, free
        counts.append(faults() - before)
    # The pinned heap settles within a few blocks (posix_memalign asks for a little more than the
    # block just freed until free neighbours coalesce): judge the last 10.
    print(statistics.median(counts[-10:]))
""")


def faults_per_allocation(mode: str) -> float:
    """Median minor page faults per allocate-touch-free of one BLOCK, in a fresh process."""
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_ALLOCATION, mode], capture_output=True,
                            text=True, cwd=ROOT, check=True)
    return float(result.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="steady_allocator pins glibc's malloc only")
def test_steady_allocator_reuses_large_blocks_instead_of_faulting_them_in_again():
    pages = BLOCK / resource.getpagesize()
    assert faults_per_allocation("default") > 0.9 * pages  # every page of every block, every time
    assert faults_per_allocation("steady") < 0.01 * pages


def test_importing_the_suite_leaves_nothing_to_import_for_a_benchmark_process():
    """asv forks each benchmark process from a parent that imported the suite: the first
    autograd and torch.func calls of a cell must find every module already imported."""
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, "benchmarks")
        import benchmarks
        from funcbench.measurement.prepared import prepared
        from funcbench.catalogue.registry import Cell
        before = set(sys.modules)
        for cell in [Cell("ppl_simple_reg", "hessian", "func"), Cell("multiheadattn", "vhp", "autograd"),
                     Cell("resnet18", "vjp", "func")]:
            prepared(cell, "small", "cpu", benchmarks.RUN, "cpu").sample()  # the default clock of a CPU run
        print(sorted(m for m in set(sys.modules) - before if not m.startswith("funcbench")))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, FUNCBENCH_DEVICE="cpu", FUNCBENCH_PRESET="small"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[]"
