"""Instruction counts: the suite's ops counted by valgrind's callgrind, a deterministic CPU metric.

Wall time on a shared 2-core VM tells a 10 % change from noise at best; the instructions an op
executes do not depend on what else the machine does, so two processes of the same build agree
to the instruction and a 1 % change shows. What counts see: Python and dispatch overhead, the
work done in kernels, extra copies. What they cannot: memory stalls, frequency, vectorisation
width, GPUs.

The pieces, apart (as in PyTorch's benchmarks/instruction_counts):

- ``protocol``: the typed contract between the two processes (``CountRequest`` in,
  ``CountResponse`` out, as JSON files in the process's folder);
- ``parent``: ``count(cells)`` writes the requests, runs
  ``valgrind --tool=callgrind ... python -m funcbench.measurement.instructions.child FOLDER`` and reads one
  callgrind dump per counted call into ``Count``s;
- ``child``: runs under valgrind and counts;
- ``asv_glue``: what the suite's ``benchmarks.Instructions`` calls (``count_for_run`` in its
  setup_cache, ``counted`` in its setup).

docs/instruction-counts.md has the protocol, its costs and its measured noise.
"""
from funcbench.measurement.instructions.asv_glue import count_for_run, counted
from funcbench.measurement.instructions.parent import (COUNTING, GLIBC_TUNABLES, INHERITED, PROCESSES, Count, CountingFailed, child_environment, count, split)

__all__ = ["COUNTING", "GLIBC_TUNABLES", "INHERITED", "PROCESSES", "Count", "CountingFailed", "child_environment",
           "count", "count_for_run", "counted", "split"]
