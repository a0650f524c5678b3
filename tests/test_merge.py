"""`funcbench merge-results` (funcbench/fleet/merge.py) on shard dirs made by real asv runs.

One temporary two-commit repository of this project (tests/asv_helpers.py), machine ``box``,
three ``asv run -E existing:PYTHON --set-commit-hash NEW --record-samples`` runs, each with a
results dir of its own (what ``funcbench shard`` does), instruction counting off, the wall clock:
- ``autograd``: ppl_simple_reg vjp time_op and Memory.peakmem_op of api autograd (the cuda
  parameter sets are selected too, and skipped: n/a, NaN);
- ``func``: the same of api func;
- ``again``: the autograd time_op once more, later (a duplicate with other samples).
The manifests (funcbench-shard.json) are written by the tests, on copies of those dirs.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from funcbench import commands
from funcbench.fleet import merge, merge_record
from funcbench.results import profiles, result_files, result_rows
from funcbench.catalogue.param_sets import ParamSet
from funcbench.results.manifest import ShardManifest

import asv_helpers  # noqa: E402  (tests/asv_helpers.py)
pytest.importorskip("asv")
from asv.results import Results, iter_results  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.asv]

MACHINE = "box"
PYTHON = str(Path(sys.executable).parent / "python")
ENV = "existing-py" + PYTHON.replace(os.sep, "_")
TIME = "benchmarks.ppl_simple_reg.time_op"
MEMORY = "benchmarks.Memory.peakmem_op"
CELL_BENCH = r"^benchmarks\.(ppl_simple_reg|Memory)\.(time_op|peakmem_op)\('ppl_simple_reg(', '|:)vjp(', '|:){}'"
BENCH = {"autograd": CELL_BENCH.format("autograd"), "func": CELL_BENCH.format("func"),
         "again": r"^benchmarks\.ppl_simple_reg\.time_op\('ppl_simple_reg', 'vjp', 'autograd'"}


def time_item(api, device="cpu", task="vjp"):
    return ParamSet(TIME, ("'ppl_simple_reg'", f"'{task}'", f"'{api}'", "'small'", f"'{device}'"))


def memory_item(api, device="cpu"):
    return ParamSet(MEMORY, (f"'ppl_simple_reg:vjp:{api}'", "'small'", f"'{device}'"))


def items(run):
    """What a run's --bench selected: its parameter sets on cpu (measured) and cuda (n/a)."""
    api = "autograd" if run == "again" else run
    found = [time_item(api, device) for device in ("cpu", "cuda")]
    return found + ([] if run == "again" else [memory_item(api, device) for device in ("cpu", "cuda")])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("merge")
    repo, home, (old, new) = asv_helpers.project_workspace(work)
    dirs = {}
    for run in ("autograd", "func", "again"):  # one asv run at a time
        dirs[run] = work / "runs" / run
        conf = asv_helpers.write_conf(work / f"{run}.conf.json", repo, work, benchmark_dir=str(repo / "benchmarks"),
                                      results_dir=dirs[run])
        asv_helpers.add_machine(conf, MACHINE, home)
        asv_helpers.run_existing(conf, PYTHON, new, MACHINE, home, bench=BENCH[run],
                                 env={"FUNCBENCH_INSTRUCTIONS": "none", "FUNCBENCH_CLOCKS": "wall"})
    return dict(work=work, repo=repo, home=home, old=old, new=new, dirs=dirs)


def shard(runs, dest, run, index, shards, plan="plan-a", planned=None, finished=None, **changes):
    """A copy of a run's results dir as shard ``index`` of ``shards``, with its manifest."""
    shutil.copytree(runs["dirs"][run], dest)
    planned = items(run) if planned is None else planned
    finished = [(item, runs["new"], ENV) for item in planned] if finished is None else finished
    fields = dict(shard=index, shards=shards, plan=plan, machine=MACHINE, commits=[runs["new"]],
                  asv_args=["-E", f"existing:{PYTHON}"], planned=planned, seconds=10.0, finished=finished,
                  started="2026-11-28T10:00:00+00:00", ended="2026-11-28T10:01:00+00:00")
    ShardManifest(**{**fields, **changes}).write(dest)
    return dest


def result_file(folder):
    found = [p for p in (Path(folder) / MACHINE).glob("*.json") if result_files.is_result_file(p.name)]
    assert len(found) == 1, found
    return found[0]


def measured(folder):
    """asv's name of each measured parameter set -> (value, stats, samples), read by funcbench's reader."""
    rows = result_rows.read_rows(str(folder), str(result_file(folder)), MACHINE)
    return {row.name: (row.value, row.stats, row.samples) for row in rows if row.measured}


def cli_run(capsys, *argv):
    code = commands.main(["merge-results", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def edit_json(path, change):
    data = json.loads(path.read_text())  # Python's json: asv writes NaN bare
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def two(runs, tmp_path):
    """The autograd and func runs as shards 1 and 2 of one plan."""
    return [shard(runs, tmp_path / "s1", "autograd", 1, 2), shard(runs, tmp_path / "s2", "func", 2, 2)]


def test_merged_rows_are_the_union_of_the_shards(runs, two, tmp_path, capsys):
    into = tmp_path / "results"
    # funcbench's own records beside asv's results are no results: left out, not an error.
    (two[0] / MACHINE / "funcbench-environments.json").write_text("{}")
    code, out, err = cli_run(capsys, *two, "--into", into)
    assert code == 0, err
    expected = {**measured(two[0]), **measured(two[1])}
    assert set(measured(two[0])).isdisjoint(measured(two[1]))
    assert len(expected) == 4  # time and peak memory of both apis, cpu
    assert measured(into) == expected
    # The file asv would write for this commit and environment; asv loads it, and finds nothing else.
    path = into / MACHINE / f"{runs['new'][:8]}-{ENV}.json"
    assert result_file(into) == path and f"wrote {path}" in out
    loaded = list(iter_results(str(into)))
    assert [(r.commit_hash, r.env_name) for r in loaded] == [(runs["new"], ENV)]
    # Per benchmark (each ran in both shards): the latest start, the durations summed.
    parts = [Results.load(str(result_file(d)), MACHINE) for d in two]
    for name in (TIME, MEMORY):
        assert loaded[0].started_at[name] == max(p.started_at[name] for p in parts)
        assert loaded[0].duration[name] == pytest.approx(sum(p.duration[name] for p in parts), rel=1e-4)
    assert loaded[0].duration["<build>"] == pytest.approx(sum(p.duration["<build>"] for p in parts), rel=1e-4)
    # The n/a (cuda) parameter sets stay NaN; benchmarks.json and machine.json are the shards'.
    params = loaded[0].get_result_params(TIME)
    values = dict(zip(itertools.product(*params), loaded[0].get_result_value(TIME, params)))
    assert values[time_item("func", "cuda").params] != values[time_item("func", "cuda").params]
    assert json.loads((into / "benchmarks.json").read_text()) == json.loads((two[0] / "benchmarks.json").read_text())
    assert (into / MACHINE / "machine.json").read_text() == (two[0] / MACHINE / "machine.json").read_text()
    assert (into / merge_record.RECORD).exists() and not list(into.rglob("*.bak"))


def test_merged_tree_reads_like_one_run(runs, two, tmp_path, capsys):
    """asv publish and asv compare on it, and funcbench report."""
    into = tmp_path / "results"
    assert cli_run(capsys, *two, "--into", into)[0] == 0
    conf = asv_helpers.write_conf(tmp_path / "asv.conf.json", runs["repo"], tmp_path,
                                  benchmark_dir=str(runs["repo"] / "benchmarks"), results_dir=into)
    asv_helpers.asv(conf, "publish", home=runs["home"])
    index = json.loads((tmp_path / "html" / "index.json").read_text())
    assert TIME in index["benchmarks"] and MACHINE in index["params"]["machine"]
    graphs = list((tmp_path / "html" / "graphs").glob(f"branch-main/machine-{MACHINE}/*/{TIME}.json"))
    assert len(graphs) == 1, graphs
    # One point per commit; both apis' cpu values (parameter sets) in it.
    points = json.loads(graphs[0].read_text())
    assert len(points) == 1 and sum(v == v and v is not None for v in points[0][1]) == 2
    out = asv_helpers.asv(conf, "compare", runs["new"], runs["new"], "--machine", MACHINE, home=runs["home"])
    assert "ppl_simple_reg" in out and "func" in out and "autograd" in out
    code = commands.main(["report", "--results-dir", str(into)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "| ppl_simple_reg[small] | vjp |" in out and "| ppl_simple_reg[small] | functorch vjp |" in out


def test_identical_duplicate_is_kept_once(runs, tmp_path, capsys):
    dirs = [shard(runs, tmp_path / "s1", "autograd", 1, 2), shard(runs, tmp_path / "s2", "autograd", 2, 2)]
    into = tmp_path / "results"
    outcome = merge.merge(into, dirs, log=lambda line: None)
    assert outcome.replaced == [] and outcome.unfinished == []
    assert measured(into) == measured(dirs[0])


def test_conflicting_duplicate_refused_or_latest(runs, tmp_path, capsys):
    dirs = [shard(runs, tmp_path / "s1", "autograd", 1, 2), shard(runs, tmp_path / "s2", "again", 2, 2)]
    into = tmp_path / "results"
    name = time_item("autograd").name
    assert measured(dirs[0])[name] != measured(dirs[1])[name]
    code, out, err = cli_run(capsys, *dirs, "--into", into)
    assert code == 2 and err.count("\n") == 1 and err.startswith("funcbench merge-results: error: ")
    assert name in err and "--on-duplicate latest" in err and not into.exists()
    code, out, err = cli_run(capsys, *dirs, "--into", into, "--on-duplicate", "latest")
    assert code == 0, err
    rows = measured(into)
    assert rows[name] == measured(dirs[1])[name]  # the `again` run started later
    assert rows[memory_item("autograd").name] == measured(dirs[0])[memory_item("autograd").name]
    assert f"{name} at commit {runs['new'][:8]}" in out and "later run" in out


def test_unfinished_planned_items_are_named(runs, tmp_path, capsys):
    missing = time_item("func", task="jvp")
    dirs = [shard(runs, tmp_path / "s1", "autograd", 1, 2),
            # shard 2 died before its manifest said what finished, and had planned one more item
            shard(runs, tmp_path / "s2", "func", 2, 2, planned=items("func") + [missing], finished=[], ended=None)]
    into = tmp_path / "results"
    code, out, err = cli_run(capsys, *dirs, "--into", into)
    assert code == 1
    assert "3 planned parameter set(s) did not finish" in err
    # Measured items count from the results; the skipped (NaN) cuda ones only from the manifest.
    named = {line.removeprefix("not finished: ") for line in out.splitlines() if line.startswith("not finished: ")}
    assert named == {f"{item.name} (shard 2, commit {runs['new'][:8]})"
                     for item in (missing, time_item("func", "cuda"), memory_item("func", "cuda"))}
    assert measured(into) == {**measured(dirs[0]), **measured(dirs[1])}  # merged all the same


def test_existing_file_kept_as_bak_and_own_file_replaced(runs, two, tmp_path, capsys):
    into = tmp_path / "results"
    target = into / MACHINE / result_file(runs["dirs"]["again"]).name
    target.parent.mkdir(parents=True)
    shutil.copy(result_file(runs["dirs"]["again"]), target)  # e.g. an `asv run` of this commit
    before = target.read_bytes()
    outcome = merge.merge(into, two, log=lambda line: None)
    assert outcome.written[-1] == target and len(outcome.kept_as_bak) == 1
    bak = outcome.kept_as_bak[0]
    assert bak.read_bytes() == before and bak.name.startswith(target.name + ".") and bak.name.endswith("Z.bak")
    # Merging the same plan again replaces what the merge wrote: no second .bak.
    assert merge.merge(into, two, log=lambda line: None).kept_as_bak == []
    # Once something else changed it, it is kept again; so is the file of another plan.
    edit_json(target, lambda data: data["durations"].update({"<build>": 1.0}))
    lines = []
    assert len(merge.merge(into, two, log=lines.append).kept_as_bak) == 1
    assert any(line.startswith(f"kept {target} as ") for line in lines)
    other = [shard(runs, tmp_path / f"b{i}", run, i, 2, plan="plan-b") for i, run in ((1, "autograd"), (2, "func"))]
    assert len(merge.merge(into, other, log=lambda line: None).kept_as_bak) == 1
    assert len(list(target.parent.glob("*.bak"))) == 3
    assert measured(into) == {**measured(two[0]), **measured(two[1])}


def make_case(case, runs, tmp_path):
    """Shard dirs, ``into`` and the words the error line must hold, for one kind of bad input."""
    s1 = shard(runs, tmp_path / "s1", "autograd", 1, 2)
    s2 = tmp_path / "s2"
    into = tmp_path / "results"
    if case == "no manifest":
        shutil.copytree(runs["dirs"]["func"], s2)
        return [s1, s2], into, [str(s2), "funcbench-shard.json"]
    if case == "missing shard":
        return [s1], into, ["shard(s) 2 of 2 missing"]
    if case == "shard twice":
        return [s1, shard(runs, s2, "func", 1, 2)], into, ["shard 1 given twice"]
    if case == "another plan":
        return [s1, shard(runs, s2, "func", 2, 2, plan="plan-b")], into, ["plan", "not shards of one plan"]
    if case == "another commit":
        return [s1, shard(runs, s2, "func", 2, 2, commits=[runs["old"]])], into, [runs["old"][:8], "commits"]
    if case == "results of another commit":
        dirs = [shard(runs, tmp_path / f"c{i}", run, i, 2, commits=[runs["old"]])
                for i, run in ((1, "autograd"), (2, "func"))]
        return dirs, into, [runs["new"][:8], "does not name"]
    shard(runs, s2, "func", 2, 2)
    if case == "another machine":
        edit_json(s2 / MACHINE / "machine.json", lambda data: data.update(cpu="another cpu"))
        return [s1, s2], into, [f"machine {MACHINE} differs", "cpu"]
    if case == "another benchmark version":
        edit_json(s2 / "benchmarks.json", lambda data: data[TIME].update(version="7"))
        return [s1, s2], into, [TIME, "version"]
    if case == "another environment header":
        edit_json(result_file(s2), lambda data: data.update(requirements={"torch": "2.13.0"}))
        return [s1, s2], into, ["requirements", ENV]
    if case == "shard inside into":
        inside = into / "shards" / "s2"
        shutil.move(s2, inside)
        return [s1, inside], into, ["is inside", str(inside)]
    if case == "into inside a shard":
        return [s1, s2], s1 / "merged", ["is inside", "merge into a dir outside"]
    if case == "into with another benchmark version":
        into.mkdir()
        shutil.copy(s1 / "benchmarks.json", into / "benchmarks.json")
        edit_json(into / "benchmarks.json", lambda data: data[MEMORY].update(version="0"))
        return [s1, s2], into, [MEMORY, "version"]
    raise AssertionError(case)


CASES = ["no manifest", "missing shard", "shard twice", "another plan", "another commit", "results of another commit",
         "another machine", "another benchmark version", "another environment header", "shard inside into",
         "into inside a shard", "into with another benchmark version"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_nothing_overwritten(case, runs, tmp_path, capsys):
    dirs, into, words = make_case(case, runs, tmp_path)
    into.mkdir(parents=True, exist_ok=True)
    (into / "keep.txt").write_text("untouched\n")
    before = {d: snapshot(d) for d in [*dirs, into]}
    code, out, err = cli_run(capsys, *dirs, "--into", into)
    assert code == 2 and err.count("\n") == 1 and err.startswith("funcbench merge-results: error: "), err
    for word in words:
        assert word in err, (word, err)
    assert {d: snapshot(d) for d in [*dirs, into]} == before


def test_the_counts_profiles_are_carried_cell_by_cell(runs, two, tmp_path, capsys):
    """Each shard counted its own cells: one filed beside its results, one left unfiled (a plain asv run)."""
    def kept(cell, total):
        return profiles.ProfileFile(runs["new"], ENV, {f"{cell} small": profiles.CellProfile(
            total, {profiles.Function("at::native::add", "???", "/env/libtorch_cpu.so"): total})})
    kept("ppl_simple_reg:vjp:autograd", 100).write(profiles.filed_path(two[0], MACHINE, runs["new"], ENV))
    unfiled = kept("ppl_simple_reg:vjp:func", 200)
    unfiled.write(two[1] / profiles.UNFILED / unfiled.name)
    into = tmp_path / "results"
    code, out, err = cli_run(capsys, *two, "--into", into)
    assert code == 0, err
    merged = profiles.for_result(into, MACHINE, runs["new"], ENV)
    assert {k: p.total for k, p in merged.cells.items()} == {"ppl_simple_reg:vjp:autograd small": 100,
                                                            "ppl_simple_reg:vjp:func small": 200}
    assert f"wrote {profiles.filed_path(into, MACHINE, runs['new'], ENV)} (2 counted" in out
