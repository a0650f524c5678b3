"""`funcbench shard`: what is sharded, how it is planned, and one run of three shards (Slurm,
GitLab and Kubernetes variables set as those engines set them) merged, against one asv run of
the same selection: the same parameter sets, and every instruction count identical."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import asv_helpers
from funcbench import commands
from funcbench.catalogue import config, cost_table, tools
from funcbench.fleet import engines, main_job, shard_plan, shard_run
from funcbench.catalogue.config import RunSettings
from funcbench.catalogue.param_sets import ParamSet
from funcbench.results.manifest import ShardManifest

BENCHMARKS = [  # (name, param names, params as asv writes them): a miniature suite
    ("benchmarks.multiheadattn.time_cpu_op", ["model", "task", "api", "preset", "device"],
     [["'multiheadattn'"], ["'vjp'", "'jvp'", "'hessian'"], ["'autograd'", "'func'"], ["'small'"], ["'cpu'", "'cuda'"]]),
    ("benchmarks.Instructions.track_instructions", ["cell", "preset", "device"],
     [["'multiheadattn:vjp:autograd'", "'resnet18:vjp:autograd'"], ["'small'"], ["'cpu'", "'cuda'"]]),
]


def test_items_are_what_the_run_measures_selected_as_asv_selects():
    found = shard_plan.items(RunSettings(), benchmarks=BENCHMARKS)
    names = [item.name for item in found]
    assert names == sorted(names)
    # hessian is no default task of multiheadattn; cuda is not this run's device; resnet18 is not counted by
    # default (the light tier is)
    assert names == [
        "benchmarks.Instructions.track_instructions('multiheadattn:vjp:autograd', 'small', 'cpu')",
        "benchmarks.multiheadattn.time_cpu_op('multiheadattn', 'jvp', 'autograd', 'small', 'cpu')",
        "benchmarks.multiheadattn.time_cpu_op('multiheadattn', 'jvp', 'func', 'small', 'cpu')",
        "benchmarks.multiheadattn.time_cpu_op('multiheadattn', 'vjp', 'autograd', 'small', 'cpu')",
        "benchmarks.multiheadattn.time_cpu_op('multiheadattn', 'vjp', 'func', 'small', 'cpu')"]
    # --bench narrows, matched against name(params) as asv matches it
    assert [i.name for i in shard_plan.items(RunSettings(), [r"'func'"], BENCHMARKS)] == [names[2], names[4]]
    # what one machine lacks never changes the plan: every runner makes the same
    assert shard_plan.items(RunSettings(), benchmarks=BENCHMARKS) == found


def test_plan_is_longest_first_onto_the_least_loaded_shard_and_deterministic():
    work = [ParamSet(f"b.{c}", ()) for c in "abcdefg"]
    costs = {"b.a": 10, "b.b": 9, "b.c": 8, "b.d": 3, "b.e": 3, "b.f": 1}  # b.g unknown: the median, 5.5
    plan = shard_plan.plan(work, 3, costs)
    # a 10 -> 1, b 9 -> 2, c 8 -> 3, g 5.5 -> 3 (8), d 3 -> 2 (9), e 3 -> 1 (10), f 1 -> 2 (12): equal costs by name
    assert [[i.benchmark for i, _ in s] for s in plan.shards] == [["b.a", "b.e"], ["b.b", "b.d", "b.f"], ["b.c", "b.g"]]
    assert plan.seconds == [13, 13, 13.5] and plan.unknown == 1
    assert shard_plan.plan(list(reversed(work)), 3, costs).shards == plan.shards  # the order given does not matter
    assert shard_plan.plan(work, 3, costs).digest == plan.digest
    every = sorted(i for s in plan.shards for i, _ in s)
    assert every == sorted(work)  # each item in exactly one shard
    assert max(plan.seconds) <= 1.3 * sum(plan.seconds) / 3
    assert shard_plan.plan(work[:2], 3, costs).shards[2] == []  # more shards than items: an empty shard


def test_the_committed_cost_table_balances_the_default_suite_over_three_shards():
    work = shard_plan.items(RunSettings())
    plan = shard_plan.plan(work, 3, cost_table.read()[0])
    mean = sum(plan.seconds) / 3
    assert plan.unknown == 0, "regenerate the cost table: funcbench shard-costs (docs/past-one-machine.md)"
    assert max(plan.seconds) <= 1.3 * mean


def _selected(part, names):
    return {n for n in names if any(__import__("re").search(regex, n) for regex in part.bench)}


def test_cost_table_update_keeps_the_rest_and_rescales_to_the_tables_machine(tmp_path):
    table = tmp_path / "costs.json"
    cost_table.write({"a": 1.0, "b": 2.0}, [Path("reference.json")], table, calibration_s=0.01)
    # the added run's machine was twice as slow: its seconds count half on the table's machine
    cost_table.update({"b": 4.0, "c": 6.0}, [Path("medium.json")], table, calibration_s=0.02)
    data = json.loads(table.read_text())
    assert data["seconds"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert data["calibration_s"] == 0.01 and data["sources"] == ["reference.json", "medium.json"]
    with pytest.raises(cost_table.CostTableError, match="cannot read the cost table"):
        cost_table.update({"c": 1.0}, [], tmp_path / "none.json", 0.01)


def test_main_job_runs_the_whole_selection_where_it_fits_and_the_counts_then_the_time_series_where_not():
    work = shard_plan.items(RunSettings(), benchmarks=BENCHMARKS)
    names = [i.name for i in work]
    counts, times = names[0], names[1:]
    costs = {counts: 100.0, **{name: 10.0 for name in times}}  # 140 s of parameter sets
    whole = main_job.ASV_RUN_S + 140
    runs, left_out = main_job.main_job(RunSettings(), whole, costs, benchmarks=BENCHMARKS)
    assert [r.name for r in runs] == ["the whole suite"] and left_out == [] and runs[0].seconds == whole
    # the one regex selects what the run measures and nothing of the other device
    everything = [f"{b}({', '.join(c)})" for b, _, params in BENCHMARKS for c in __import__("itertools").product(*params)]
    assert _selected(runs[0], everything) >= set(names) and not any("'cuda'" in n for n in _selected(runs[0], everything))

    # twice as slow a machine: the counts (220 s) run although they do not fit; then nothing else does
    runs, left_out = main_job.main_job(RunSettings(), whole, costs, speed=2.0, benchmarks=BENCHMARKS)
    assert [(r.name, r.part) for r in runs] == [("instruction counts", "instruction counts")]
    assert [r.name for r in left_out] == ["time"]
    assert _selected(runs[0], names) == {counts} and _selected(left_out[0], names) == set(times)
    assert runs[0].seconds == main_job.ASV_RUN_S + 200

    # planned again after the counts ran, with what is really left: as many time parameter sets as
    # fit, in name order; the rest named
    runs, left_out = main_job.main_job(RunSettings(), main_job.ASV_RUN_S + 25, costs, benchmarks=BENCHMARKS,
                                    done=["instruction counts"])
    assert [(r.name, r.part) for r in runs] == [("time (2 of 4 parameter sets)", "time")]
    assert _selected(runs[0], names) == set(times[:2]) and runs[0].seconds == main_job.ASV_RUN_S + 20
    assert [(r.name, r.part) for r in left_out] == [("time (the other 2)", "time")]
    assert _selected(left_out[0], names) == set(times[2:])
    # every parameter set of the parts not done planned once: run now or named as left out
    planned = [n for part in runs + left_out for n in _selected(part, names)]
    assert sorted(planned) == sorted(times)
    # everything done: nothing to run, nothing left out
    assert main_job.main_job(RunSettings(), 1e6, costs, benchmarks=BENCHMARKS, done=["instruction counts", "time"]) == ([], [])
    with pytest.raises(main_job.MainJobError, match="no main-job part 'counts'"):
        main_job.main_job(RunSettings(), 1e6, costs, benchmarks=BENCHMARKS, done=["counts"])


def test_main_job_command_prints_the_plan_as_json(capsys, monkeypatch):
    monkeypatch.chdir(config.ROOT)
    assert commands.main(["main-job", "--seconds-left", "100000"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in plan["runs"]] == ["the whole suite"] and plan["left_out"] == []
    assert plan["runs"][0]["items"] == len(shard_plan.items(RunSettings())) and 0.2 < plan["speed"] < 5
    assert commands.main(["main-job", "--seconds-left", "100000", "--costs", "no-such-table.json"]) == 2
    assert "cannot read the cost table" in capsys.readouterr().err
    assert commands.main(["main-job", "--seconds-left", "100000", "--done", "instruction counts", "--done", "time"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [r["part"] for r in plan["runs"]] == ["compile seconds", "peak memory and cost ratio"]
    assert commands.main(["main-job", "--seconds-left", "100", "--done", "nothing"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_main_job_never_plans_faster_than_the_tables_machine(capsys, tmp_path, monkeypatch):
    """A calibration faster than the table's (another interpreter) planned the whole suite into a
    main job of 1,082 s; a slower one still scales the plan up."""
    monkeypatch.chdir(config.ROOT)
    table = json.loads(cost_table.COSTS.read_text())
    speeds = {}
    for name, reference in (("slow reference", 1000.0), ("fast reference", 1e-9)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(dict(table, calibration_s=reference)))
        assert commands.main(["main-job", "--seconds-left", "600", "--costs", str(path)]) == 0
        speeds[name] = json.loads(capsys.readouterr().out)["speed"]
    assert speeds["slow reference"] == 1.0 and speeds["fast reference"] > 1000


def test_asv_run_arguments_are_read_by_asvs_own_parser():
    args = shard_run.read_run_args(["HEAD^!", "--machine", "box", "-b", "ppl", "--bench=Memory", "--record-samples"])
    assert args.args == ("HEAD^!", "--machine", "box", "--record-samples") and args.bench == ("ppl", "Memory")
    assert args.machine == "box" and args.range_spec == "HEAD^!"
    with pytest.raises(shard_run.ShardError, match="asv run does not take"):
        shard_run.read_run_args(["--no-such-option"])


@pytest.mark.parametrize("argv, words", [
    (["shard", "4/3", "--results-dir", "x", "--", "HEAD^!"], "4/3"),
    (["shard", "auto", "--results-dir", "x", "--", "HEAD^!"], "auto"),
    (["shard", "1/2", "--results-dir", "results/shard-1", "--", "HEAD^!"], "inside asv's results folder"),
    (["shard", "1/2", "--", "HEAD^!"], "--results-dir DIR is needed"),
    (["shard", "1/2", "--results-dir", "x", "--", "NEW"], "a shard cannot run NEW"),
    (["shard", "1/2", "--results-dir", "x", "--", "HEAD^!", "-b", "no-such-benchmark"], "nothing to shard"),
    (["shard-costs", "no-such-results.json"], "no results file"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(config.ROOT)
    for name in [n for engine in engines.ENGINES for n in engine.variables] + ["SLURM_ARRAY_TASK_MIN",
                                                                              "SLURM_ARRAY_TASK_STEP"]:
        monkeypatch.delenv(name, raising=False)
    assert commands.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (config.ROOT / "results" / "shard-1").exists() and not (config.ROOT / "x").exists()


def test_print_plan_names_every_shards_items_and_seconds(capsys, monkeypatch):
    monkeypatch.chdir(config.ROOT)
    assert commands.main(["shard", "2/3", "--print-plan", "--", "HEAD^!", "-b", r"ppl_simple_reg\.time_cpu_op"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan ") and "19 parameter sets over 3 shards" in out  # every task of both eager APIs, less func's jacobian
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("shard ")] == ["shard 1/3", "shard 2/3",
                                                                                                "shard 3/3"]


# ------------------------------------------------------------------ one run, three engines

needs_valgrind = pytest.mark.skipif(tools.valgrind_unavailable_reason() is not None,
                                    reason=str(tools.valgrind_unavailable_reason()))
# Two counted cells (the only valgrind work), their two time cells, and one peak memory.
SELECTION = (r"^benchmarks\.(Instructions\.track_instructions|ppl_simple_reg\.time_cpu_op|Memory\.peakmem_op)"
             r"\('ppl_simple_reg(:|', ')(vjp|jvp)(:|', ')autograd'")
# Shard I of 3 on a different engine each, with the variables that engine sets: every one of them
# must give the same plan and its own part of it.
ENGINES = [
    ("Slurm", dict(SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="3", SLURM_ARRAY_TASK_MIN="1",
                   SLURM_ARRAY_TASK_MAX="3", SLURM_ARRAY_TASK_STEP="1"), []),
    ("GitLab", dict(CI_NODE_INDEX="2", CI_NODE_TOTAL="3"), []),  # 1-based
    ("Kubernetes", dict(JOB_COMPLETION_INDEX="2"), ["--shards", "3"]),  # 0-based, no count variable
]


@needs_valgrind
@pytest.mark.slow
@pytest.mark.valgrind
@pytest.mark.asv
def test_three_shards_merged_equal_one_run(tmp_path, capsys, monkeypatch, unsharded):
    repo, conf, home, commit, whole = unsharded
    monkeypatch.setenv("HOME", str(home))
    for name, value in asv_helpers.TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FUNCBENCH_INSTRUCTIONS")  # the default (light) selection, which each shard narrows
    python = sys.executable
    dirs = []
    for index, (engine, variables, extra) in enumerate(ENGINES, start=1):
        with monkeypatch.context() as engine_env:
            for name, value in variables.items():
                engine_env.setenv(name, value)
            dirs.append(tmp_path / f"shard-{index}")
            argv = ["shard", "auto", *extra, "--results-dir", str(dirs[-1]), "--config", str(conf), "--",
                    "-E", f"existing:{python}", "--set-commit-hash", commit, "--machine", "box", "--record-samples",
                    "--bench", SELECTION]
            assert commands.main(argv) == 0, capsys.readouterr().err
        manifest = ShardManifest.read(dirs[-1])
        assert (manifest.shard, manifest.shards) == (index, 3)
        assert len(manifest.finished) == len(manifest.planned)
    merged = tmp_path / "merged"
    assert commands.main(["merge-results", "--into", str(merged), *map(str, dirs)]) == 0, capsys.readouterr().err
    ours = _measured(merged)
    assert set(ours) == set(whole) and len(ours) == 6
    for name, value in whole.items():
        if "track_instructions" in name:
            assert ours[name] == value, name  # identical, whichever shard counted it, with whatever else


def _measured(results_dir: Path) -> dict:
    from funcbench.results import result_rows
    out = {}
    for path in sorted((results_dir / "box").glob("*.json")):
        if path.name == "machine.json":
            continue
        for row in result_rows.read_rows(str(results_dir), str(path), "box"):
            if row.measured:
                out[row.name] = row.value
    return out


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    """One asv run of the selection: the reference the shards must equal."""
    work = tmp_path_factory.mktemp("shard")
    repo, home, (_, commit) = asv_helpers.project_workspace(work)
    conf = asv_helpers.write_conf(work / "asv.conf.json", repo, work)
    asv_helpers.add_machine(conf, "box", home)
    counted = "ppl_simple_reg:vjp:autograd,ppl_simple_reg:jvp:autograd"  # both counted in one run, together
    asv_helpers.asv(conf, "run", "-E", f"existing:{sys.executable}", "--set-commit-hash", commit, "--machine", "box",
                    "--record-samples", "--bench", SELECTION, home=home,
                    env={**asv_helpers.TEST_ENV, "FUNCBENCH_INSTRUCTIONS": counted})
    whole = _measured(work / "results")
    assert len(whole) == 6, whole
    return repo, conf, home, commit, whole
