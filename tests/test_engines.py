"""funcbench.fleet.engines: which shard a process is, from I/N or from a CI engine's variables (auto).

Every engine's tasks, simulated as the engine numbers them (tests/engine_sim.py), must come out
as shards 1..N, each once; every bad input is one ShardSpecError line naming what is wrong."""
import random

import pytest

from funcbench.fleet import engines
from funcbench.fleet.engines import ENGINES, Shard, ShardSpecError, shard_spec

import engine_sim  # noqa: E402  (tests/engine_sim.py)

ENGINE_ENVS = {
    "GitLab parallel": engine_sim.gitlab_envs,
    "CircleCI": engine_sim.circleci_envs,
    "AWS Batch array job": engine_sim.aws_batch_envs,
    "Buildkite": engine_sim.buildkite_envs,
}
COUNTED = [e for e in ENGINES if e.count_var is not None and e.name in ENGINE_ENVS]
KUBERNETES = next(e for e in ENGINES if e.index_var == "JOB_COMPLETION_INDEX")
SLURM = next(e for e in ENGINES if e.index_var == "SLURM_ARRAY_TASK_ID")


def refused(text, environ=None, shards=None, names=()):
    """The one-line message of the ShardSpecError that shard_spec raises; it names ``names``."""
    with pytest.raises(ShardSpecError) as info:
        shard_spec(text, environ={} if environ is None else environ, shards=shards)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    for name in names:
        assert name in message, (name, message)
    return message


def shards_of(envs, shards=None):
    return [shard_spec("auto", environ=env, shards=shards) for env in envs]


def assert_each_once(found, count):
    assert sorted(s.index for s in found) == list(range(1, count + 1))
    assert {s.count for s in found} == {count}


def test_engine_table_matches_the_brief():
    table = {e.name: (e.index_var, e.count_var) for e in ENGINES}
    assert table == {
        "Slurm job array": ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
        "Kubernetes Indexed Job": ("JOB_COMPLETION_INDEX", None),
        "GitLab parallel": ("CI_NODE_INDEX", "CI_NODE_TOTAL"),
        "CircleCI": ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL"),
        "AWS Batch array job": ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
        "Buildkite": ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT"),
    }
    assert {e.name: e.base for e in COUNTED} == {"GitLab parallel": 1, "CircleCI": 0, "AWS Batch array job": 0,
                                                 "Buildkite": 0}


# --- I/N -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, index, count", [("1/1", 1, 1), ("2/3", 2, 3), ("3/3", 3, 3), (" 2 / 3 ", 2, 3),
                                                ("10/12", 10, 12)])
def test_explicit(text, index, count):
    shard = shard_spec(text, environ={})
    assert (shard.index, shard.count, str(shard)) == (index, count, f"{index}/{count}")
    assert shard.source == f"command line ({index}/{count})"


def test_explicit_ignores_the_environment():
    assert shard_spec("1/2", environ={"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "5"}) == \
        Shard(1, 2, "command line (1/2)")


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "0/0"])
def test_explicit_out_of_range(text):
    assert "1 <= I <= N" in refused(text, names=[repr(text)])


@pytest.mark.parametrize("text", ["a/b", "3", "", "1/3/5", "-1/3", "+1/3", "1.0/3", "\uff11/3", "1 of 3",
                                  "2/3\nrm -rf /", "x" * 500])
def test_explicit_not_a_shard(text):
    message = refused(text, names=["I/N", "auto"])
    assert len(message) < 300


def test_explicit_and_shards():
    assert shard_spec("2/3", environ={}, shards=3).count == 3
    refused("2/3", shards=4, names=["--shards 4", "2/3"])


@pytest.mark.parametrize("shards", [0, -1, True, 2.5, "3"])
def test_bad_shards_value(shards):
    refused("1/1", shards=shards, names=["--shards"])
    refused("auto", environ=engine_sim.kubernetes_envs(1)[0], shards=shards, names=["--shards"])


@pytest.mark.parametrize("text", ["auto", "AUTO", " auto "])
def test_auto_spelling(text):
    assert shard_spec(text, environ=engine_sim.gitlab_envs(2)[1]) == \
        Shard(2, 2, "GitLab parallel (CI_NODE_INDEX=2, CI_NODE_TOTAL=2)")


# --- engines with an index and a count --------------------------------------------------------

@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
@pytest.mark.parametrize("count", [1, 3, 7])
def test_every_task_of_an_engine_is_one_shard(engine, count):
    envs = ENGINE_ENVS[engine.name](count)
    found = shards_of(envs)
    assert_each_once(found, count)
    for env, shard in zip(envs, found):  # base 0 or 1, normalised to 1-based
        assert shard.index == int(env[engine.index_var]) - engine.base + 1
        assert shard.source.startswith(engine.name) and engine.index_var in shard.source


def test_zero_and_one_based():
    assert shard_spec("auto", environ={"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}).index == 1
    assert shard_spec("auto", environ={"CIRCLE_NODE_INDEX": "1", "CIRCLE_NODE_TOTAL": "3"}).index == 2
    assert shard_spec("auto", environ={"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}).index == 1
    assert shard_spec("auto", environ={"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}).index == 3
    assert shard_spec("auto", environ={"JOB_COMPLETION_INDEX": "0"}, shards=3).index == 1
    refused("auto", {"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, names=["CI_NODE_INDEX=0", "counts from 1"])
    refused("auto", {"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "3"}, names=["CIRCLE_NODE_INDEX=3", "0..2"])


@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
def test_index_out_of_range(engine):
    too_far = engine.base + 3
    refused("auto", {engine.index_var: str(too_far), engine.count_var: "3"},
            names=[f"{engine.index_var}={too_far}", engine.count_var, "out of range"])
    refused("auto", {engine.index_var: "1", engine.count_var: "0"}, names=[f"{engine.count_var}=0"])


@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
def test_index_without_count(engine):
    refused("auto", {engine.index_var: "1"}, names=[engine.index_var, engine.count_var, "I/N"])
    refused("auto", {engine.index_var: "1", engine.count_var: ""}, names=[engine.count_var])


@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
def test_count_without_index_is_no_engine(engine):
    # GitLab sets CI_NODE_TOTAL=1 in every job, CI_NODE_INDEX only in parallel: jobs.
    refused("auto", {engine.count_var: "1"}, names=["no shard variables"])
    refused("auto", {engine.index_var: "", engine.count_var: "3"}, names=["no shard variables"])


BAD_NUMBERS = ["x", "1.0", "-1", "0x1", "1e2", "\u0661", "2\n3", "1_0", "NaN", " "]


@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_not_a_number(engine, value):
    good = ENGINE_ENVS[engine.name](3)[0]
    refused("auto", dict(good, **{engine.index_var: value}), names=[engine.index_var, "whole number"])
    refused("auto", dict(good, **{engine.count_var: value}), names=[engine.count_var, "whole number"])


def test_whitespace_around_a_number_is_fine():
    assert shard_spec("auto", environ={"CIRCLE_NODE_INDEX": " 1 ", "CIRCLE_NODE_TOTAL": "3\n"}).index == 2


@pytest.mark.parametrize("engine", COUNTED, ids=lambda e: e.name)
def test_shards_must_agree_with_the_engine(engine):
    env = ENGINE_ENVS[engine.name](3)[1]
    assert shard_spec("auto", environ=env, shards=3).index == 2
    refused("auto", env, shards=4, names=["--shards 4", f"{engine.count_var}=3"])


# --- Kubernetes: no count variable ------------------------------------------------------------

@pytest.mark.parametrize("completions", [1, 3, 8])
def test_kubernetes_indexed_job(completions):
    found = shards_of(engine_sim.kubernetes_envs(completions), shards=completions)
    assert_each_once(found, completions)
    assert found[0].source == f"Kubernetes Indexed Job (JOB_COMPLETION_INDEX=0, --shards {completions})"


def test_kubernetes_needs_shards():
    message = refused("auto", {"JOB_COMPLETION_INDEX": "2"}, names=["JOB_COMPLETION_INDEX=2", "--shards N",
                                                                   ".spec.completions"])
    assert "Kubernetes" in message


def test_kubernetes_index_out_of_range():
    refused("auto", {"JOB_COMPLETION_INDEX": "3"}, shards=3, names=["JOB_COMPLETION_INDEX=3", "--shards 3", "0..2"])
    refused("auto", {"JOB_COMPLETION_INDEX": "one"}, shards=3, names=["JOB_COMPLETION_INDEX", "whole number"])


# --- Slurm job arrays -------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["1-3", "0-2", "0-31", "3-3", "0-15%4", "1-7:2", "5-20:5", "2-8:3", "1-8:3",
                                  "1-9:2%2", "10-12", "0,2-6:2"])
def test_every_task_of_a_slurm_array_is_one_shard(spec):
    envs = engine_sim.slurm_array_envs(spec)
    found = shards_of(envs)
    assert_each_once(found, len(envs))
    ordered = [s.index for s in found]  # ascending task ids are ascending shards
    assert ordered == sorted(ordered)
    assert "SLURM_ARRAY_TASK_ID=" in found[0].source


def test_slurm_array_values():
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_STEP": "2"}
    shard = shard_spec("auto", environ=env)
    assert (shard.index, shard.count) == (4, 4)
    assert shard.source.startswith("Slurm job array (SLURM_ARRAY_TASK_ID=7, ")
    without_max = dict(env)
    del without_max["SLURM_ARRAY_TASK_MAX"]
    assert shard_spec("auto", environ=without_max).index == 4  # MAX is checked only where set


@pytest.mark.parametrize("spec", ["1,3,4", "1,3,5,7", "1-7:2,20", "0-3,8", "0,3-7:2"])
def test_slurm_array_that_is_not_one_range_is_refused_in_every_task(spec):
    for env in engine_sim.slurm_array_envs(spec):
        refused("auto", env, names=["SLURM_ARRAY_TASK_"])


def test_slurm_task_off_the_grid_or_out_of_range():
    base = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "2"}
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="4"), names=["SLURM_ARRAY_TASK_ID=4", "grid"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="0"), names=["SLURM_ARRAY_TASK_ID=0", "out of range"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="7"), names=["SLURM_ARRAY_TASK_ID=7", "out of range"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="7", SLURM_ARRAY_TASK_MAX="5"), names=["SLURM_ARRAY_TASK_ID=7"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_MAX="9"),
            names=["not one evenly spaced range", "SLURM_ARRAY_TASK_MAX=9"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_STEP="0"), names=["SLURM_ARRAY_TASK_STEP=0"])
    refused("auto", dict(base, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="0"),
            names=["SLURM_ARRAY_TASK_COUNT=0"])


@pytest.mark.parametrize("missing", ["SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"])
def test_slurm_variable_missing(missing):
    env = engine_sim.slurm_array_envs("1-3")[0]
    del env[missing]
    refused("auto", env, names=[missing, "SLURM_ARRAY_TASK_ID"])


@pytest.mark.parametrize("variable", ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                                      "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"])
@pytest.mark.parametrize("value", ["x", "-1", "2.0", "2\n3"])
def test_slurm_not_a_number(variable, value):
    env = engine_sim.slurm_array_envs("1-3")[1]
    refused("auto", dict(env, **{variable: value}), names=[variable, "whole number"])


def test_slurm_and_shards():
    env = engine_sim.slurm_array_envs("0-3")[2]
    assert shard_spec("auto", environ=env, shards=4).index == 3
    refused("auto", env, shards=3, names=["--shards 3", "SLURM_ARRAY_TASK_COUNT=4"])


# --- no engine, two engines -------------------------------------------------------------------

def test_no_engine():
    message = refused("auto", {"PATH": "/usr/bin", "CI": "true", "GITHUB_ACTIONS": "true"})
    for engine in ENGINES:
        assert engine.name in message and engine.index_var in message
        assert engine.count_var is None or engine.count_var in message
    assert "GitHub Actions" in message and "I/N" in message


def test_two_engines_that_agree():
    env = dict(engine_sim.gitlab_envs(3)[1], **engine_sim.circleci_envs(3)[1])
    shard = shard_spec("auto", environ=env)
    assert (shard.index, shard.count) == (2, 3)
    assert "CI_NODE_INDEX=2" in shard.source and "CIRCLE_NODE_INDEX=1" in shard.source


def test_two_engines_that_disagree():
    env = dict(engine_sim.slurm_array_envs("1-3")[0], **engine_sim.buildkite_envs(3)[2])
    refused("auto", env, names=["disagree", "SLURM_ARRAY_TASK_ID=1", "BUILDKITE_PARALLEL_JOB=2", "1/3", "3/3"])
    env = dict(engine_sim.aws_batch_envs(4)[0], **engine_sim.circleci_envs(3)[0])
    refused("auto", env, names=["AWS_BATCH_JOB_ARRAY_SIZE=4", "CIRCLE_NODE_TOTAL=3"])


def test_kubernetes_with_another_engine():
    env = dict(engine_sim.kubernetes_envs(3)[2], **engine_sim.gitlab_envs(3)[2])
    assert shard_spec("auto", environ=env, shards=3).index == 3
    refused("auto", dict(env, JOB_COMPLETION_INDEX="0"), shards=3, names=["JOB_COMPLETION_INDEX=0", "CI_NODE_INDEX=3"])


def test_reads_os_environ_by_default(monkeypatch):
    for engine in ENGINES:
        for name in engine.variables + (engines.SLURM_MIN, engines.SLURM_MAX, engines.SLURM_STEP):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BUILDKITE_PARALLEL_JOB", "0")
    monkeypatch.setenv("BUILDKITE_PARALLEL_JOB_COUNT", "2")
    assert str(shard_spec("auto")) == "1/2"


def test_only_shard_spec_errors_on_any_input():
    """Random values for every variable: a Shard or one ShardSpecError line, never anything else."""
    rng = random.Random(1234)
    names = sorted({n for e in ENGINES for n in e.variables} | {engines.SLURM_MIN, engines.SLURM_MAX,
                                                                 engines.SLURM_STEP})
    values = ["0", "1", "2", "3", "7", "", " ", "-1", "x", "1.5", "99999999999999999999", "\x00", "\u0663", "2\n"]
    for _ in range(3000):
        env = {n: rng.choice(values) for n in rng.sample(names, rng.randint(0, 6))}
        shards = rng.choice([None, None, 1, 3, 0])
        try:
            shard = shard_spec(rng.choice(["auto", "1/3", "3/3", "0/3"]), environ=env, shards=shards)
        except ShardSpecError as error:
            assert "\n" not in str(error) and "\r" not in str(error), repr(str(error))
        else:
            assert 1 <= shard.index <= shard.count and "\n" not in shard.source
