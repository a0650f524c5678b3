"""Holding and showing: asv's results files read (one rule for what a result is), their rows, measurements,
the original report and speedup table, environment facts, side files, the self-contained dashboard."""
