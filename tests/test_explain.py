"""Per-function counts: callgrind dumps read into self instructions (protocol.dump_functions), kept
beside asv's results (funcbench.results.profiles), and shown under a comparison's rows
(funcbench.results.explain, ``funcbench compare --explain``). Fast: hand-written dumps and asv
results files written with asv's own API; tests/test_instructions.py counts for real."""
from __future__ import annotations

import datetime
import gzip
import json
import os
import sys
from pathlib import Path

import pytest

from funcbench import commands
from funcbench.measurement.instructions import parent
from funcbench.measurement.instructions.parent import median_profile
from funcbench.measurement.instructions.protocol import Function, dump_functions, dump_total
from funcbench.results import explain, profiles

DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 999

ob=(1) /env/lib/libtorch_cpu.so
fl=(1) /pytorch/aten/src/ATen/native/Copy.cpp
fn=(1) at::native::copy_(at::Tensor&, at::Tensor const&, bool)
0 100
cfn=(2) at::native::direct_copy_kernel(at::TensorIteratorBase&)
calls=2 0
0 5000
fi=(2) /usr/include/c++/12/bits/stl_vector.h
0 7
fe=(1)
+1 3
fn=(2)
0 {kernel}
ob=(2) /usr/lib/libpython3.11.so.1.0
fl=(3) Objects/dictobject.c
fn=(3) unicodekeys_lookup_unicode
0 40
fn=(4) _PyEval_EvalFrameDefault'2
0 20
fn=(5) _PyEval_EvalFrameDefault
* 30

totals: {total}
"""


def write_dump(path: Path, kernel: int = 5000) -> Path:
    path.write_text(DUMP.format(kernel=kernel, total=100 + 7 + 3 + kernel + 40 + 20 + 30))
    return path


def test_a_dump_is_read_into_self_instructions_that_sum_to_its_total(tmp_path):
    path = write_dump(tmp_path / "callgrind.out.1.1")
    functions = dump_functions(path)
    torch_cpu, python = "/env/lib/libtorch_cpu.so", "/usr/lib/libpython3.11.so.1.0"
    copy = Function("at::native::copy_(at::Tensor&, at::Tensor const&, bool)", "/pytorch/aten/src/ATen/native/Copy.cpp",
                    torch_cpu)
    assert functions[copy] == 110  # its own lines and its inlined (fi/fe) ones; not the call's 5000
    assert functions[Function("at::native::direct_copy_kernel(at::TensorIteratorBase&)",
                              "/pytorch/aten/src/ATen/native/Copy.cpp", torch_cpu)] == 5000
    assert functions[Function("_PyEval_EvalFrameDefault", "Objects/dictobject.c", python)] == 50  # recursion folded
    assert sum(functions.values()) == dump_total(path)
    path.write_text(path.read_text().replace("totals: 5200", "totals: 5201"))
    with pytest.raises(ValueError, match="sum to 5200"):
        dump_functions(path)


def test_the_kept_profile_is_the_median_call_less_the_baseline_and_sums_to_the_count(tmp_path):
    numbers = {1: 0, 2: 5000, 3: 6000, 4: 5500}  # dump number -> kernel instructions; 1 is the baseline
    for number, kernel in numbers.items():
        write_dump(tmp_path / f"d.{number}", kernel)
    dump = lambda n: tmp_path / f"d.{n}"  # noqa: E731
    totals = [dump_total(dump(n)) for n in (2, 3, 4)]
    profile = median_profile(dump, [2, 3, 4], totals, 1)
    assert sum(profile.values()) == sorted(totals)[1] - dump_total(dump(1))
    assert list(profile.values()) == [5500]  # every other function cancels against the baseline


def fake_results(results_dir: Path, machine: str, commit: str, values: dict, env_name: str = "env"):
    """An asv results file of benchmarks.Instructions.track_instructions, written by asv's own Results."""
    from asv import util
    from asv.machine import Machine
    from asv.results import Results
    from asv.runner import BenchmarkResult

    util.write_json(str(results_dir / machine / "machine.json"), {"machine": machine}, Machine.api_version)
    results = Results({"machine": machine}, {}, commit, 1_700_000_000_000, "3.11", env_name, {})
    cells = list(values)
    benchmark = {"name": "benchmarks.Instructions.track_instructions", "version": "1", "type": "track",
                 "unit": "instructions", "param_names": ["cell", "preset", "device"],
                 "params": [[repr(c) for c in cells], [repr("small")], [repr("cpu")]]}
    results.add_result(benchmark, BenchmarkResult([float(values[c]) for c in cells], [None] * len(cells),
                                                  [None] * len(cells), 0, "", None),
                       started_at=datetime.datetime.now(datetime.timezone.utc), duration=1.0)
    results.save(str(results_dir))


def profile(**functions) -> dict:
    """{Function: n} of functions named by keyword (object libtorch_cpu.so; ``noise`` a dict lookup)."""
    out = {}
    for name, n in functions.items():
        if name == "noise":
            out[Function("unicodekeys_lookup_unicode", "Objects/dictobject.c", "/usr/lib/libpython3.11.so.1.0")] = n
        else:
            out[Function(f"at::native::{name}(at::Tensor const&)", "???", f"/env{n % 7}/lib/libtorch_cpu.so")] = n
    return out


VJP, FUNC = "ppl_simple_reg:vjp:autograd", "ppl_simple_reg:vjp:func"
BEFORE = {VJP: profile(add_kernel=600, mul_kernel=300, noise=100), FUNC: profile(add_kernel=2000)}
AFTER = {VJP: profile(add_kernel=600, mul_kernel=290, cumsum_cpu_kernel=500, noise=150), FUNC: profile(add_kernel=2000)}


def keep(results_dir: Path, commit: str, functions: dict, env_name: str = "env") -> Path:
    counts = {"cells": {c: sum(f.values()) for c, f in functions.items()}, "preset": "small",
              "profiles": {c: {tuple(k): v for k, v in f.items()} for c, f in functions.items()}}
    return profiles.keep(counts, {"ASV_COMMIT": commit, "ASV_ENV_NAME": env_name,
                                  profiles.DIR_VARIABLE: str(results_dir / profiles.UNFILED)})


@pytest.fixture
def two_commits(tmp_path):
    results = tmp_path / "results"
    for commit, functions in (("a" * 40, BEFORE), ("b" * 40, AFTER)):
        fake_results(results, "box", commit, {c: sum(f.values()) for c, f in functions.items()})
        keep(results, commit, functions)
    return results


def compare(results: Path, *extra: str):
    return commands.main(["compare", "--metric", "instructions", "--results-dir", str(results),
                          "--before", "asv:aaaaaaaa@box", "--after", "asv:bbbbbbbb@box", *extra])


def movers_table(out: str, label: str) -> list:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"**{label}**"))
    rows = []
    for line in lines[start + 4:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_compare_explains_the_moved_row_and_its_lines_add_up_exactly(two_commits, capsys):
    assert compare(two_commits, "--explain") == 0
    out = capsys.readouterr().out
    assert "**ppl_simple_reg[small] vjp**: 1,000 → 1,540 instructions (+54.00 %)" in out
    assert "**ppl_simple_reg[small] functorch vjp**" not in out  # unchanged: not beyond the gate
    rows = movers_table(out, "ppl_simple_reg[small] vjp")
    assert rows[0][:5] == ["at::native::cumsum_cpu_kernel", "libtorch_cpu.so", "0", "500", "+500"]
    assert rows[1][0].startswith("interpreter noise") and rows[1][4] == "+50"  # dict lookups as one line
    assert rows[2][0] == "at::native::mul_kernel" and rows[2][4] == "-10"
    listed, other, total = rows[:-2], rows[-2], rows[-1]
    for column in (2, 3, 4):
        assert sum(number(r[column]) for r in listed) + number(other[column]) == number(total[column])
    assert total[2:5] == ["1,000", "1,540", "+540"] and total[5] == "100.0 %"
    assert other[0] == "other (1 functions)" and other[4] == "+0"  # add_kernel, on two objects' paths: one function


def test_explain_all_top_n_and_raw(two_commits, capsys):
    assert compare(two_commits, "--explain", "all:1", "--explain-raw") == 0
    out = capsys.readouterr().out
    assert "**ppl_simple_reg[small] functorch vjp**: 2,000 → 2,000 instructions (+0.00 %)" in out
    rows = movers_table(out, "ppl_simple_reg[small] vjp")
    assert len(rows) == 3 and rows[0][0] == "at::native::cumsum_cpu_kernel"
    assert compare(two_commits, "--explain", "5", "--explain-raw") == 0
    rows = movers_table(capsys.readouterr().out, "ppl_simple_reg[small] vjp")
    assert rows[1][0] == "unicodekeys_lookup_unicode"  # raw: the lookup by its own name


def test_the_gate_picks_the_rows_explained_and_the_exit_code_is_the_gates(two_commits, capsys):
    assert compare(two_commits, "--explain", "--fail-above", "1.6") == 0
    assert "No row to explain" in capsys.readouterr().out
    assert compare(two_commits, "--explain", "--fail-above", "1.5") == 1
    assert "**ppl_simple_reg[small] vjp**" in capsys.readouterr().out


def test_rows_without_profiles_are_named_in_one_line_and_the_exit_code_is_unchanged(two_commits, capsys):
    for path in (two_commits / profiles.UNFILED).glob(f"bbbbbbbb*{profiles.SUFFIX}"):
        path.unlink()
    assert compare(two_commits, "--explain", "all") == 0
    out = capsys.readouterr().out
    assert out.count("cannot be explained") == 1
    assert "2 row(s) cannot be explained" in out and "ppl_simple_reg[small] vjp" in out.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["--explain", "x"], "--explain takes N"), (["--explain", "0"], "--explain takes N"),
    (["--explain-raw"], "--explain-raw goes with --explain"),
    (["--explain", "--metric", "cpu"], "--explain explains instruction counts")])
def test_bad_explain_arguments_are_one_line(two_commits, capsys, argv, message):
    argv = ["compare", "--results-dir", str(two_commits), "--before", "asv:aaaaaaaa@box", "--after", "asv:bbbbbbbb@box",
            *argv]
    if "--metric" not in argv:
        argv[1:1] = ["--metric", "instructions"]
    assert commands.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_profiles_are_filed_beside_the_results_file_cell_by_cell_and_nothing_is_lost(tmp_path):
    results = tmp_path / "results"
    commit = "c" * 40
    for machine in ("old", "new"):
        fake_results(results, machine, commit, {VJP: 1000})
    os.utime(results / "old" / f"{commit[:8]}-env.json", (0, 0))  # "new" is the one asv just wrote
    keep(results, commit, {VJP: BEFORE[VJP]})
    keep(results, commit, {FUNC: BEFORE[FUNC]})  # a second count of the same commit: merged, not replacing
    (written,) = profiles.file(results)
    assert written == profiles.filed_path(results, "new", commit, "env") and written.name.endswith(".json.gz")
    assert not list((results / profiles.UNFILED).iterdir())
    kept = profiles.for_result(results, "new", commit, "env")
    assert set(kept.cells) == {f"{VJP} small", f"{FUNC} small"}
    assert kept.cells[f"{VJP} small"].total == 1000 == sum(kept.cells[f"{VJP} small"].functions.values())
    keep(results, commit, {VJP: AFTER[VJP]})  # a recount replaces its cell only
    profiles.file(results, machine="old")  # a named machine wins over the newest file
    assert profiles.for_result(results, "old", commit, "env").cells[f"{VJP} small"].total == 1540
    written.write_bytes(b"not gzip")  # an unreadable file is set aside, never overwritten
    keep(results, commit, {VJP: AFTER[VJP]})
    profiles.file(results, machine="new")
    assert [p.name.endswith(".bak") for p in (results / "new").glob(f"{profiles.PREFIX}*")].count(True) == 1
    assert profiles.for_result(results, "new", commit, "env").cells[f"{VJP} small"].total == 1540
    # asv reads every *.json under results/ as results: the profiles are not *.json
    assert not [p for p in results.rglob("*.json") if p.name.startswith(profiles.PREFIX)]


def test_publish_files_the_profiles_an_asv_run_of_its_own_left_unfiled(two_commits, monkeypatch):
    """dev.py's main job runs asv itself, not through funcbench's adapter: publish files what it left."""
    from funcbench.commands import publish
    from funcbench.fleet.asv_driver import Asv

    conf = two_commits.parent / "asv.conf.json"
    conf.write_text(json.dumps({"version": 1, "results_dir": "results", "html_dir": "html"}))
    asked = []
    monkeypatch.setattr(Asv, "__call__", lambda self, *args, **kw: asked.append(args) or "")
    monkeypatch.setattr(publish, "vendor_archive", lambda: None)
    monkeypatch.setattr(publish, "make_self_contained", lambda html, archive: [html / "index.html", html / "asv.html"])
    assert publish.publish(conf) == 0 and asked == [("publish",)]
    assert not list((two_commits / profiles.UNFILED).glob("*" + profiles.SUFFIX))
    for commit, functions in (("a" * 40, BEFORE), ("b" * 40, AFTER)):
        path = profiles.filed_path(two_commits, "box", commit, "env")
        assert {c.split()[0]: p.total for c, p in profiles.ProfileFile.read(path).cells.items()} == \
            {c: sum(f.values()) for c, f in functions.items()}


def test_a_plain_asv_run_in_an_existing_environment_keeps_a_pending_profile_taken_where_its_counts_match(
        tmp_path, monkeypatch, capsys):
    # asv gives such a benchmark process no ASV_ variable at all: with FUNCBENCH_PROFILES_DIR set, the
    # profile is kept without a commit, named by the interpreter as asv names the environment
    results = tmp_path / "results"
    env_name = "existing-py" + sys.executable.replace(os.sep, "_")
    for commit, functions in (("a" * 40, BEFORE), ("b" * 40, AFTER)):
        fake_results(results, "box", commit, {c: sum(f.values()) for c, f in functions.items()}, env_name)
    counts = {"cells": {VJP: 1000, FUNC: 2000}, "preset": "small",
              "profiles": {c: {tuple(k): v for k, v in f.items()} for c, f in BEFORE.items()}}
    path = profiles.keep(counts, {profiles.DIR_VARIABLE: str(results / profiles.UNFILED)})
    assert path.name == f"{profiles.PENDING}-{env_name}{profiles.SUFFIX}"
    assert profiles.keep(counts, {}) is None  # nowhere to keep it: none, and compare says so
    counts["profiles"] = {c: {tuple(k): v for k, v in f.items()} for c, f in AFTER.items()}
    counts["cells"] = {VJP: 1540, FUNC: 2000}
    profiles.keep(counts, {profiles.DIR_VARIABLE: str(results / profiles.UNFILED)})  # the next count
    assert profiles.file(results) == []  # no results file of its name: stays where compare finds it
    assert commands.main(["compare", "--metric", "instructions", "--results-dir", str(results),
                          "--before", "asv:aaaaaaaa@box", "--after", "asv:bbbbbbbb@box", "--explain", "all"]) == 0
    out = capsys.readouterr().out
    # the pending profile is the after side's count (1,540): the before row's 1,000 no longer matches it
    assert "1 row(s) cannot be explained" in out and "ppl_simple_reg[small] vjp" in out.strip().splitlines()[-1]
    assert "**ppl_simple_reg[small] functorch vjp**: 2,000 → 2,000" in out


def test_a_profile_file_is_compact_gzipped_json_with_one_name_table(tmp_path):
    kept = profiles.ProfileFile("d" * 40, "env", {
        "x small": profiles.CellProfile(1000, dict(BEFORE[VJP])), "y small": profiles.CellProfile(1000, dict(BEFORE[VJP]))})
    path = tmp_path / kept.name
    size = kept.write(path)
    assert size == path.stat().st_size
    data = json.loads(gzip.decompress(path.read_bytes()))
    assert data["format"] == profiles.FORMAT and len(data["names"]) == 3  # shared by both cells
    assert profiles.ProfileFile.read(path) == kept
    assert kept.write(tmp_path / "again.json.gz") == size and (tmp_path / "again.json.gz").read_bytes() == path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # a new file's mode, as asv's results files
    assert not list(tmp_path.glob(".*.tmp"))
    data["cells"]["x small"]["ids"][-1] += 5  # an index beyond the name table: refused, not wrapped round
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(ValueError, match="not a readable profile file"):
        profiles.ProfileFile.read(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_short_names_keep_the_kernels_name():
    name = ("void c10::function_ref<void (char**, long const*, long, long)>::callback_fn<at::native::(anonymous "
            "namespace)::cpu_cum_base_kernel<float, at::native::(anonymous namespace)::cumsum_cpu_kernel(at::Tensor "
            "const&, at::Tensor const&, long)::{lambda()#1}::operator()() const::{lambda(float*, auto:1)#1}>(at::Tensor "
            "const&, long)::{lambda(char**, long const*, long, long)#1}>(long, char**, long const*, long, long)")
    assert explain.short_name(name) == ("void c10::function_ref<void >::callback_fn<at::native::cpu_cum_base_kernel<float, "
                                        "at::native::cumsum_cpu_kernel::λ::λ>::λ>")
    assert len(explain.short_name("x" * 1000)) == explain.WIDTH
    # LLVM's spelling of the same lambdas, and a symbol no demangler could read: its identifiers
    assert explain.short_name("void at::native::_dim_apply<at::native::(anonymous namespace)::sort_kernel(long)::"
                              "'lambda'(auto*, long)>(long)::'lambda8'()::operator()() const") == (
        "void at::native::_dim_apply<at::native::sort_kernel::λ>::λ")
    assert explain.short_name(SORT_MANGLED) == (
        "mangled: c10::function_ref::callback_fn::at::TensorIteratorBase::loop_2d_from_1d::native::_GLOBAL__N_1::"
        "_dim_apply::sort_kernel::TensorBase::__cxx11::basic_string::char_traits")


# A symbol of torch 2.14.1's sort kernel that GNU c++filt 2.40 leaves as it is (LLVM's demangles it).
SORT_MANGLED = ("_ZN3c1012function_refIFvPPcPKlllEE11callback_fnIZN2at18TensorIteratorBase15loop_2d_from_1dIZZZNS8_"
                "6native12_GLOBAL__N_110_dim_applyIZNSC_11sort_kernelERKNS8_10TensorBaseESG_SG_lbbEUlPT_lPT0_llE_EEvSG_"
                "SG_lRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKSH_ENKUlvE_clEvENKUlvE8_clEvEUlS2_S4_lE_EE"
                "DaSV_EUlS2_S4_llE_EEvlS2_S4_ll")


def test_demangling_keeps_every_count_whatever_the_demanglers_can_read(monkeypatch):
    lib = "/env/lib/libtorch_cpu.so"
    profile = {Function("_ZN3c104HalfC2Ef", "???", lib): 7, Function("c10::Half::Half(float)", "???", lib): 1,
               Function(SORT_MANGLED, "???", lib): 5, Function("_Znot_a_symbol", "???", lib): 3}
    parent.demangle([profile])
    assert sum(profile.values()) == 16  # a name left as it was once counted twice
    assert profile[Function("c10::Half::Half(float)", "???", lib)] == 8  # two symbols, one name: added
    assert profile[Function("_Znot_a_symbol", "???", lib)] == 3
    monkeypatch.setattr(parent, "DEMANGLERS", ("no-such-demangler",))
    untouched = {Function(SORT_MANGLED, "???", lib): 5}
    parent.demangle([untouched])
    assert untouched == {Function(SORT_MANGLED, "???", lib): 5}


def test_the_asv_adapter_names_commit_and_environment_where_asv_does_not(tmp_path, monkeypatch):
    # asv runs a benchmark in an existing environment without ASV_COMMIT and ASV_ENV_NAME
    from funcbench.fleet import asv_driver
    seen = []
    monkeypatch.setenv(profiles.COMMIT_VARIABLE, "stale")  # never inherited
    monkeypatch.setattr(asv_driver.Asv, "__call__", lambda self, *args, env=None, timeout=0: seen.append(self.environ(env)) or "")
    asv = asv_driver.Asv(asv_driver.ROOT / "asv.conf.json", machine="box")
    asv.run("-E", "existing:/opt/py/bin/python", "--set-commit-hash", "HEAD", bench=["x"])
    asv.run("HEAD^!", bench=["x"])
    head = asv_driver.git_hash("HEAD")
    assert seen[0][profiles.COMMIT_VARIABLE] == head and seen[0][profiles.ENV_VARIABLE] == "existing-py_opt_py_bin_python"
    assert profiles.COMMIT_VARIABLE not in seen[1] and profiles.ENV_VARIABLE not in seen[1]
    assert seen[0][profiles.DIR_VARIABLE] == str(asv.results_dir / profiles.UNFILED)
