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

from asv_helpers import (ROOT, SMALL_BENCH, asv, env_python, load_conf, result_files,
                         shared_suite, write_conf)
from benchmarks import benchmarks as suite_module
from funcbench import registry
from funcbench.tasks import APIS


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    return shared_suite(tmp_path_factory.getbasetemp())


def _classes():
    return [getattr(suite_module, name) for name in dir(suite_module) if not name.startswith("_")
            and isinstance(getattr(suite_module, name), type) and hasattr(getattr(suite_module, name), "time_op")]


def test_every_default_cell_is_in_exactly_one_class():
    cells = []
    for cls in _classes():
        models, tasks, apis, presets, devices = cls.params
        assert presets == ["small", "full"] and devices == ["cpu", "cuda"]
        cells += [(m, t, a) for m in models for t in tasks for a in apis if t in registry.selected_tasks(m, a)]
    expected = [(m, t, a) for m in registry.MODELS for a in APIS for t in registry.selected_tasks(m, a)]
    assert sorted(cells) == sorted(expected)


def test_import_does_not_touch_cuda():
    assert not torch.cuda.is_initialized()


def test_cuda_memory_is_skipped_on_cpu(monkeypatch):
    monkeypatch.setenv("FUNCBENCH_DEVICE", "cpu")
    with pytest.raises(NotImplementedError):
        suite_module.CudaMemoryFast().setup("ppl_simple_reg", "vjp", "autograd", "small", "cpu")


def test_non_default_and_unsupported_cells_are_skipped():
    with pytest.raises(NotImplementedError):  # multiheadattn runs only the fast tasks by default
        suite_module.Fast().setup("multiheadattn", "hessian", "autograd", "small", "cpu")
    with pytest.raises(NotImplementedError):  # deepspeech has no torch.func vjp
        suite_module.Slow().setup("deepspeech", "vjp", "func", "small", "cpu")


def test_only_the_runs_preset_and_device_are_measured(monkeypatch):
    # Preset and device are params, so even `-E existing` results (no env vars recorded)
    # keep small/full and cpu/cuda apart; the environment picks which ones run.
    monkeypatch.setenv("FUNCBENCH_PRESET", "small")
    monkeypatch.setenv("FUNCBENCH_DEVICE", "cpu")
    suite_module.Fast().setup("ppl_simple_reg", "vjp", "autograd", "small", "cpu")
    for preset, device in (("full", "cpu"), ("small", "cuda"), ("full", "cuda")):
        with pytest.raises(NotImplementedError, match="FUNCBENCH_PRESET=small"):
            suite_module.Fast().setup("ppl_simple_reg", "vjp", "autograd", preset, device)


def test_injected_slowdown_is_off_by_default_and_parsed(monkeypatch):
    monkeypatch.delenv(suite_module.INJECT_SLOWDOWN_VAR, raising=False)
    assert suite_module.injected_slowdown("ppl_simple_reg", "vjp", "func") == 1.0
    monkeypatch.setenv(suite_module.INJECT_SLOWDOWN_VAR, "ppl_simple_reg:vjp:func:3")
    assert suite_module.injected_slowdown("ppl_simple_reg", "vjp", "func") == 3.0
    assert suite_module.injected_slowdown("ppl_simple_reg", "vjp", "autograd") == 1.0


def test_conf_pins_the_matrix_and_device_identity():
    conf = load_conf()
    assert conf["matrix"]["req"]["torch"] == ["2.14.1"]
    assert conf["matrix"]["env_nobuild"] == {"FUNCBENCH_DEVICE": ["cpu"], "FUNCBENCH_PRESET": ["small"]}
    assert "--no-deps" in conf["build_command"][0] and "--no-deps" in conf["install_command"][0]


def _results(path):
    data = json.loads(path.read_text())
    columns = data["result_columns"]
    return data, {name: dict(zip(columns, row)) for name, row in data["results"].items()}


def test_results_json_of_both_commits(suite):
    files = result_files(suite["work"], "cpu-box")
    assert len(files) == 2, files
    assert {json.loads(f.read_text())["commit_hash"] for f in files} == set(suite["commits"])
    for path in files:
        data, results = _results(path)
        assert "FUNCBENCH_DEVICEcpu" in data["env_name"] and "FUNCBENCH_PRESETsmall" in data["env_name"]
        assert data["params"]["machine"] == "cpu-box"
        for name in ("benchmarks.Fast.time_op", "benchmarks.Fast.peakmem_op", "benchmarks.Fast.track_cost_ratio"):
            entry = results[name]
            assert entry["params"] == [[repr(v) for v in p] for p in suite_module.Fast.params]
            measured = [v for v in entry["result"] if v is not None and not math.isnan(v)]
            # The subset: ppl_simple_reg and multiheadattn vjp, both APIs.
            assert len(measured) == 4, (name, entry["result"])
            assert all(math.isfinite(v) and v > 0 for v in measured)
            assert entry["version"]
        ratio = [v for v in results["benchmarks.Fast.track_cost_ratio"]["result"] if v is not None and not math.isnan(v)]
        assert all(0.1 < r < 1000 for r in ratio), ratio
    machine = json.loads((suite["work"] / "results" / "cpu-box" / "machine.json").read_text())
    assert machine["machine"] == "cpu-box"
    benchmarks = json.loads((suite["work"] / "results" / "benchmarks.json").read_text())
    assert benchmarks["benchmarks.Fast.track_cost_ratio"]["unit"] == "ratio"


def test_published_html(suite):
    html = suite["work"] / "html"
    assert (html / "index.html").is_file()
    index = json.loads((html / "index.json").read_text())
    assert "benchmarks.Fast.time_op" in index["benchmarks"]
    assert set(index["params"]["machine"]) == {"cpu-box", "gpu-box"}  # two boxes, one dashboard
    graphs = list((html / "graphs").rglob("benchmarks.Fast.time_op.json"))
    assert graphs, "no graph data for benchmarks.Fast.time_op"


def test_compare_two_commits(suite):
    first, second = suite["commits"]
    out = asv(suite["conf"], "compare", first, second, "--machine", "cpu-box", home=suite["home"])
    assert "benchmarks.Fast.time_op" in out or "Fast.time_op" in out, out


def test_results_of_two_boxes_merge_by_copying(suite, tmp_path):
    """The README's recipe: each box has its own results/<machine>/; copy them into one results/
    and publish. Here the second box's results come from an existing environment."""
    other = tmp_path / "other-box"
    other_conf = write_conf(tmp_path / "asv.conf.json", suite["repo"], other)
    asv(other_conf, "machine", "--yes", "--machine", "box-b", home=suite["home"])
    asv(other_conf, "run", "-E", f"existing:{env_python(suite['conf'])}", "--set-commit-hash",
        suite["commits"][1], "--machine", "box-b", "--bench", SMALL_BENCH, home=suite["home"])
    merged = tmp_path / "merged"
    merged_conf = write_conf(tmp_path / "merged.json", suite["repo"], merged)
    shutil.copytree(suite["work"] / "results", merged / "results")
    shutil.copytree(other / "results" / "box-b", merged / "results" / "box-b")
    asv(merged_conf, "publish", home=suite["home"])
    index = json.loads((merged / "html" / "index.json").read_text())
    assert {"cpu-box", "gpu-box", "box-b"} <= set(index["params"]["machine"])


def test_asv_check(suite):
    out = asv(suite["conf"], "check", "-E", f"existing:{env_python(suite['conf'])}", home=suite["home"])
    assert "Traceback" not in out, out


def test_project_conf_is_the_tested_conf():
    # The tests use the project's asv.conf.json with only paths redirected.
    assert load_conf(ROOT / "asv.conf.json")["environment_type"] == "virtualenv"
