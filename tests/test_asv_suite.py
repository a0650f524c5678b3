"""The asv suite, run by the REAL asv 0.6.6 on a temporary two-commit copy of this project.

The session's one asv virtualenv (torch included: ~65 s, ~5.5 GB) is made by the first test
that needs it (asv_helpers.shared_suite); the fast checks of the generated classes need none.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from asv_helpers import ROOT, SMALL_BENCH, asv, env_python, result_files, shared_suite, write_conf
from benchmarks import benchmarks as suite_module
from funcbench.measurement import cases, injection, policy, prepared
from funcbench.catalogue import registry
from funcbench.catalogue.config import RunSettings, load_asv_conf
from funcbench.catalogue.tasks import APIS


@pytest.fixture(scope="session")
def asv_run(tmp_path_factory):
    return shared_suite(tmp_path_factory.getbasetemp())


def _time_classes():
    return [getattr(suite_module, model) for model in registry.MODELS]


def test_one_time_class_per_model_named_after_it_with_its_tiers_policy():
    # Benchmark names carry the model, never the tier: re-tiering keeps a model's history.
    cells = []
    for model, cls in zip(registry.MODELS, _time_classes()):
        assert cls.__name__ == model and hasattr(cls, "time_op")
        models, tasks, apis, presets, devices = cls.params
        assert models == [model] and apis == ["autograd", "func"]
        assert presets == suite_module.MATRIX_PRESETS and devices == ["cpu", "cuda"]
        tier = policy.TIER_POLICIES[registry.model_spec(model).tier]
        assert {k: getattr(cls, k) for k in tier} == tier
        assert cls.version == str(policy.POLICY_VERSION)  # no tier attribute in the version
        grids = [cls.params]
        if hasattr(cls, "time_compiled_op"):  # its own params and policy, as function attributes
            method = cls.time_compiled_op
            assert method.params[2] == ["compile"] and {k: getattr(method, k) for k in policy.COMPILED_POLICY} \
                == policy.COMPILED_POLICY
            grids.append(method.params)
        for models, tasks, apis, _, _ in grids:
            cells += [(m, t, a) for m in models for t in tasks for a in apis if t in registry.selected_tasks(m, a)]
    expected = [(m, t, a) for m in registry.MODELS for a in APIS for t in registry.selected_tasks(m, a)]
    assert sorted(cells) == sorted(expected)
    all_cells = [str(c) for c in registry.cells()]
    eager = [c for c in all_cells if not c.endswith(":compile")]
    for one_value, cells in ((suite_module.Memory, eager), (suite_module.CostRatio, eager),
                             (suite_module.Instructions, eager), (suite_module.CudaMemory, all_cells),
                             (suite_module.Compile, [c for c in all_cells if c.endswith(":compile")])):
        assert one_value.params[0] == cells and one_value.param_names == ["cell", "preset", "device"]


def test_preset_param_lists_what_the_matrix_and_the_run_measure(monkeypatch, tmp_path):
    # The default matrix runs small only: no n/a full-preset parameter sets to fork for.
    assert suite_module.MATRIX_PRESETS == ["small"]
    conf = tmp_path / "asv.conf.json"
    conf.write_text('{"matrix": {"env_nobuild": {"FUNCBENCH_PRESET": ["full", "small"]}}}')
    assert policy.matrix_presets(conf) == ["small", "full"]
    monkeypatch.setenv("FUNCBENCH_PRESET", "full")  # an -E existing run asked for full in the shell
    assert policy.matrix_presets(tmp_path / "missing.json") == ["full"]


def test_timed_methods_are_one_line():
    import inspect
    model = suite_module.ppl_simple_reg
    for method in (model.time_op, model.time_cpu_op, model.time_compiled_op, model.time_cpu_compiled_op,
                   suite_module.Memory.peakmem_op, suite_module.CostRatio.track_cost_ratio,
                   suite_module.CudaMemory.track_cuda_peak_memory):
        body = [line for line in inspect.getsource(method).splitlines()[1:] if line.strip()]
        assert len(body) == 1, body


def test_each_clock_is_its_own_method_with_its_own_setup_and_timer():
    """The CPU twins time with the calling thread's CPU clock, the others with asv's default (wall);
    each method's setup (a function attribute asv runs with the params) asks its own clock first."""
    from funcbench.measurement import timing
    for model in registry.MODELS:
        cls = getattr(suite_module, model)
        for wall, cpu in (("time_op", "time_cpu_op"), ("time_compiled_op", "time_cpu_compiled_op")):
            if not hasattr(cls, wall):
                continue
            assert getattr(getattr(cls, cpu), "timer") is timing.CPU_CLOCK and not hasattr(getattr(cls, wall), "timer")
            assert getattr(getattr(cls, wall), "params", cls.params) == getattr(getattr(cls, cpu), "params", cls.params)
            assert getattr(cls, wall).setup.__name__ == "setup_time" and getattr(cls, cpu).setup.__name__ == "setup_cpu"
    assert not hasattr(suite_module._TimeOp, "setup")  # no class setup: it would build models for n/a clocks


def _setup(method, *params):
    method.setup(*params)  # how asv_runner calls a function attribute setup: with the params only


def test_import_does_not_touch_cuda():
    assert not torch.cuda.is_initialized()


def test_cuda_memory_is_skipped_on_cpu(monkeypatch):
    monkeypatch.setenv("FUNCBENCH_DEVICE", "cpu")
    with pytest.raises(NotImplementedError):
        suite_module.CudaMemory().setup("ppl_simple_reg:vjp:autograd", "small", "cuda")  # its only device param


def test_non_default_and_unsupported_cells_are_skipped_with_their_reason():
    with pytest.raises(NotImplementedError, match="not a default task"):
        _setup(suite_module.multiheadattn.time_cpu_op, "multiheadattn", "hessian", "autograd", "small", "cpu")
    with pytest.raises(NotImplementedError, match="Cannot access data pointer"):
        _setup(suite_module.deepspeech.time_cpu_op, "deepspeech", "vjp", "func", "small", "cpu")


def test_only_the_runs_preset_and_device_are_measured(monkeypatch):
    # Preset and device are params, so even `-E existing` results (no env vars recorded)
    # keep small/full and cpu/cuda apart; the environment (read once, at import) picks which ones run.
    monkeypatch.setattr(suite_module, "RUN", RunSettings.from_environ({"FUNCBENCH_PRESET": "small",
                                                                        "FUNCBENCH_DEVICE": "cpu"}))
    method = suite_module.ppl_simple_reg.time_cpu_op
    _setup(method, "ppl_simple_reg", "vjp", "autograd", "small", "cpu")
    for preset, device in (("full", "cpu"), ("small", "cuda"), ("full", "cuda")):
        with pytest.raises(NotImplementedError, match="FUNCBENCH_PRESET=small"):
            _setup(method, "ppl_simple_reg", "vjp", "autograd", preset, device)


def test_a_clock_the_run_does_not_time_with_is_na_before_any_build(monkeypatch):
    built = []
    monkeypatch.setattr(cases, "build", lambda *args: built.append(args))
    for clocks, method in (("cpu", "time_op"), ("wall", "time_cpu_op")):
        monkeypatch.setattr(suite_module, "RUN", RunSettings.from_environ({"FUNCBENCH_CLOCKS": clocks}))
        with pytest.raises(NotImplementedError, match=f"this run times with FUNCBENCH_CLOCKS={clocks}"):
            _setup(getattr(suite_module.ppl_robust_reg, method), "ppl_robust_reg", "jvp", "func", "small", "cpu")
    assert built == []


def test_injected_slowdown_is_off_by_default_and_parsed(monkeypatch):
    cell = registry.Cell("ppl_simple_reg", "vjp", "func")
    monkeypatch.delenv("FUNCBENCH_INJECT_SLOWDOWN", raising=False)
    assert injection.injected_factor(cell) == 1.0
    monkeypatch.setenv("FUNCBENCH_INJECT_SLOWDOWN", "ppl_simple_reg:vjp:func:3")
    assert injection.injected_factor(cell) == 3.0
    assert injection.injected_factor(cell._replace(api="autograd")) == 1.0


def test_injected_work_is_real_work_of_the_asked_size(monkeypatch):
    # Work, not sleep, so that it shows in instruction counts too: spin() costs CPU time.
    import time
    start_cpu = time.process_time()
    injection.spin(2_000_000)
    assert time.process_time() - start_cpu > 0.005
    assert injection.spin_iterations(1.5, op_cost=2.0, iteration_cost=0.01) == 100
    assert injection.spin_iterations(1.0, op_cost=2.0, iteration_cost=0.01) == 0
    monkeypatch.setenv("FUNCBENCH_INJECT_SLOWDOWN", "ppl_simple_reg:vjp:autograd:2")
    prepared.forget()
    try:
        ready = prepared.prepared(registry.Cell("ppl_simple_reg", "vjp", "autograd"), "small", "cpu", RunSettings(), "cpu")
        assert ready.extra_iterations > 0 and ready.sample is not ready.op
    finally:
        prepared.forget()


def test_conf_pins_the_matrix_and_device_identity():
    conf = load_asv_conf()
    assert conf["matrix"]["req"]["torch"] == ["2.14.1"]
    assert conf["matrix"]["env_nobuild"] == {"FUNCBENCH_DEVICE": ["cpu"], "FUNCBENCH_PRESET": ["small"]}
    assert "--no-deps" in conf["build_command"][0] and "--no-deps" in conf["install_command"][0]


def _results(path):
    data = json.loads(path.read_text())
    columns = data["result_columns"]
    return data, {name: dict(zip(columns, row)) for name, row in data["results"].items()}


@pytest.mark.slow
@pytest.mark.asv
def test_results_json_of_both_commits(asv_run):
    files = result_files(asv_run["work"], "cpu-box")
    assert len(files) == 2, files
    assert {json.loads(f.read_text())["commit_hash"] for f in files} == set(asv_run["commits"])
    for path in files:
        data, results = _results(path)
        assert "FUNCBENCH_DEVICEcpu" in data["env_name"] and "FUNCBENCH_PRESETsmall" in data["env_name"]
        assert data["params"]["machine"] == "cpu-box"
        # The subset: ppl_simple_reg and multiheadattn vjp, both APIs, both clocks.
        for name, cls, count in (("benchmarks.ppl_simple_reg.time_op", suite_module.ppl_simple_reg, 2),
                                 ("benchmarks.multiheadattn.time_op", suite_module.multiheadattn, 2),
                                 ("benchmarks.ppl_simple_reg.time_cpu_op", suite_module.ppl_simple_reg, 2),
                                 ("benchmarks.multiheadattn.time_cpu_op", suite_module.multiheadattn, 2),
                                 ("benchmarks.Memory.peakmem_op", suite_module.Memory, 4),
                                 ("benchmarks.CostRatio.track_cost_ratio", suite_module.CostRatio, 4)):
            entry = results[name]
            assert entry["params"] == [[repr(v) for v in p] for p in cls.params]
            measured = [v for v in entry["result"] if v is not None and not math.isnan(v)]
            assert len(measured) == count, (name, entry["result"])
            assert all(math.isfinite(v) and v > 0 for v in measured)
            assert entry["version"] == str(policy.POLICY_VERSION)
        ratio = [v for v in results["benchmarks.CostRatio.track_cost_ratio"]["result"]
                 if v is not None and not math.isnan(v)]
        assert all(0.1 < r < 1000 for r in ratio), ratio
    machine = json.loads((asv_run["work"] / "results" / "cpu-box" / "machine.json").read_text())
    assert machine["machine"] == "cpu-box"
    benchmarks = json.loads((asv_run["work"] / "results" / "benchmarks.json").read_text())
    assert benchmarks["benchmarks.CostRatio.track_cost_ratio"]["unit"] == "ratio"


@pytest.mark.slow
@pytest.mark.asv
def test_published_html(asv_run):
    html = asv_run["work"] / "html"
    assert (html / "index.html").is_file()
    index = json.loads((html / "index.json").read_text())
    assert "benchmarks.ppl_simple_reg.time_op" in index["benchmarks"]
    assert set(index["params"]["machine"]) == {"cpu-box", "gpu-box"}  # two boxes, one dashboard
    graphs = list((html / "graphs").rglob("benchmarks.ppl_simple_reg.time_op.json"))
    assert graphs, "no graph data for benchmarks.ppl_simple_reg.time_op"


@pytest.mark.slow
@pytest.mark.asv
def test_compare_two_commits(asv_run):
    first, second = asv_run["commits"]
    out = asv(asv_run["conf"], "compare", first, second, "--machine", "cpu-box", home=asv_run["home"])
    assert "ppl_simple_reg.time_op" in out, out


@pytest.mark.slow
@pytest.mark.asv
def test_results_of_two_boxes_merge_by_copying(asv_run, tmp_path):
    """The recipe of docs/asv-suite.md: each box has its own results/<machine>/; copy them into one results/
    and publish. Here the second box's results come from an existing environment."""
    other = tmp_path / "other-box"
    other_conf = write_conf(tmp_path / "asv.conf.json", asv_run["repo"], other)
    asv(other_conf, "machine", "--yes", "--machine", "box-b", home=asv_run["home"])
    asv(other_conf, "run", "-E", f"existing:{env_python(asv_run['conf'])}", "--set-commit-hash",
        asv_run["commits"][1], "--machine", "box-b", "--bench", SMALL_BENCH, home=asv_run["home"])
    merged = tmp_path / "merged"
    merged_conf = write_conf(tmp_path / "merged.json", asv_run["repo"], merged)
    shutil.copytree(asv_run["work"] / "results", merged / "results")
    shutil.copytree(other / "results" / "box-b", merged / "results" / "box-b")
    asv(merged_conf, "publish", home=asv_run["home"])
    index = json.loads((merged / "html" / "index.json").read_text())
    assert {"cpu-box", "gpu-box", "box-b"} <= set(index["params"]["machine"])


@pytest.mark.slow
@pytest.mark.asv
def test_asv_check(asv_run):
    out = asv(asv_run["conf"], "check", "-E", f"existing:{env_python(asv_run['conf'])}", home=asv_run["home"])
    assert "Traceback" not in out, out


def test_project_conf_is_the_tested_conf():
    # The tests use the project's asv.conf.json with only paths redirected.
    assert load_asv_conf(ROOT / "asv.conf.json")["environment_type"] == "virtualenv"


@pytest.mark.parametrize("variable, value, words", [
    ("FUNCBENCH_PRESET", "huge", "funcbench: FUNCBENCH_PRESET='huge' is not valid; use small or full"),
    ("FUNCBENCH_DEVICE", "bogus", "funcbench: FUNCBENCH_DEVICE='bogus' is not valid; use cpu, cuda or cuda:N"),
    pytest.param("FUNCBENCH_DEVICE", "cuda", "funcbench: FUNCBENCH_DEVICE=cuda asked for, but this machine has no "
                 "CUDA device", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
])
@pytest.mark.slow
@pytest.mark.asv
def test_a_run_that_would_measure_nothing_fails_at_discovery(asv_run, variable, value, words):
    """Every cell n/a would be an empty, green run: asv's discovery stops with one line instead."""
    with pytest.raises(AssertionError) as failed:
        asv(asv_run["conf"], "run", "-E", f"existing:{env_python(asv_run['conf'])}", "--set-commit-hash",
            asv_run["commits"][1], "--machine", "cpu-box", "--bench", SMALL_BENCH, home=asv_run["home"],
            env={variable: value})
    output = str(failed.value)
    assert "asv run exited 1" in output.splitlines()[0]
    assert words in [line.strip() for line in output.splitlines()] and "Traceback" not in output


@pytest.mark.slow
@pytest.mark.asv
def test_report_and_compare_by_either_clock(asv_run, capsys):
    """The same results by the wall clock (time_op) and the CPU clock (time_cpu_op): one table each,
    the heading says which; no --metric takes the wall clock where it was timed."""
    from funcbench import commands
    results = str(asv_run["work"] / "results")
    for argv, clock in ((["--metric", "cpu"], "by the calling thread's CPU clock"), ([], "by the wall clock")):
        assert commands.main(["report", "--results-dir", results, "--machine", "cpu-box", *argv]) == 0
        out = capsys.readouterr().out
        assert clock in out.splitlines()[0]
        assert "| ppl_simple_reg[small] | functorch vjp |" in out and "| multiheadattn[small] | vjp |" in out
    first, second = asv_run["commits"]
    assert commands.main(["compare", "--results-dir", results, "--metric", "cpu", "--before", f"asv:{first[:8]}@cpu-box",
                     "--after", f"asv:{second[:8]}@cpu-box"]) == 0
    err = capsys.readouterr().err
    assert "funcbench compare (cpu): 4 rows on both sides" in err
    assert "the sides differ in nothing recorded" in err  # one environment, two commits
