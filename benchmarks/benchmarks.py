"""asv glue for funcbench: thin classes generated from funcbench.registry, every policy in
funcbench.suite and every measurement in a funcbench module. Each benchmark method is one line.

Benchmark names say what is measured and never how it is sampled:

- ``benchmarks.<model>.time_op``: seconds per call of the eager APIs (autograd, func); one
  class per model, its cost tier's sample counts as attributes; params model, task, api, preset,
  device. ``benchmarks.<model>.time_compiled_op``: the same for api=compile, with the compiled
  policy's sample counts (suite.COMPILED_POLICY), on models that have compiled cells.
- ``benchmarks.Memory.peakmem_op``, ``benchmarks.CostRatio.track_cost_ratio``,
  ``benchmarks.CudaMemory.track_cuda_peak_memory``, ``benchmarks.Compile.track_compile_seconds``,
  ``benchmarks.Instructions.track_instructions``: one value per parameter set; params cell
  ("model:task:api", only the cells the class measures), preset, device.

The environment (asv.conf.json's ``env_nobuild`` matrix, or the shell for ``-E existing``)
picks the preset and device a run measures: FUNCBENCH_PRESET (small, full; default small) and
FUNCBENCH_DEVICE (cpu, cuda, cuda:N; default cpu). An unknown value, or CUDA where there is
none, stops the import with one line.

Importing this module does no tensor work and never touches CUDA: asv imports it in the
forkserver parent, and CUDA (or a used OpenMP pool) does not survive ``fork``.
"""
from pathlib import Path

from funcbench import instructions, registry, suite
from funcbench.tasks import EAGER_APIS

try:
    suite.prepare_parent_process()
except suite.SuiteError as error:  # stop asv's discovery with this line, not a traceback
    raise SystemExit(str(error)) from None

# The preset params list what this suite's asv.conf.json matrix can run (suite.preset_params):
# the benchmarks folder sits next to it.
PRESETS = suite.preset_params(Path(__file__).resolve().parents[1] / "asv.conf.json")


class _TimeOp:
    """Seconds per call of one model's ops (CUDA work included: the call synchronizes).

    Generated once per model below: asv reads rounds, samples and timeouts from the class,
    never per parameter set, so a 0.3 ms ppl op and a 4 s DETR vhp cannot share one. number = 1:
    asv_runner calls setup before every call anyway, and single-call samples keep outliers
    visible instead of averaged in."""
    param_names = suite.PARAM_NAMES
    number = 1
    version = suite.VERSION

    def setup(self, *params):
        self.call = suite.prepared(*params).call

    def time_op(self, *params):
        self.call()


def _time_class(model: str) -> type:
    """The model's class: time_op with its tier's policy; time_compiled_op (its own params and
    policy as function attributes, which asv reads before the class's) where it has compiled cells."""
    namespace = dict(params=suite.model_params(model, PRESETS, EAGER_APIS), **suite.asv_policy(model),
                     __doc__=f"Seconds per call of {model}'s ops ({registry.model_spec(model).tier} tier).")
    compiled = suite.model_params(model, PRESETS, ["compile"])
    if compiled[1]:
        def time_compiled_op(self, *params):
            self.call()

        time_compiled_op.__dict__.update(params=compiled, **suite.COMPILED_POLICY)
        namespace["time_compiled_op"] = time_compiled_op
    return type(model, (_TimeOp,), namespace)


for _model in registry.MODELS:
    globals()[_model] = _time_class(_model)
del _model


class _PerCell:
    """One value per parameter set (asv runs track_* and peakmem_* once, whatever ``rounds``).
    The cell param lists only the cells the class measures: asv forks a process for every
    parameter set, n/a or not (~19 ms each)."""
    param_names = suite.CELL_PARAM_NAMES
    version = suite.VERSION
    timeout = suite.LONGEST_TIMEOUT


EAGER_CELLS = suite.default_cells(apis=EAGER_APIS)


class Memory(_PerCell):
    """Host max RSS of a process after one call of the op (model build included: RSS only grows).
    Eager cells: a compiled cell's process would mostly measure the compiler's footprint."""
    params = suite.cell_params(EAGER_CELLS, PRESETS)

    def setup(self, *params):
        self.call = suite.prepared_cell(*params).call

    def peakmem_op(self, *params):
        self.call()


class CostRatio(_PerCell):
    """Op time / no-grad forward time (unit "ratio"), medians measured in one process; eager cells."""
    params = suite.cell_params(EAGER_CELLS, PRESETS)

    def setup(self, *params):
        self.prepared = suite.prepared_cell(*params)

    def track_cost_ratio(self, *params):
        return suite.cost_ratio(self.prepared)

    track_cost_ratio.unit = "ratio"


class CudaMemory(_PerCell):
    """torch.cuda.max_memory_allocated over one call; n/a on a CPU device (before any build)."""
    params = suite.cell_params(suite.default_cells(), PRESETS, devices=["cuda"])

    def setup(self, *params):
        self.prepared = suite.prepared_cell(*params)

    def track_cuda_peak_memory(self, *params):
        return suite.cuda_peak_memory(self.prepared)

    track_cuda_peak_memory.unit = "bytes"


class Compile(_PerCell):
    """Seconds of a compiled cell's first call from an empty inductor cache (compiling, plus one
    run of the op), in a cache folder of the run's own (funcbench/compilation.py)."""
    params = suite.cell_params(suite.default_cells(apis=["compile"]), PRESETS)

    def setup(self, *params):
        self.cell = suite.compiled_cell(*params)

    def track_compile_seconds(self, *params):
        return suite.compile_seconds(self.cell)

    track_compile_seconds.unit = "seconds"


class Instructions(_PerCell):
    """Instructions per call of the op under callgrind (the median of the counted calls), for
    the cells FUNCBENCH_INSTRUCTIONS names (default: the light tier's). setup_cache counts them
    all once per environment (funcbench.instructions: two valgrind processes); n/a with the
    reason where valgrind is missing, on CUDA devices and for cells not counted."""
    params = suite.cell_params(EAGER_CELLS, PRESETS)
    timeout = 60  # each benchmark only looks its count up; the counting is setup_cache's

    def setup_cache(self):
        return instructions.count_for_run()

    setup_cache.timeout = 6 * 3600  # the light tier: ~1.5 min; every tier: hours (README)

    def setup(self, counts, *params):
        self.count = instructions.counted(counts, *params)

    def track_instructions(self, counts, *params):
        return self.count

    track_instructions.unit = "instructions"
