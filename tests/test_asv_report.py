"""`funcbench report` and `funcbench compare asv:...` on results made by real asv runs.

One temporary two-commit repository of this project (tests/asv_helpers.py), machine ``box``,
three ``asv run -E existing:PYTHON --set-commit-hash ... --record-samples`` runs with no build:
- the older commit, one cell, with ``.venv/bin/python``;
- the newer commit with ``.venv/bin/python``  (environment ``existing-..._bin_python``);
- the newer commit with ``.venv/bin/python3`` (environment ``existing-..._bin_python3``: asv
  names an existing environment after the interpreter's path, symlinks not resolved), with the
  suite's test-only slowdown hook making ``ppl_simple_reg`` functorch vjp 20x slower.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from funcbench import commands

import asv_helpers  # noqa: E402  (tests/asv_helpers.py, the asv suite helpers)

pytestmark = [pytest.mark.slow, pytest.mark.asv]
pytest.importorskip("asv")

MACHINE = "box"
# time_op of both APIs plus one peakmem_op (which must stay out of the table).
BENCH = r"^benchmarks\.(ppl_simple_reg|Memory)\.(time_op|peakmem_op)\('ppl_simple_reg(', '|:)vjp(', '|:)(autograd|func)'"
OLD_BENCH = r"^benchmarks\.ppl_simple_reg\.time_op\('ppl_simple_reg', 'vjp', 'autograd'"
SLOW_CELL = ("ppl_simple_reg[small]", "functorch vjp")
FAST_CELL = ("ppl_simple_reg[small]", "vjp")
PYTHON_A = str(Path(sys.executable).parent / "python")
PYTHON_B = str(Path(sys.executable).parent / "python3")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    if not (os.path.exists(PYTHON_A) and os.path.exists(PYTHON_B)):
        pytest.skip("needs both bin/python and bin/python3 in the venv (two existing environments)")
    work = tmp_path_factory.mktemp("asv-report")
    repo, home, (old, new) = asv_helpers.project_workspace(work)
    # benchmark_dir is relative to the conf file: point it at the repo copy's suite.
    conf = asv_helpers.write_conf(work / "asv.conf.json", repo, work, benchmark_dir=str(repo / "benchmarks"))
    asv_helpers.add_machine(conf, MACHINE, home)
    asv_helpers.run_existing(conf, PYTHON_A, old, MACHINE, home, bench=OLD_BENCH)
    asv_helpers.run_existing(conf, PYTHON_A, new, MACHINE, home, bench=BENCH)
    asv_helpers.run_existing(conf, PYTHON_B, new, MACHINE, home, bench=BENCH,
                             env={"FUNCBENCH_INJECT_SLOWDOWN": "ppl_simple_reg:vjp:func:20"})
    results = work / "results"
    env_a = "existing-" + "py" + PYTHON_A.replace(os.sep, "_")
    env_b = "existing-" + "py" + PYTHON_B.replace(os.sep, "_")
    files = {p.name: p for p in asv_helpers.result_files(work, MACHINE)}
    assert set(files) == {f"{old[:8]}-{env_a}.json", f"{new[:8]}-{env_a}.json", f"{new[:8]}-{env_b}.json"}
    return dict(work=work, repo=repo, home=home, results=results, old=old, new=new, env_a=env_a, env_b=env_b,
                file_a=files[f"{new[:8]}-{env_a}.json"], file_b=files[f"{new[:8]}-{env_b}.json"])


def run_cli(capsys, *argv):
    code = commands.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def table(text):
    """{(model, task): [cells...]} of the markdown table in text."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("model", "--"):
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def raw_samples(path, api):
    """The samples asv recorded for ppl_simple_reg vjp <api>, straight from the results file."""
    data = json.loads(Path(path).read_text())
    columns = data["result_columns"]
    row = data["results"]["benchmarks.ppl_simple_reg.time_op"]
    params = [[json.loads(v.replace("'", '"')) for v in column] for column in row[columns.index("params")]]
    index = list(itertools.product(*params)).index(("ppl_simple_reg", "vjp", api, "small", "cpu"))
    return row[columns.index("samples")][index]


def test_report_defaults_to_newest_commit_and_environment(suite, capsys):
    code, out, err = run_cli(capsys, "report", "--results-dir", str(suite["results"]))
    assert code == 0, err
    # Newest commit; of its two environments the newer run (python3).
    assert f"commit {suite['new'][:8]}" in out and suite["env_b"] in out
    assert "recorded samples" in out and "preset small, device cpu" in out
    rows = table(out)
    assert set(rows) == {FAST_CELL, SLOW_CELL}  # time_op only: peakmem_op left out
    assert "took the newest of 2 environments" in err and suite["env_a"] in err


def test_report_explicit_selection_matches_recorded_samples(suite, capsys, tmp_path):
    output = tmp_path / "report.md"
    code, out, err = run_cli(capsys, "report", "--results-dir", str(suite["results"]), "--commit",
                             suite["new"][:6], "--machine", MACHINE, "--environment", "bin_python",
                             "--output", str(output))
    assert code == 0, err
    assert suite["env_a"] in out and suite["env_b"] not in out
    rows = table(output.read_text())
    assert output.read_text().startswith("| model | task | mean | var |\n| -- | -- | -- | -- |\n")
    for key, api in ((FAST_CELL, "autograd"), (SLOW_CELL, "func")):
        samples = raw_samples(suite["file_a"], api)
        assert len(samples) > 1
        assert float(rows[key][0]) == pytest.approx(statistics.fmean(samples), rel=1e-12)
        assert float(rows[key][1]) == pytest.approx(statistics.variance(samples), rel=1e-12)


def test_report_heading_of_an_existing_environment_reads_the_params(suite, capsys, tmp_path):
    # asv records no environment variables for `-E existing` runs: the heading's preset and
    # device come from the results' params (here the full preset, not the suite's default).
    conf = asv_helpers.write_conf(tmp_path / "asv.conf.json", suite["repo"], tmp_path,
                                  benchmark_dir=str(suite["repo"] / "benchmarks"))
    asv_helpers.add_machine(conf, MACHINE, suite["home"])
    asv_helpers.run_existing(conf, PYTHON_A, suite["old"], MACHINE, suite["home"], bench=OLD_BENCH,
                             env={"FUNCBENCH_PRESET": "full"})
    code, out, err = run_cli(capsys, "report", "--results-dir", str(tmp_path / "results"))
    assert code == 0, err
    assert "(preset full, device cpu)" in out.splitlines()[0]
    assert set(table(out)) == {("ppl_simple_reg", "vjp")}  # a full-preset row has no [preset] tag


def test_report_older_commit(suite, capsys):
    code, out, err = run_cli(capsys, "report", "--results-dir", str(suite["results"]), "--commit", suite["old"])
    assert code == 0, err
    assert f"commit {suite['old'][:8]}" in out
    assert set(table(out)) == {FAST_CELL}


def test_list(suite, capsys):
    code, out, err = run_cli(capsys, "report", "--list", "--results-dir", str(suite["results"]))
    assert code == 0, err
    lines = out.splitlines()
    new_line = next(i for i, line in enumerate(lines) if line.startswith(f"commit {suite['new'][:8]}"))
    old_line = next(i for i, line in enumerate(lines) if line.startswith(f"commit {suite['old'][:8]}"))
    assert new_line < old_line  # newest first
    assert " UTC" in lines[new_line]  # with the commit date
    for env in (suite["env_a"], suite["env_b"]):
        assert any(line.strip().startswith(f"@{MACHINE}/{env} ") for line in lines[new_line:old_line])


def test_compare_two_environments(suite, capsys, tmp_path):
    before, after = f"asv:{suite['new'][:8]}@{MACHINE}/{suite['env_a']}", f"asv:{suite['new'][:8]}/bin_python3"
    output = tmp_path / "compare.md"
    code, out, err = run_cli(capsys, "compare", "--results-dir", str(suite["results"]), "--before", before,
                             "--after", after, "--output", str(output))
    assert code == 0, err
    text = output.read_text()
    assert text.splitlines()[0] == "| model | task | speedup | mean (before) | var (before) | mean (after) | var (after) |"
    rows = table(text)
    assert set(rows) == {FAST_CELL, SLOW_CELL}
    for key, api in ((FAST_CELL, "autograd"), (SLOW_CELL, "func")):
        speedup, mean_b, var_b, mean_a, var_a = rows[key]
        assert float(mean_b) == pytest.approx(statistics.fmean(raw_samples(suite["file_a"], api)), rel=1e-12)
        assert float(mean_a) == pytest.approx(statistics.fmean(raw_samples(suite["file_b"], api)), rel=1e-12)
        assert float(speedup.lstrip("~")) == pytest.approx(float(mean_b) / float(mean_a), rel=1e-12)
    # 20x slower after: a change asv's statistics call significant, so no '~'.
    assert not rows[SLOW_CELL][0].startswith("~") and float(rows[SLOW_CELL][0]) < 0.2


def test_compare_summary_and_gate_on_time(suite, capsys, tmp_path):
    before, after = f"asv:{suite['new'][:8]}/{suite['env_a']}", f"asv:{suite['new'][:8]}/bin_python3"
    argv = ["compare", "--results-dir", str(suite["results"]), "--before", before, "--after", after]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("funcbench compare (time): ")]
    assert lines.pop(0) == "funcbench compare (time): the sides differ in nothing recorded (same environment facts)"
    # The 20x injected row is significantly slower; the untouched row may or may not differ.
    assert "2 rows on both sides: " in lines[0] and "; 0 only before, 0 only after" in lines[0], lines
    assert lines[1].startswith("funcbench compare (time): slowest: ppl_simple_reg[small] functorch vjp +")
    percent = float(lines[1].rsplit("+", 1)[1].split()[0])
    assert percent > 500, lines[1]
    # The two runs were one after the other, not interleaved: the time gate refuses them.
    code, out, err = run_cli(capsys, *argv, "--fail-above", "1.5")
    assert code == 2 and err.count("\n") == 1 and "trusts only sides measured interleaved" in err
    # Recorded as interleaved (what `funcbench interleave` writes), the gate judges them.
    results = tmp_path / "results"
    shutil.copytree(suite["results"], results)
    (results / MACHINE / "funcbench-interleaved.json").write_text(json.dumps(
        [dict(sides=[[suite["new"], suite["env_a"]], [suite["new"], suite["env_b"]]])]))
    argv[2] = str(results)
    code, out, err = run_cli(capsys, *argv, "--fail-above", "3")  # the 20x row, never the untouched one
    assert code == 1
    fails = [line for line in err.splitlines() if line.startswith("funcbench compare: FAIL ")]
    assert len(fails) == 1 and "ppl_simple_reg[small] functorch vjp" in fails[0] and "(limit 3" in fails[0]
    code, out, err = run_cli(capsys, *argv, "--fail-above", "1000")
    assert code == 0 and "FAIL" not in err
    # The table on stdout is the original's, whatever the summary and gate say.
    assert out.splitlines()[0].startswith("| model | task | speedup |")


def test_interleave_two_pythons_records_the_pair_and_gates_it(suite, capsys, tmp_path, monkeypatch):
    """`funcbench interleave`: A B B A one-round runs appending samples, the pair recorded as
    interleaved, then the comparison; the same build on both sides passes a 3x gate (a 0.2 ms op's
    wall time on a busy 2-core machine moved identical interleaved sides 1.50x once, and up to
    2.26x in separate runs: the gate's machinery is what is tested here, not the machine)."""
    conf = asv_helpers.write_conf(tmp_path / "asv.conf.json", suite["repo"], tmp_path,
                                  benchmark_dir=str(suite["repo"] / "benchmarks"))
    env = dict(HOME=str(suite["home"]), **asv_helpers.TEST_ENV)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(capsys, "interleave", "--before", PYTHON_A, "--after", PYTHON_B, "--rounds", "2",
                             "--bench", OLD_BENCH, "--machine", MACHINE, "--config", str(conf), "--fail-above", "3")
    assert code == 0, err
    lines = err.splitlines()
    said = lines.index("funcbench interleave: the sides differ in nothing recorded (same environment facts)")
    assert said < lines.index(f"funcbench interleave: run 1/4: {PYTHON_A}")  # said before anything runs
    assert [line for line in err.splitlines() if line.startswith("funcbench interleave: run ")] == [
        f"funcbench interleave: run {n}/4: {side}" for n, side in ((1, PYTHON_A), (2, PYTHON_B), (3, PYTHON_B), (4, PYTHON_A))]
    manifest = json.loads((tmp_path / "results" / MACHINE / "funcbench-interleaved.json").read_text())
    commit = suite["new"]
    assert manifest[0]["sides"] == [[commit, suite["env_a"]], [commit, suite["env_b"]]]
    for env_name in (suite["env_a"], suite["env_b"]):
        data = json.loads((tmp_path / "results" / MACHINE / f"{commit[:8]}-{env_name}.json").read_text())
        row = data["results"]["benchmarks.ppl_simple_reg.time_op"]
        samples = [s for s in row[data["result_columns"].index("samples")] if s]
        assert len(samples) == 1 and len(samples[0]) >= 2 * 10  # two appended one-round runs, >= 10 samples each
    assert set(table(out)) == {FAST_CELL}


def test_interleave_bad_sides_get_one_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "interleave", "--before", "no-such-commit-or-python", "--after", "HEAD")
    assert code == 2 and err.count("\n") == 1 and "neither a python executable nor a commit" in err
    code, out, err = run_cli(capsys, "interleave", "--before", sys.executable, "--after", "HEAD")
    assert code == 2 and err.count("\n") == 1 and "not one of each" in err


def test_time_gate_refuses_sides_without_statistics(suite, capsys, tmp_path):
    report = tmp_path / "before.md"
    report.write_text(f"| model | task | mean | var |\n| -- | -- | -- | -- |\n| {FAST_CELL[0]} | vjp | 1.0 | 0.0 |\n")
    code, out, err = run_cli(capsys, "compare", "--results-dir", str(suite["results"]), "--before", str(report),
                             "--after", f"asv:/{suite['env_a']}", "--fail-above", "1.05")
    assert code == 2 and err.count("\n") == 1 and "no statistics" in err


def test_compare_marks_what_statistics_cannot_tell_apart(suite, capsys):
    # The same samples on both sides: Mann-Whitney finds no difference, every speedup gets '~'.
    spec = f"asv:{suite['new'][:8]}/{suite['env_a']}"
    code, out, err = run_cli(capsys, "compare", "--results-dir", str(suite["results"]), "--before", spec,
                             "--after", spec)
    assert code == 0, err
    rows = table(out)
    assert {key: cells[0] for key, cells in rows.items()} == {FAST_CELL: "~1.0", SLOW_CELL: "~1.0"}


def test_compare_asv_side_with_report_file(suite, capsys, tmp_path):
    report = tmp_path / "before.md"
    report.write_text(f"| model | task | mean | var |\n| -- | -- | -- | -- |\n| {FAST_CELL[0]} | vjp | 1.0 | 0.0 |\n")
    code, out, err = run_cli(capsys, "compare", "--results-dir", str(suite["results"]), "--before", str(report),
                             "--after", f"asv:/{suite['env_a']}")
    assert code == 0, err
    rows = table(out)
    assert not rows[FAST_CELL][0].startswith("~")  # no statistics on the report side: no mark
    assert rows[SLOW_CELL][:3] == ["None", "None", "None"]


# ------------------------------------------------------------------------- bad selections


def run_subprocess(*argv, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "funcbench", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, err, *needles):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def old_format_results(suite, tmp_path_factory):
    """A copy of the results in which the python3 environment's file claims results API 1."""
    results = tmp_path_factory.mktemp("old-format") / "results"
    shutil.copytree(suite["results"], results)
    path = results / MACHINE / suite["file_b"].name
    data = json.loads(path.read_text())
    data["version"] = 1
    path.write_text(json.dumps(data))
    return results, path


def test_bad_selections(suite, old_format_results, tmp_path):
    results = str(suite["results"])
    new = suite["new"][:8]
    cases = [
        (("report", "--results-dir", results, "--commit", "deadbeef"), ("deadbeef", new, suite["old"][:8])),
        (("report", "--results-dir", results, "--machine", "nobox"), ("nobox", MACHINE)),
        (("report", "--results-dir", results, "--environment", "conda"), ("conda", suite["env_a"], suite["env_b"])),
        (("report", "--results-dir", str(tmp_path / "missing")), ("missing",)),
        (("compare", "--results-dir", results, "--before", "asv:deadbeef", "--after", f"asv:{new}"),
         ("asv:deadbeef", new)),
        (("compare", "--results-dir", results, "--before", f"asv:{new}@nobox", "--after", f"asv:{new}"),
         ("nobox", MACHINE)),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((("report", "--results-dir", str(empty)), ("holds no results",)))
    old_results, old_file = old_format_results
    cases.append((("report", "--results-dir", str(old_results), "--environment", suite["env_b"]),
                  (old_file.name, "API version 1")))
    cases.append((("compare", "--results-dir", str(old_results), "--before", f"asv:{new}/{suite['env_a']}",
                   "--after", f"asv:{new}/{suite['env_b']}"), (old_file.name, "API version 1")))
    for argv, needles in cases:
        code, out, err = run_subprocess(*argv)
        assert_one_line_error(code, err, *needles)


def test_old_format_file_is_listed_and_skipped(old_format_results, suite, capsys):
    results, old_file = old_format_results
    code, out, err = run_cli(capsys, "report", "--list", "--results-dir", str(results))
    assert code == 0 and "UNUSABLE: asv results API version 1" in out
    code, out, err = run_cli(capsys, "report", "--results-dir", str(results), "--commit", suite["new"])
    assert code == 0 and suite["env_a"] in out  # the readable environment, with a note
    assert "skipped 1 unreadable" in err


def test_compare_names_what_differs_between_the_sides_besides_torch(suite, capsys, tmp_path):
    """The measured trap: one torch build on two interpreters (pyenv's 3.11.7, Debian's 3.11.2) read
    as a torch change. compare names every recorded difference and warns that it is not torch."""
    from funcbench.results import environment
    results = tmp_path / "results"
    shutil.copytree(suite["results"], results)
    mine = environment.probe(PYTHON_A)
    environment.record(results, MACHINE, suite["env_a"], mine)
    # The other side's interpreter differs from whichever runs the tests (Debian's 3.11.2 on CI too).
    other_version = "3.11.2" if mine.get("python") != "3.11.2" else "3.11.7"
    other_home = "/usr" if mine.get("python_home") != "/usr" else "/root/.pyenv/versions/3.11.7"
    environment.record(results, MACHINE, suite["env_b"], environment.Fingerprint(
        dict(mine.facts, python=other_version, python_home=other_home, python_binary="0123456789abcdef"),
        "recorded"))
    code, out, err = run_cli(capsys, "compare", "--results-dir", str(results), "--before",
                             f"asv:{suite['new'][:8]}/{suite['env_a']}", "--after", f"asv:{suite['new'][:8]}/bin_python3")
    assert code == 0, err
    lines = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith("funcbench compare")]
    assert f"python version: {mine.get('python')} -> {other_version}" in lines
    assert f"python installation: {mine.get('python_home')} -> {other_home}" in lines
    warning = next(line for line in lines if line.startswith("WARNING: the sides differ in 3 thing(s) besides the torch build"))
    assert "python version" in warning
    assert any("rows on both sides" in line and "the sides differ in 3 thing(s) besides the torch build" in line
               for line in lines)
