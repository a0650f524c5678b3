"""Measuring one cell in one process: clocks, a benchmark process's state, the built case, the prepared op,
injected test work, compile seconds, cost ratio, CUDA memory, instruction counts, and the asv timing policy."""
