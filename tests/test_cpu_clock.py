"""The CPU clock: what it counts (work on the calling thread), what it does not (sleeping, other
threads, the GPU), and how a run picks its clocks. No timing goals here: those are the audit's
(docs/cpu-time.md)."""
import re
import threading
import time

import pytest

from benchmarks import benchmarks as suite_module
from funcbench.catalogue import config, registry
from funcbench.measurement import injection, prepared, timing
from funcbench.catalogue.config import RunSettings
from funcbench.catalogue.registry import Cell

CELL = Cell("ppl_simple_reg", "vjp", "autograd")


def test_work_on_the_calling_thread_is_counted_and_sleep_is_not():
    start = timing.CPU_CLOCK()
    injection.spin(3_000_000)
    worked = timing.CPU_CLOCK() - start
    start_cpu, start_wall = timing.CPU_CLOCK(), time.perf_counter()
    time.sleep(0.2)
    slept_cpu, slept_wall = timing.CPU_CLOCK() - start_cpu, time.perf_counter() - start_wall
    assert worked > 0.01  # an interpreter loop of 3 M iterations: tens of ms of CPU
    assert slept_wall >= 0.2 and slept_cpu < 0.02  # waiting is not CPU time


def test_work_on_another_thread_is_unseen_and_such_an_op_is_refused(monkeypatch):
    def op_on_another_thread():
        worker = threading.Thread(target=injection.spin, args=(1_000_000,))
        worker.start()
        worker.join()

    assert timing.unseen_share(lambda: injection.spin(200_000)) < timing.UNSEEN_LIMIT
    assert timing.unseen_share(op_on_another_thread) > 0.5
    prepared.forget()
    monkeypatch.setattr(timing, "unseen_between", lambda before, after: 0.4)  # as op_on_another_thread measures
    with pytest.raises(NotImplementedError, match="40% of the op's CPU time is spent outside the calling thread"):
        prepared.prepared(CELL, "small", "cpu", RunSettings(), "cpu")
    prepared.prepared(CELL, "small", "cpu", RunSettings(clock_setting="wall,cpu"), "time")  # the wall clock sees it


def test_on_cuda_devices_the_cpu_clock_is_na_with_the_reason():
    reason = registry.why_not(CELL, "small", "cuda", "cpu")
    assert reason == registry.GPU_NOT_CPU and "GPU work is not CPU time" in reason
    cuda_run = RunSettings(device="cuda")
    assert cuda_run.clocks == ("wall",)  # CUDA's default clock
    assert registry.why_not(CELL, "small", "cuda", "cpu", RunSettings(device="cuda", clock_setting="wall,cpu")) \
        == registry.GPU_NOT_CPU  # asked for or not
    assert registry.why_not(CELL, "small", "cuda", "time", cuda_run) is None  # the wall clock times CUDA cells


def test_clock_settings_default_per_device_and_bad_values_are_one_line():
    assert RunSettings().clocks == ("cpu",)
    assert RunSettings.from_environ({"FUNCBENCH_CLOCKS": "wall,cpu"}).clocks == ("wall", "cpu")
    with pytest.raises(config.SettingError) as error:
        RunSettings.from_environ({"FUNCBENCH_CLOCKS": "cycles"})
    assert str(error.value).count("\n") == 0 and "use wall, cpu or wall,cpu" in str(error.value)


def _asv_names():
    """Every benchmark parameter set's name, as asv matches --bench against it."""
    import itertools
    for model in registry.MODELS:
        cls = getattr(suite_module, model)
        for method in ("time_op", "time_cpu_op", "time_compiled_op", "time_cpu_compiled_op"):
            if hasattr(cls, method):
                params = getattr(getattr(cls, method), "params", cls.params)
                for combo in itertools.product(*params):
                    yield method, f"benchmarks.{model}.{method}({', '.join(map(repr, combo))})"


def test_one_short_regex_selects_the_cpu_series_and_nothing_else():
    names = list(_asv_names())
    picked = {method for method, name in names if re.search(r"\.time_cpu_", name)}
    assert picked == {"time_cpu_op", "time_cpu_compiled_op"}
    assert all(re.search(r"\.time_cpu_", name) for method, name in names if method.startswith("time_cpu_"))
    # 'cpu' alone would also match every wall-clock parameter set with device='cpu'
    assert any(re.search("cpu", name) for method, name in names if not method.startswith("time_cpu_"))
