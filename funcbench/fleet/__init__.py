"""Driving asv on one machine or many: the one adapter that builds asv command lines, CI engines, shard plans
and runs, reference costs, merging shards, two sides interleaved, and the main job's plan."""
