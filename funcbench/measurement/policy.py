"""The asv suite's policy: benchmark versions, sample counts per tier, and the params of every
benchmark class (benchmarks/benchmarks.py reads them; nothing else decides them).

Naming: a *cell* is a (model, task, API); a benchmark's parameter set is a cell plus the preset
and device it is measured at; a *tier* is a model's cost class (``registry.ModelSpec.tier``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from funcbench.catalogue import config, metrics, registry
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.tasks import APIS, TASKS

# Part of every benchmark's asv version: a change starts new series instead of mixing with old
# ones. Bump it when what a sample means changes, never for sample counts (asv's own version
# would hash only the benchmark's code).
# 4: preset and device params; 5: steady allocator, one thread, tier rounds; 6: one class per
# model (tiers no longer in benchmark names), peak memory and cost ratio in one-round classes.
POLICY_VERSION = 6
# Instruction counts' own part of their version: 2 counts each cell in a process forked from a
# warmed-up worker (1: cells shared a process, which moved a count by up to 4.8 % with its company);
# 3 settles the heap with instrumentation off (cheaper; moved light counts by up to 0.4 %);
# 4 runs kernels without fused multiply-add (instructions.parent.NO_FMA; counts moved up to 2.2x).
COUNTS_VERSION = 4

# asv's timing attributes per cost tier. asv reads them from the class, so each model has its
# class (benchmarks.<model>). More, shorter rounds beat more samples per process: the VM's
# speed drifts by 10-20 % over tens of seconds and every sample of a process shares its speed.
# At least 8 samples a side in every tier, below which asv compare's Mann-Whitney test cannot
# reach p < 0.002. Medium / heavy: warmup_time 0 (setup's checked call already warmed up).
TIER_POLICIES: Dict[str, dict] = {
    "light": dict(repeat=(10, 40, 0.3), rounds=6, warmup_time=0.05, timeout=300),
    # With 5 samples per round and 2 rounds a 0.46 s op got 10 per side and asv compare never
    # flagged even a 1.5x injected slowdown (docs/measurements.md).
    "medium": dict(repeat=(4, 12, 3.0), rounds=3, warmup_time=0.0, timeout=900),
    "heavy": dict(repeat=(4, 6, 6.0), rounds=2, warmup_time=0.0, timeout=1800),
}
assert set(TIER_POLICIES) == set(config.TIERS)
# Compiled ops, whatever the model's tier: each round is a process that compiles again (from
# the run's warm cache still 2-8 s: dynamo traces the torch.func transform anew), so two
# rounds of more samples. Two rounds let one slow process weigh half (policy v4's lesson),
# the price of keeping a compiled cell at ~10-20 s of a run instead of ~50.
COMPILED_POLICY = dict(repeat=(10, 40, 0.5), rounds=2, warmup_time=0.05, timeout=900)
# Classes measured once per process whatever the model (peak memory, cost ratio, counts).
LONGEST_TIMEOUT = max(policy["timeout"] for policy in TIER_POLICIES.values())

PARAM_NAMES = ["model", "task", "api", "preset", "device"]
CELL_PARAM_NAMES = ["cell", "preset", "device"]
DEVICE_KINDS = ("cpu", "cuda")  # the device param: FUNCBENCH_DEVICE without its index


def tasks_param(models: Sequence[str], apis: Sequence[str] = APIS, run_slow_tasks: bool = False) -> List[str]:
    """Tasks some model of ``models`` runs in some API of ``apis``, in the registry's order."""
    wanted = {c.task for c in registry.cells(apis, run_slow_tasks, models)}
    return [t for t in TASKS if t in wanted]


def matrix_presets(conf_path: Optional[Path] = None, run: Optional[config.RunSettings] = None) -> List[str]:
    """The preset param: every preset asv.conf.json's matrix gives the run, and this process's.

    Preset and device are params, not only environment variables, because asv records no
    environment variables for `-E existing` runs: the params keep small/full and cpu/cuda apart
    in every result. asv discovers the suite once for all environments of a run, in the first
    one, so the values come from the matrix (which every environment of the run shares), not
    from one environment alone. Listing both presets when the matrix runs one would double the
    parameter sets asv forks a process for, half of them n/a. The device param lists both kinds
    whatever the matrix says: a dashboard published from a CPU box must keep a GPU box's results
    (asv publish drops values its own params lack)."""
    run = run or config.RunSettings.from_environ()
    try:
        matrix = config.load_asv_conf(conf_path or config.ROOT / "asv.conf.json").get("matrix", {})
    except (OSError, ValueError):
        matrix = {}
    listed = {run.preset}
    for group in ("env", "env_nobuild"):
        values = (matrix.get(group) or {}).get(config.PRESET.name, [])
        listed.update(str(v) for v in (values if isinstance(values, list) else [values]))
    return [p for p in config.PRESETS if p in listed]


def model_params(model: str, presets: Sequence[str], apis: Sequence[str] = APIS,
                 run_slow_tasks: bool = False) -> list:
    """Params of a model's time benchmark: model, task, api, preset, device."""
    return [[model], tasks_param([model], apis, run_slow_tasks), list(apis), list(presets), list(DEVICE_KINDS)]


def cell_params(cells: Sequence[Cell], presets: Sequence[str], devices: Sequence[str] = DEVICE_KINDS) -> list:
    """Params of a one-value-per-cell class: cell ("model:task:api"), preset, device."""
    return [[str(c) for c in cells], list(presets), list(devices)]


def tier_policy(model: str) -> dict:
    """asv's timing attributes for a model's class: its tier's."""
    return dict(TIER_POLICIES[registry.model_spec(model).tier])


def selection_regex(run: config.RunSettings) -> str:
    """An asv --bench regex that leaves out the parameter sets this run's settings make n/a by
    their params alone: another device kind, and the time methods of a clock the run does not
    use. asv starts a process for every selected parameter set in every round, n/a or not (about
    50 ms each; some 1,800 of them in the default suite), and stores an unselected one as NaN,
    as it does a skipped one: the results are the same, sooner."""
    others = [kind for kind in DEVICE_KINDS if kind != run.device_kind]
    idle = sorted(method for m in metrics.VOCABULARY if m.clock and m.clock not in run.clocks for method in m.methods)
    device = f"(?!.*'({'|'.join(others)})'\\)$)" if others else ""
    methods = f"(?!benchmarks\\.\\w+\\.({'|'.join(idle)})\\()" if idle else ""
    return f"^{methods}{device}"
