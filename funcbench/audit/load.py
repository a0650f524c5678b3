"""Load for the audit: N neighbour processes that each keep a core busy, as a CI runner's other
jobs or a laptop's browser do, while one side (or both) is measured."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

# A pure interpreter loop: one core's worth of work that touches little memory, the mildest
# neighbour for caches and the harshest for the scheduler.
SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def neighbours(count: int) -> Iterator[list]:
    """``count`` busy processes for the duration of the block (none for 0), killed after it."""
    spinning = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield spinning
    finally:
        for process in spinning:
            process.kill()
        for process in spinning:
            process.wait()
