r"""asv glue for funcbench: thin classes generated from funcbench.catalogue.registry; the policy is
funcbench.measurement.policy, every measurement a funcbench module. Each benchmark method is one line.

Benchmark names say what is measured and never how it is sampled:

- ``benchmarks.<model>.time_op``: seconds per call of the eager APIs (autograd, func) by the wall
  clock; one class per model, its cost tier's sample counts as attributes; params model, task,
  api, preset, device. ``benchmarks.<model>.time_compiled_op``: the same for api=compile, with the
  compiled policy's sample counts (policy.COMPILED_POLICY), on models that have compiled cells.
- ``benchmarks.<model>.time_cpu_op`` and ``time_cpu_compiled_op``: their twins by the calling
  thread's CPU clock (asv's ``timer`` attribute; funcbench.measurement.timing.CPU_CLOCK), same setup, checks
  and sampling; n/a on CUDA devices. ``--bench '\.time_cpu_'`` selects exactly these.
- ``benchmarks.Memory.peakmem_op``, ``benchmarks.CostRatio.track_cost_ratio``,
  ``benchmarks.CudaMemory.track_cuda_peak_memory``, ``benchmarks.Compile.track_compile_seconds``,
  ``benchmarks.Instructions.track_instructions``: one value per parameter set; params cell
  ("model:task:api", only the cells the class measures), preset, device.

The environment (asv.conf.json's ``env_nobuild`` matrix, or the shell for ``-E existing``)
picks what a run measures (funcbench.catalogue.config): FUNCBENCH_PRESET (small, full) and
FUNCBENCH_DEVICE (cpu, cuda, cuda:N), among others. An unknown value, or CUDA where there is
none, stops the import with one line. A parameter set the run does not measure raises
registry.Unsupported in setup (asv: n/a) with registry.why_not's reason.

Importing this module does no tensor work and never touches CUDA: asv imports it in the
forkserver parent, and CUDA (or a used OpenMP pool) does not survive ``fork``.
"""
from pathlib import Path

from funcbench.measurement import cases, compilation, cost_ratio, cuda_memory, instructions, policy, process, timing
from funcbench.catalogue import metrics, registry
from funcbench.results import profiles
from funcbench.measurement.prepared import prepared
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.tasks import EAGER_APIS

try:
    RUN = process.set_up_parent_process()
except process.RunEnvironmentError as error:  # stop asv's discovery with this line, not a traceback
    raise SystemExit(str(error)) from None

# The presets asv.conf.json's matrix runs (policy.matrix_presets): the benchmarks folder sits next to it.
MATRIX_PRESETS = policy.matrix_presets(Path(__file__).resolve().parents[1] / "asv.conf.json", RUN)


class _TimeOp:
    """Seconds per call of one model's ops, by one clock per method: ``time_op`` and
    ``time_compiled_op`` the wall clock (CUDA work included: the call synchronizes),
    ``time_cpu_op`` and ``time_cpu_compiled_op`` the calling thread's CPU time (CPU devices).

    Generated once per model below: asv reads rounds, samples and timeouts from the class,
    never per parameter set, so a 0.3 ms ppl op and a 4 s DETR vhp cannot share one. number = 1:
    asv_runner calls setup before every call anyway, and single-call samples keep outliers
    visible instead of averaged in. Each method has a setup of its own (a function attribute,
    which asv runs with the params): whether its clock times this parameter set is the first
    question, before any model is built."""
    param_names = policy.PARAM_NAMES
    number = 1
    version = str(policy.POLICY_VERSION)


_sample = None  # what a timed call runs: set by the method's setup in this process (one parameter set)


def _setup_for(metric: str):
    def setup(model, task, api, preset, device):
        global _sample
        _sample = prepared(Cell(model, task, api), preset, device, RUN, metric).sample

    setup.__name__ = f"setup_{metric}"
    return setup


def _time_method(name: str, **attributes):
    def timed(self, *params):
        _sample()

    timed.__name__ = timed.__qualname__ = name
    timed.__dict__.update(setup=_setup_for(metrics.METHOD_METRICS[name]), **attributes)
    return timed


def _time_class(model: str) -> type:
    """The model's class: time_op and time_cpu_op with its tier's policy (the class's); the
    compiled twins, with their own params and policy as function attributes (which asv reads
    before the class's), where the model has compiled cells."""
    namespace = dict(params=policy.model_params(model, MATRIX_PRESETS, EAGER_APIS, RUN.run_slow_tasks),
                     **policy.tier_policy(model),
                     __doc__=f"Seconds per call of {model}'s ops ({registry.model_spec(model).tier} tier).",
                     time_op=_time_method("time_op"),
                     time_cpu_op=_time_method("time_cpu_op", timer=timing.CPU_CLOCK))
    compiled = policy.model_params(model, MATRIX_PRESETS, ["compile"], RUN.run_slow_tasks)
    if compiled[1]:
        namespace["time_compiled_op"] = _time_method("time_compiled_op", params=compiled,
                                                     **policy.COMPILED_POLICY)
        namespace["time_cpu_compiled_op"] = _time_method("time_cpu_compiled_op", params=compiled,
                                                         timer=timing.CPU_CLOCK, **policy.COMPILED_POLICY)
    return type(model, (_TimeOp,), namespace)


for _model in registry.MODELS:
    globals()[_model] = _time_class(_model)
del _model


class _PerCell:
    """One value per parameter set (asv runs track_* and peakmem_* once, whatever ``rounds``).
    The cell param lists only the cells the class measures: asv forks a process for every
    parameter set, n/a or not (~19 ms each)."""
    param_names = policy.CELL_PARAM_NAMES
    version = str(policy.POLICY_VERSION)
    timeout = policy.LONGEST_TIMEOUT
    metric = ""  # what the class's one benchmark method records (funcbench.catalogue.metrics), set below

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        (cls.metric,) = {metrics.METHOD_METRICS[name] for name in vars(cls) if name in metrics.METHOD_METRICS}

    def setup(self, cell, preset, device):
        self.prepared = prepared(Cell.parse(cell), preset, device, RUN, self.metric)


EAGER_CELLS = registry.cells(EAGER_APIS, RUN.run_slow_tasks)


class Memory(_PerCell):
    """Host max RSS of a process after one call of the op (model build included: RSS only grows).
    Eager cells: a compiled cell's process would mostly measure the compiler's footprint."""
    params = policy.cell_params(EAGER_CELLS, MATRIX_PRESETS)

    def peakmem_op(self, *params):
        self.prepared.sample()


class CostRatio(_PerCell):
    """Op time / no-grad forward time (unit "ratio"), medians measured in one process; eager cells."""
    params = policy.cell_params(EAGER_CELLS, MATRIX_PRESETS)

    def track_cost_ratio(self, *params):
        return cost_ratio.cost_ratio(self.prepared)

    track_cost_ratio.unit = "ratio"


class CudaMemory(_PerCell):
    """torch.cuda.max_memory_allocated over one call; n/a on a CPU device (before any build)."""
    params = policy.cell_params(registry.cells(run_slow_tasks=RUN.run_slow_tasks), MATRIX_PRESETS, devices=["cuda"])

    def track_cuda_peak_memory(self, *params):
        return cuda_memory.cuda_peak_memory(self.prepared)

    track_cuda_peak_memory.unit = "bytes"


class Compile(_PerCell):
    """Seconds of a compiled cell's first call from an empty inductor cache (compiling, plus one
    run of the op), in a cache folder of the run's own (funcbench/measurement/compilation.py)."""
    params = policy.cell_params(registry.cells(["compile"], RUN.run_slow_tasks), MATRIX_PRESETS)

    def setup(self, cell, preset, device):
        process.use_suite_threads()
        self.case = cases.build_case(Cell.parse(cell), device, preset, run=RUN, metric=self.metric)

    def track_compile_seconds(self, *params):
        return compilation.compile_seconds(self.case)

    track_compile_seconds.unit = "seconds"


class Instructions(_PerCell):
    """Instructions per call of the op under callgrind (the median of the counted calls), for
    the cells FUNCBENCH_INSTRUCTIONS names (default: the light tier's). setup_cache counts them
    all once per environment (funcbench.measurement.instructions); n/a with the reason where valgrind is
    missing, on CUDA devices and for cells not counted."""
    params = policy.cell_params(EAGER_CELLS, MATRIX_PRESETS)
    version = f"{policy.POLICY_VERSION}.{policy.COUNTS_VERSION}"
    timeout = 60  # each benchmark only looks its count up; the counting is setup_cache's

    def setup_cache(self):
        counts = instructions.count_for_run(RUN)
        profiles.keep(counts)  # per-function counts beside asv's results; the benchmarks need the totals only
        counts.pop("profiles")
        return counts

    setup_cache.timeout = 6 * 3600  # the light tier: ~1.5 min; every tier: hours (docs/instruction-counts.md)

    def setup(self, counts, cell, preset, device):
        self.count = instructions.counted(counts, Cell.parse(cell), preset, device, RUN)

    def track_instructions(self, counts, *params):
        return self.count

    track_instructions.unit = "instructions"
