"""asv glue for funcbench: thin classes generated from funcbench.registry, every policy in
funcbench.suite. Each timed method is one line.

Benchmark names say what is measured and never how: ``benchmarks.<model>.time_op`` (one class
per model, its tier's sample counts as attributes), ``benchmarks.Memory.peakmem_op``,
``benchmarks.CostRatio.track_cost_ratio``, ``benchmarks.CudaMemory.track_cuda_peak_memory``.
Parameters: model, task, api, preset, device. The environment (asv.conf.json's ``env_nobuild``
matrix, or the shell for ``-E existing``) picks which preset and device a run measures:
FUNCBENCH_PRESET (small, full; default small) and FUNCBENCH_DEVICE (cpu, cuda, cuda:N; default
cpu). An unknown value, or CUDA where there is none, stops the import with one line.

Importing this module does no tensor work and never touches CUDA: asv imports it in the
forkserver parent, and CUDA (or a used OpenMP pool) does not survive ``fork``.
"""
from funcbench import instructions, registry, suite

try:
    suite.prepare_parent_process()
except suite.SuiteError as error:  # stop asv's discovery with this line, not a traceback
    raise SystemExit(str(error)) from None


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


class Memory:
    """Host max RSS of a process after one call of the op (model build included: RSS only grows)."""
    params = suite.params_for(list(registry.MODELS))
    param_names = suite.PARAM_NAMES
    version = suite.VERSION
    rounds = 1  # one value per process: a second round would only overwrite it
    timeout = suite.LONGEST_TIMEOUT

    def setup(self, *params):
        self.call = suite.prepared(*params).call

    def peakmem_op(self, *params):
        self.call()


class CostRatio:
    """Op time / no-grad forward time (unit "ratio"), medians measured in one process."""
    params = suite.params_for(list(registry.MODELS))
    param_names = suite.PARAM_NAMES
    version = suite.VERSION
    rounds = 1
    timeout = suite.LONGEST_TIMEOUT

    def setup(self, *params):
        self.prepared = suite.prepared(*params)

    def track_cost_ratio(self, *params):
        return suite.cost_ratio(self.prepared)

    track_cost_ratio.unit = "ratio"


class CudaMemory:
    """torch.cuda.max_memory_allocated over one call; n/a on a CPU device (before any build)."""
    params = suite.params_for(list(registry.MODELS))
    param_names = suite.PARAM_NAMES
    version = suite.VERSION
    rounds = 1
    timeout = suite.LONGEST_TIMEOUT

    def setup(self, model, task, api, preset, device):
        if device != "cuda":
            raise NotImplementedError("CUDA peak memory is measured on CUDA devices only")
        self.prepared = suite.prepared(model, task, api, preset, device)

    def track_cuda_peak_memory(self, *params):
        return suite.cuda_peak_memory(self.prepared)

    track_cuda_peak_memory.unit = "bytes"


class Instructions:
    """Instructions per call of the op under callgrind (the median of the counted calls), for
    the cells FUNCBENCH_INSTRUCTIONS names (default: the light tier). setup_cache counts them all
    in one valgrind process, once per environment; n/a with the reason where valgrind is
    missing, on CUDA devices and for cells not selected."""
    params = suite.params_for(list(registry.MODELS))
    param_names = suite.PARAM_NAMES
    version = suite.VERSION
    rounds = 1  # counts are deterministic: a second process would count the same
    timeout = 60  # each benchmark only looks its count up; the counting is setup_cache's

    def setup_cache(self):
        return instructions.count_for_run()

    setup_cache.timeout = 6 * 3600  # the light tier: ~3 min; every tier: hours (README)

    def setup(self, counts, *params):
        self.count = instructions.counted(counts, *params)

    def track_instructions(self, counts, *params):
        return self.count

    track_instructions.unit = "instructions"


for _model in registry.MODELS:
    globals()[_model] = type(_model, (_TimeOp,), dict(
        params=suite.params_for([_model]), **suite.asv_policy(_model),
        __doc__=f"Seconds per call of {_model}'s ops ({registry.model_spec(_model).tier} tier)."))
del _model
