"""Instruction counts under real valgrind (funcbench.measurement.instructions) on two cheap ppl cells, and
the gates that read them: funcbench compare --metric instructions --fail-above, and asv
continuous --factor 1.01 --bench track_instructions on a commit that adds work."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

import asv_helpers
from test_explain import movers_table, number
from funcbench import commands
from funcbench.catalogue import config, registry, tools
from funcbench.measurement import injection, instructions
from funcbench.results import explain, profiles, report
from funcbench.catalogue.config import RunSettings
from funcbench.results.values import Measurement
from funcbench.catalogue.registry import Cell

VJP, FUNC_VJP = Cell("ppl_simple_reg", "vjp", "autograd"), Cell("ppl_simple_reg", "vjp", "func")
needs_valgrind = pytest.mark.skipif(tools.valgrind_unavailable_reason() is not None,
                                    reason=str(tools.valgrind_unavailable_reason()))


@pytest.fixture(scope="module")
def two_counts():
    """The same two cells counted in two valgrind processes, and once with +2 % injected work on
    one cell and one real ATen op (cumsum) on the other."""
    first = instructions.count([VJP, FUNC_VJP])
    second = instructions.count([VJP, FUNC_VJP])
    injected = instructions.count([VJP, FUNC_VJP], injection=f"{FUNC_VJP}:1.02", injected_op=f"{VJP}:cumsum")
    return first, second, injected


@needs_valgrind
@pytest.mark.slow
@pytest.mark.valgrind
def test_counts_are_positive_and_two_processes_agree(two_counts):
    first, second, _ = two_counts
    for cell in (VJP, FUNC_VJP):
        assert first[cell].error is None and len(first[cell].calls) == instructions.COUNTING["light"][1]
        assert 100_000 < first[cell].per_call < 100_000_000  # a ppl vjp: ~0.9 M (autograd), ~2 M (func)
        assert first[cell].baseline > 0  # the toggles' own cost, subtracted
        assert abs(second[cell].per_call / first[cell].per_call - 1) < 0.005


@needs_valgrind
@pytest.mark.slow
@pytest.mark.valgrind
def test_injected_work_shows_in_counts_and_the_gate_fails_on_it(two_counts, tmp_path, capsys):
    first, _, injected = two_counts
    ratio = injected[FUNC_VJP].per_call / first[FUNC_VJP].per_call
    assert 1.015 < ratio < 1.03, ratio  # +2 % of the op's instructions, priced in instructions
    assert injected[VJP].per_call > first[VJP].per_call  # cumsum's instructions (test_an_injected_aten_op...)

    def written(counts, name):
        table = report.Report()
        for cell, count in counts.items():
            table.add(Measurement.from_samples(cell, "small", "cpu", "instructions", count.calls))
        path = tmp_path / name
        path.write_text(table.to_markdown())
        return str(path)

    argv = ["compare", "--metric", "instructions", "--before", written(first, "base.md"),
            "--after", written(injected, "head.md"), "--fail-above", "1.005"]
    assert commands.main(argv) == 1
    fails = [line for line in capsys.readouterr().err.splitlines() if "FAIL" in line]
    assert [line.split(":")[1].strip() for line in fails] == ["FAIL ppl_simple_reg[small] vjp",
                                                              "FAIL ppl_simple_reg[small] functorch vjp"]


@needs_valgrind
@pytest.mark.slow
@pytest.mark.valgrind
def test_per_function_counts_sum_to_the_count_and_name_an_injected_aten_op_in_the_top_three(two_counts):
    first, second, injected = two_counts
    for counts in two_counts:
        for cell, count in counts.items():  # the median call's functions, less the baseline's: exactly the count
            assert sum(count.profile.values()) == count.per_call, cell
    assert not [f for c in first.values() for f in c.profile if f.name.startswith("_Z")]  # demangled

    def movers(before, after):
        found = explain.explain(*(profiles.CellProfile(int(c.per_call), c.profile) for c in (before, after)), top=3)
        return [m.label for m in found.movers]

    top = movers(first[VJP], injected[VJP])
    assert any(injection.OPS["cumsum"][0] in label for label in top), top
    for other in (movers(first[FUNC_VJP], injected[FUNC_VJP]), movers(first[VJP], second[VJP])):
        assert not any(injection.OPS["cumsum"][0] in label for label in other), other


def test_selection_tokens_name_tiers_models_and_cells():
    light = registry.select(["light"])
    assert light and {registry.model_spec(c.model).tier for c in light} == {"light"}
    assert light == [c for c in registry.cells() if registry.model_spec(c.model).tier == "light"
                     and c.api != "compile"]  # compiled cells only when named one by one; the registry's order
    assert registry.select(["ppl_simple_reg:vjp:compile"]) == [Cell("ppl_simple_reg", "vjp", "compile")]
    assert set(registry.select(["resnet18"])) == set(registry.cells(models=["resnet18"]))
    assert registry.select(["ppl_simple_reg:vjp:func", "ppl_simple_reg:vjp:func"]) == [FUNC_VJP]
    with pytest.raises(registry.UnknownName, match="'fast' is no tier"):
        registry.select(["fast"])
    assert config.instruction_selection({"FUNCBENCH_INSTRUCTIONS": "all"}) == config.TIERS
    assert config.instruction_selection({"FUNCBENCH_INSTRUCTIONS": "none"}) == ()


def test_without_valgrind_or_on_cuda_the_cells_are_na_with_the_reason(monkeypatch):
    assert "CPU metric" in tools.valgrind_unavailable_reason("cuda")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = tools.valgrind_unavailable_reason("cpu")
    assert "valgrind is not installed" in reason
    with pytest.raises(NotImplementedError, match="valgrind is not installed"):
        instructions.counted(dict(cells={}), VJP, "small", "cpu", RunSettings())
    assert instructions.count_for_run(RunSettings())["cells"] == {}  # nothing counted, nothing started


def test_a_cell_not_selected_is_na_and_a_failed_count_is_an_error():
    counts = dict(cells={str(VJP): 900_000.0, str(FUNC_VJP): {"error": "RuntimeError: boom"}})
    run = RunSettings()
    assert instructions.counted(counts, VJP, "small", "cpu", run) == 900_000.0
    with pytest.raises(NotImplementedError, match="not counted: FUNCBENCH_INSTRUCTIONS"):
        instructions.counted(counts, Cell("multiheadattn", "vjp", "autograd"), "small", "cpu",
                             RunSettings(instructions=("ppl_simple_reg",)))
    with pytest.raises(RuntimeError, match="boom"):
        instructions.counted(counts, FUNC_VJP, "small", "cpu", run)
    with pytest.raises(NotImplementedError, match="FUNCBENCH_PRESET=small"):
        instructions.counted(counts, VJP, "full", "cpu", run)


# An extra elementwise op in ppl_simple_reg's forward: the kind of regression (an extra copy)
# a PR brings. Both cells of the model get slower; a commit that touches nothing stays put.
EXTRA_WORK = ("        logits = X.mm(beta_value)\n",
              "        logits = X.mm(beta_value).clone().clone()  # test: extra work\n")


@needs_valgrind
@pytest.mark.slow
@pytest.mark.valgrind
@pytest.mark.asv
def test_asv_continuous_and_the_instruction_gate_fail_on_a_commit_that_adds_work(tmp_path, capsys):
    work, home = tmp_path / "asv", tmp_path / "home"
    home.mkdir()
    base, _ = asv_helpers.make_project_repo(work / "repo")
    ppl = work / "repo" / "funcbench" / "catalogue" / "models" / "ppl.py"
    assert EXTRA_WORK[0] in ppl.read_text()
    ppl.write_text(ppl.read_text().replace(*EXTRA_WORK))
    head = asv_helpers.commit_all(work / "repo", "extra work in ppl_simple_reg's forward")
    conf = asv_helpers.write_conf(work / "asv.conf.json", work / "repo", work)
    asv_helpers.add_machine(conf, "box", home)
    env = {"FUNCBENCH_INSTRUCTIONS": f"{VJP},ppl_robust_reg:vjp:autograd"}
    with pytest.raises(AssertionError) as failed:  # asv continuous exits non-zero on a regression
        asv_helpers.asv(conf, "continuous", "--factor", "1.01", "--bench", "track_instructions", base, head,
                        "--machine", "box", home=home, env=env)
    output = str(failed.value)
    assert "asv continuous exited" in output.splitlines()[0], output[-4000:]
    assert "PERFORMANCE DECREASED" in output, output[-4000:]
    flagged = [line for line in output.splitlines() if line.startswith("|") and line.strip("| ").startswith("+")]
    assert len(flagged) == 1 and "track_instructions('ppl_simple_reg:vjp:autograd'" in flagged[0], output[-4000:]
    # The same results through funcbench's gate.
    argv = ["compare", "--metric", "instructions", "--results-dir", str(work / "results"),
            "--before", f"asv:{base[:8]}@box", "--after", f"asv:{head[:8]}@box", "--fail-above", "1.005"]
    assert commands.main(argv) == 1
    err = capsys.readouterr().err
    assert [line.split(":")[1].strip() for line in err.splitlines() if "FAIL" in line] == ["FAIL ppl_simple_reg[small] vjp"]
    assert "1 rows on both sides" not in err and "2 rows on both sides" in err
    # Why: the per-function counts the plain asv run kept (unfiled: asv's benchmark process knows no machine).
    assert list((work / "results" / profiles.UNFILED).glob(f"{head[:8]}-*{profiles.SUFFIX}"))
    argv = ["compare", "--results-dir", str(work / "results"), "--before", f"asv:{base[:8]}@box",
            "--after", f"asv:{head[:8]}@box", "--explain", "8"]
    assert commands.main(argv) == 0
    out = capsys.readouterr().out
    assert "cannot be explained" not in out, out
    # ppl_robust_reg shares the worker process, so the extra allocations can move its count a
    # little too (the heap's shape; docs/instruction-counts.md, caveats): explained where it
    # moved beyond the noise, and every explanation sums exactly.
    labels = re.findall(r"^\*\*(.+)\*\*: [\d,]+ → [\d,]+ instructions", out, re.MULTILINE)
    assert "ppl_simple_reg[small] vjp" in labels and set(labels) <= {"ppl_simple_reg[small] vjp",
                                                                       "ppl_robust_reg[small] vjp"}, out
    assert len(movers_table(out, "ppl_simple_reg[small] vjp")) == 10  # 8 functions, other, total
    for label in labels:
        rows = movers_table(out, label)
        assert rows[-1][0] == "total" and rows[-2][0].startswith("other (")
        before, after = (sum(number(r[i]) for r in rows[:-1]) for i in (2, 3))
        assert (before, after) == (number(rows[-1][2]), number(rows[-1][3]))
    results = json.loads(next((work / "results" / "box").glob(f"{head[:8]}-*.json")).read_text())
    assert "benchmarks.Instructions.track_instructions" in results["results"]


def test_cells_are_dealt_to_two_processes_the_same_way_on_every_machine():
    cells = registry.select(["light"])
    groups = instructions.split(cells)
    assert len(groups) == instructions.PROCESSES == 2
    assert groups == [cells[0::2], cells[1::2]]
    assert instructions.split([VJP]) == [[VJP]]


def test_cells_with_expected_seconds_go_longest_first_to_the_least_loaded_process():
    a, b, c, d = (Cell("ppl_simple_reg", task, "autograd") for task in ("vjp", "jvp", "vhp", "hvp"))
    # round-robin would give 4 s and 2 s; longest first: 3 s and 3 s, ties by name
    assert instructions.split([a, b, c, d], 2, {a: 3.0, b: 1.0, c: 1.0, d: 1.0}) == [[a], [d, b, c]]
    assert instructions.split([a, b, c, d], 2, {a: 3.0, b: 1.0, c: 1.0, d: 1.0}) == \
        instructions.split([d, c, b, a], 2, {a: 3.0, b: 1.0, c: 1.0, d: 1.0})  # the order given does not matter


def test_expected_seconds_come_from_the_committed_cost_table():
    from funcbench.measurement.instructions.asv_glue import expected_seconds
    known, unknown = Cell("wav2letter", "vhp", "autograd"), Cell("transformer", "vhp", "autograd")
    seconds = expected_seconds([known, unknown, VJP], "small")
    assert seconds[known] > 10 * seconds[VJP] > 0  # a medium cell costs far more than a light one
    assert seconds[unknown] > 0  # not in the table: the median counted cell


def test_the_counting_process_environment_is_the_same_whoever_starts_it(monkeypatch, tmp_path):
    """The environment is on the worker's heap: a caller's HOME or asv's ASV_* paths moved counts."""
    pinned = instructions.child_environment()
    monkeypatch.setenv("HOME", "/" + "h" * 70)
    monkeypatch.setenv("ASV_ENV_NAME", "existing-py_" + "e" * 90)
    monkeypatch.setenv("PATH", "/opt/elsewhere/bin:" + os.environ.get("PATH", ""))
    monkeypatch.setenv(config.INJECT_SLOWDOWN.name, f"{VJP}:2")  # the request carries injections, not the env
    assert instructions.child_environment() == pinned
    assert pinned["HOME"] == "/nonexistent" and pinned["PYTHONHASHSEED"] == "0" and pinned["PYTHONSAFEPATH"] == "1"
    assert set(pinned) - set(instructions.INHERITED) == {"PATH", "HOME", "LC_ALL", "PYTHONHASHSEED", "PYTHONSAFEPATH",
                                                          "GLIBC_TUNABLES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                          "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                                                          "ONEDNN_MAX_CPU_ISA"}
    # kernels without fused multiply-add, which valgrind runs ~300x slower than a multiply and an add
    assert (pinned["ATEN_CPU_CAPABILITY"], pinned["MKL_ENABLE_INSTRUCTIONS"], pinned["ONEDNN_MAX_CPU_ISA"]) == \
        ("default", "SSE4_2", "AVX")


def test_byte_code_names_the_path_the_worker_imports_funcbench_by(tmp_path):
    # Python renames the code objects of a .pyc that names another path as it imports it, which moved
    # counts: whichever path wrote the .pyc last (the checkout, or a link to it), it is rewritten once
    import importlib.util
    import marshal

    from funcbench.measurement.instructions import parent

    real = tmp_path / "checkout" / "pkg"
    (real / "sub").mkdir(parents=True)
    (real / "a.py").write_text("X = 1\n")
    (real / "sub" / "b.py").write_text("def f():\n    return 2\n")
    (real / "sub" / "broken.py").write_text("def (:\n")  # left to the import, as Python would
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "checkout", target_is_directory=True)

    def named(package):
        return {p.relative_to(package).as_posix(): marshal.loads(
            Path(importlib.util.cache_from_source(str(p))).read_bytes()[16:]).co_filename
            for p in package.rglob("*.py") if p.name != "broken.py"}

    assert parent.byte_code_for_workers(real) == 2  # missing: compiled, naming the checkout
    assert set(named(real).values()) == {str(real / "a.py"), str(real / "sub" / "b.py")}
    assert parent.byte_code_for_workers(real) == 0  # current: nothing written
    via_link = link / "pkg"
    assert parent.byte_code_for_workers(via_link) == 2  # current by mtime, but naming the other path
    assert named(via_link) == {"a.py": str(via_link / "a.py"), "sub/b.py": str(via_link / "sub" / "b.py")}
    assert parent.byte_code_for_workers(via_link) == 0
    (real / "a.py").write_text("X = 22\n")  # an edit: stale, compiled anew
    assert parent.byte_code_for_workers(via_link) == 1
