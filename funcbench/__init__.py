"""funcbench: asv benchmarks of PyTorch's functional autograd API.

Its folders are its layers, lowest first; a module imports only from the layers below its own
(and from its own package): tests/test_layers.py checks it, docs/developing.md#module-map lists them.
"""
LAYERS = (
    ("util", "small helpers with no funcbench imports"),
    ("catalogue", "what exists: settings, models, tasks, metrics, the registry and its reasons"),
    ("measurement", "measuring one cell in one process: clocks, builds, prepared ops, counts, the asv policy"),
    ("results", "holding and showing: asv's results read and written, reports, environment facts, the dashboard"),
    ("fleet", "driving asv on one machine or many: the adapter, engines, shards, the cost table, merge, the main job"),
    ("commands", "the command line, one module per command, each owning its parser"),
    ("audit", "the suite's own measurements"),
    ("docs", "the generated tables of README.md and docs/"),
    ("__main__", "python -m funcbench"),
)
