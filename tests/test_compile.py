"""api=compile: torch.compile of the torch.func implementation, checked against eager torch.func,
never timed while it recompiles or after a graph break, and its compile time measured cold."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torch._dynamo

import asv_helpers
from funcbench.measurement import cases, prepared
from funcbench import commands
from funcbench.catalogue import registry, tasks, tools
from funcbench.catalogue.config import RunSettings
from funcbench.catalogue.registry import Cell

CELL = Cell("ppl_simple_reg", "vjp", "compile")
needs_compile = pytest.mark.skipif(tools.compile_unavailable_reason() is not None,
                                   reason=str(tools.compile_unavailable_reason()))


@needs_compile
@pytest.mark.slow
@pytest.mark.compile
def test_compiled_cell_matches_eager_func_and_refuses_to_recompile():
    case = cases.build_case(CELL)
    result = case.call_checked()  # compiles, checks against torch.func, forbids recompiles
    expected = cases.build_case(Cell("ppl_simple_reg", "vjp", "func")).call()
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=5e-3)
    case.call()  # the steady state: no recompile
    case.bound.params = tuple(p.double() for p in case.params)  # other dtypes: dynamo's guards fail
    with pytest.raises(torch._dynamo.exc.RecompileError):
        case.call()


@needs_compile
@pytest.mark.slow
@pytest.mark.compile
def test_a_graph_break_is_an_error_never_a_quietly_eager_op():
    forward, params = cases.build("ppl_simple_reg", "cpu", "small", 0)

    def forward_with_break(beta):
        loss = forward(beta)
        if loss.item() > 0:  # data-dependent Python control flow: dynamo must break the graph here
            return loss * 2
        return loss

    op = tasks.CompiledOp(tasks.FUNC_TASKS["vjp"], forward_with_break, params, torch.ones(()))
    with pytest.raises((torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError)):
        op()


@needs_compile
def test_cli_reports_a_failing_compiled_cell_and_runs_the_rest(monkeypatch, capsys):
    def breaking_vjp(f, p, v):
        if f(*p) > 0:  # data-dependent control flow: dynamo cannot trace it into one graph
            v = v * 1.0
        return tasks.FUNC_TASKS["vjp"](f, p, v)

    monkeypatch.setattr(tasks, "BINDERS", {"compile": lambda impl, *args: tasks.CompiledOp(breaking_vjp, *args)})
    code = commands.main(["run", "--preset", "small", "--device", "cpu", "--num-iters", "2", "--api", "all",
                     "--run-slow-tasks", "--model-filter", "ppl_simple_reg", "--task-filter", "vjp"])
    captured = capsys.readouterr()
    assert code == 1
    assert "ppl_simple_reg compiled vjp: FAILED: " in captured.err
    rows = [line for line in captured.out.splitlines() if line.startswith("| ppl_simple_reg[small]")]
    assert [r.split("|")[2].strip() for r in rows] == ["vjp", "functorch vjp"]  # no compiled row timed


def test_compile_unavailable_is_one_line_in_the_cli_and_na_in_asv(monkeypatch, capsys):
    reason = "torch.compile's inductor needs a C++ compiler (g++ or clang++; Debian: apt-get install g++)"
    monkeypatch.setattr(tools, "compile_unavailable_reason", lambda device="cpu": reason)  # its one home
    assert commands.main(["run", "--api", "compile", "--preset", "small", "--model-filter", "ppl_simple_reg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a C++ compiler" in err
    with pytest.raises(NotImplementedError, match=r"needs a C\+\+ compiler"):
        prepared.prepared(CELL, "small", "cpu", RunSettings(), "cpu")
    with pytest.raises(registry.Unsupported, match=r"needs a C\+\+ compiler"):
        cases.build_case(CELL)


def test_both_keeps_the_originals_two_apis_and_all_adds_compile():
    parser = commands.build_parser()
    both = commands.run.planned_cells(parser.parse_args(["run", "--model-filter", "ppl_simple_reg",
                                                         "--task-filter", "vjp"]))
    every = commands.run.planned_cells(parser.parse_args(["run", "--api", "all", "--model-filter", "ppl_simple_reg",
                                                          "--task-filter", "vjp", "--run-slow-tasks"]))
    assert [c.api for c in both] == ["autograd", "func"]
    assert [c.api for c in every] == ["autograd", "func", "compile"]
    assert tasks.task_label("vjp", "compile") == "compiled vjp"


COLD_COMPILE = """
import os, sys
from funcbench.measurement import cases, compilation
from funcbench.catalogue.registry import Cell
run_folder = sys.argv[1]
os.environ["TORCHINDUCTOR_CACHE_DIR"] = run_folder  # the run's folder (compilation.use_run_cache)
case = cases.build_case(Cell("ppl_simple_reg", "vjp", "compile"), "cpu", "small", metric="compile_seconds")
seconds = compilation.compile_seconds(case)
assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == run_folder, os.environ["TORCHINDUCTOR_CACHE_DIR"]
print(seconds, sorted(os.listdir(run_folder)))
"""


@needs_compile
@pytest.mark.slow
@pytest.mark.compile
def test_compile_seconds_are_measured_from_an_empty_cache_of_the_runs_own(tmp_path):
    # A fresh process, as asv's: compiled code also stays in memory for the process's life.
    result = subprocess.run([sys.executable, "-c", COLD_COMPILE, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, left = result.stdout.split(maxsplit=1)
    assert float(seconds) > 1.0  # tracing, code generation and a C++ compile: seconds, not milliseconds
    assert left.strip() == "[]"  # the cold folder is removed; nothing else written to the run's folder


@needs_compile
@pytest.mark.slow
@pytest.mark.compile
@pytest.mark.asv
def test_one_compiled_cell_end_to_end_in_asv(tmp_path):
    """time_op and track_compile_seconds of a default compiled cell, recorded by a real asv run."""
    cell = CELL  # the cheapest default compiled cell (~12 s cold)
    assert cell in registry.cells(["compile"])
    work, home = tmp_path / "asv", tmp_path / "home"
    home.mkdir()
    _, head = asv_helpers.make_project_repo(work / "repo")
    conf = asv_helpers.write_conf(work / "asv.conf.json", work / "repo", work)
    asv_helpers.add_machine(conf, "box", home)
    bench = (rf"^benchmarks\.({cell.model}\.time_compiled_op\('{cell.model}', '{cell.task}', 'compile'"
             rf"|Compile\.track_compile_seconds\('{cell}')")
    # This venv's python: funcbench is installed from the working tree there (pip install -e).
    asv_helpers.run_existing(conf, sys.executable, head, "box", home, bench=bench)
    (path,) = asv_helpers.result_files(work, "box")
    data = json.loads(path.read_text())
    columns = data["result_columns"]

    def values(name):
        return [v for v in data["results"][name][columns.index("result")] if v is not None and not math.isnan(v)]

    (seconds_per_call,) = values(f"benchmarks.{cell.model}.time_compiled_op")
    (compile_seconds,) = values("benchmarks.Compile.track_compile_seconds")
    assert 0 < seconds_per_call < 1 and compile_seconds > 20 * seconds_per_call
