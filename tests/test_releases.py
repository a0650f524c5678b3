"""funcbench releases without building anything: which releases a SPEC names (a registry index
served from memory), the history repository's commits and axis, the steps, the shard plan, and
bad input (one line, non-zero, nothing built or measured lost). The real build and run path is
tests/test_releases_build.py (slow)."""
from __future__ import annotations

import contextlib
import json
import subprocess

import pytest
from packaging.version import Version

from funcbench import commands
from funcbench.catalogue.param_sets import ParamSet
from funcbench.catalogue.registry import Cell
from funcbench.fleet import release_envs, release_index, release_runs
from funcbench.fleet.release_envs import EnvRecord, Layout
from funcbench.fleet.release_index import Release, ReleaseError
from funcbench.results import release_history, release_steps

LINUX = "manylinux_2_17_x86_64.manylinux2014_x86_64"


def _file(project, version, tag="cp311", uploaded="2024-01-01T00:00:00Z", size=800_000_000):
    return {"filename": f"{project}-{version}-{tag}-{tag}-{LINUX}.whl", "size": size, "upload-time": uploaded}


INDEX = {
    "torch": [_file("torch", "1.13.1", uploaded="2022-12-15T00:00:00Z"),
              _file("torch", "2.0.0", uploaded="2023-03-15T00:00:00Z"),
              _file("torch", "2.0.1", uploaded="2023-05-08T00:00:00Z"),
              _file("torch", "2.0.1", tag="cp310", uploaded="2023-05-07T00:00:00Z"),  # the release's first upload
              _file("torch", "2.1.0", uploaded="2023-10-04T00:00:00Z"),
              _file("torch", "2.1.2", uploaded="2023-12-15T00:00:00Z"),
              _file("torch", "2.2.0", tag="cp312", uploaded="2024-01-30T00:00:00Z"),  # no wheel for 3.11
              _file("torch", "2.3.0rc1", uploaded="2024-04-01T00:00:00Z")],
    "torchvision": [_file("torchvision", "0.15.2"), _file("torchvision", "0.16.2")],
    "torchaudio": [_file("torchaudio", "2.0.2")],  # none for torch 2.1
}


@pytest.fixture
def index(monkeypatch):
    monkeypatch.setattr(release_index, "_project_files", lambda project, url: tuple(INDEX.get(project, ())))


def names(releases):
    return [r.name for r in releases]


def test_specs_name_releases_that_have_a_wheel_for_this_python(index):
    assert names(release_index.resolve("2.0:", "cp311")) == ["2.0.1", "2.1.2"]  # newest patch of each minor
    assert names(release_index.resolve(":2.0", "cp311")) == ["2.0.1"]
    assert names(release_index.resolve("2.0", "cp311")) == ["2.0.1"]
    only = release_index.resolve("2.0.0", "cp311")[0]
    assert (only.kind, only.source, only.date) == ("registry", "torch==2.0.0", "2023-03-15T00:00:00Z")
    assert release_index.resolve("2.0.1", "cp311")[0].date == "2023-05-07T00:00:00Z"  # the first upload, any Python
    releases, problems = release_index.resolve_all([], "cp311")
    assert names(releases) == ["2.0.1", "2.1.2"] and problems == {}


@pytest.mark.parametrize("spec, message", [
    ("2.2.0", "torch 2.2.0 has no wheel for CPython 3.11"),
    ("2.0.5", "torch 2.0.5 does not exist"),
    ("2.7", "torch 2.7 does not exist"),
    ("1.13.1", "older than 2.0"),
    ("banana", "is no torch version"),
    ("/nowhere/torch-2.0.1-cp311-cp311-linux_x86_64.whl", "no wheel file"),
])
def test_a_spec_that_names_nothing_buildable_is_one_line(index, spec, message):
    with pytest.raises(ReleaseError, match=message) as error:
        release_index.resolve(spec, "cp311")
    assert "\n" not in str(error.value)


def test_a_wheel_spec_is_checked_before_anything_is_installed(tmp_path):
    other = tmp_path / f"torchvision-0.15.2-cp311-cp311-{LINUX}.whl"
    other.write_bytes(b"")
    with pytest.raises(ReleaseError, match="a wheel of torchvision, not of torch"):
        release_index.resolve(str(other), "cp311")
    elsewhere = tmp_path / "torch-2.0.1-cp39-cp39-manylinux1_x86_64.whl"
    elsewhere.write_bytes(b"")
    with pytest.raises(ReleaseError, match="does not install on CPython 3.11"):
        release_index.resolve(str(elsewhere), "cp311")


def test_companions_and_pins_follow_the_release(index):
    assert release_index.companions(Version("2.0.1"), "cp311") == {"torchvision": "torchvision==0.15.*",
                                                                   "torchaudio": "torchaudio==2.0.*"}
    assert release_index.companions(Version("2.1.2"), "cp311") == {"torchvision": "torchvision==0.16.*",
                                                                   "torchaudio": None}
    assert release_index.pins(Version("2.1.2")) == ["numpy<2", "setuptools<70"]
    assert release_index.pins(Version("2.3.1")) == ["setuptools<70"]
    assert release_index.pins(Version("2.15.0")) == []


# ------------------------------------------------------------------------------ the history


def test_history_commits_are_the_same_everywhere_and_independent_of_other_releases(tmp_path):
    alone = release_history.commit(tmp_path / "a", "2.0.1", "2023-05-08T00:00:00Z")
    release_history.commit(tmp_path / "b", "2.15.0", "2026-10-15T00:00:00Z")
    release_history.commit(tmp_path / "b", "2.1.2", "2023-12-15T00:00:00Z")
    within = release_history.commit(tmp_path / "b", "2.0.1", "2023-05-08T00:00:00Z")
    assert alone == within and len(alone) == 40
    assert release_history.releases(tmp_path / "b") == {
        "2.0.1": within, "2.1.2": release_history.releases(tmp_path / "b")["2.1.2"],
        "2.15.0": release_history.releases(tmp_path / "b")["2.15.0"]}
    head = subprocess.run(["git", "rev-parse", "main"], cwd=tmp_path / "b", capture_output=True, text=True).stdout
    assert head.strip() == release_history.releases(tmp_path / "b")["2.15.0"]  # main: the newest release


def test_the_axis_is_in_version_order_whatever_the_dates(tmp_path):
    # a patch of an old minor released after the next minor, and a local build dated today
    release_history.commit(tmp_path, "2.1.0", "2023-10-04T00:00:00Z")
    release_history.commit(tmp_path, "2.0.2", "2024-02-01T00:00:00Z")
    release_history.commit(tmp_path, "2.16.0a0+git1234abc", "2026-12-04T00:00:00Z")
    release_history.commit(tmp_path, "2.10.0", "2025-12-01T00:00:00Z")
    places = release_history.axis(tmp_path, ["2.0.2", "2.1.0", "2.10.0", "2.16.0a0+git1234abc"])
    assert sorted(places, key=places.get) == ["2.0.2", "2.1.0", "2.10.0", "2.16.0a0+git1234abc"]


def test_slots_order_pre_releases_local_builds_and_nightlies():
    ordered = ["2.0.0", "2.0.1", "2.1.0.dev20230801", "2.1.0a0+git123", "2.1.0b1", "2.1.0rc1", "2.1.0", "2.1.0+cpu",
               "2.1.0.post1", "2.1.1", "2.10.0", "3.0.0"]
    slots = [release_history.slot(Version(v)) for v in ordered]
    assert slots == sorted(slots) and len(set(slots)) == len(slots)


# ------------------------------------------------------------------------------ steps and plans


def test_steps_are_beyond_the_threshold_largest_first_and_skip_releases_without_the_cell():
    a, b = Cell("ppl_simple_reg", "vjp", "autograd"), Cell("multiheadattn", "vhp", "func")
    values = {a: {"2.0.1": 100.0, "2.1.2": 100.5, "2.2.2": 150.0, "2.3.1": 150.0},
              b: {"2.0.1": 1000.0, "2.3.1": 500.0}}  # b: n/a in 2.1.2 and 2.2.2
    found = release_steps.steps(values, ["2.0.1", "2.1.2", "2.2.2", "2.3.1"], at=1.01)
    assert [(s.cell, s.before, s.after, s.skipped) for s in found] == [(b, "2.0.1", "2.3.1", 2),
                                                                      (a, "2.1.2", "2.2.2", 0)]
    assert found[0].ratio == 0.5
    text = release_steps.table(found, "instructions", 1.01)
    assert "| multiheadattn:vhp:func | 2.0.1 | 2.3.1 (2 release(s) between without it) | 1,000 | 500 | 0.500 |" in text
    assert "(no step of 2.0x or more)" in release_steps.table([], "instructions", 2.0)


def test_a_shard_plan_over_releases_takes_every_pair_once_and_is_balanced():
    work = [ParamSet("benchmarks.m.time_cpu_op", (f"'{i}'",)) for i in range(7)]
    costs = {item.name: float(i + 1) for i, item in enumerate(work)}
    plan = release_runs.plan_pairs(["2.1.2", "2.0.1", "2.10.0"], work, 3, costs)
    pairs = [(name, item) for shard in plan.shards for name, item, _ in shard]
    assert sorted(pairs) == sorted((n, i) for n in ("2.0.1", "2.1.2", "2.10.0") for i in work)
    seconds = [sum(c for *_, c in shard) for shard in plan.shards]
    assert max(seconds) - min(seconds) <= max(costs.values())
    assert plan.digest == release_runs.plan_pairs(["2.0.1", "2.10.0", "2.1.2"], work, 3, costs).digest
    assert "shard 1/3" in plan.describe()


# ------------------------------------------------------------------------------ the command


def _main(tmp_path, *argv):
    return commands.main(["releases", "--dir", str(tmp_path / "rel"), *argv])


def _record(layout: Layout, name: str, status: str, **fields) -> EnvRecord:
    record = EnvRecord(Release(name, "registry", f"torch=={name}", "2023-05-08T00:00:00Z"), status,
                       str(layout.env_dir(name) / "bin" / "python"), **fields)
    release_envs.write_record(layout, record)
    return record


@pytest.mark.parametrize("argv, message", [
    (["run"], "no release is built"),
    (["run", "2.99"], "no release 2.99"),
    (["run", "--tiers", "light,fast"], "--tiers: choose from light, medium, heavy"),
    (["prune"], "name the releases to prune"),
    (["compare", "2.0.1", "2.1.2"], "no release 2.0.1"),
    (["steps"], "steps need two measured releases"),
    (["publish"], "nothing measured"),
    (["run", "--results-dir", "x"], "go with --shard"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert _main(tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_interrupted_or_failed_build_is_never_run(tmp_path, capsys):
    layout = Layout(tmp_path / "rel")
    _record(layout, "2.0.1", release_envs.BUILDING)
    _record(layout, "2.1.2", release_envs.FAILED, reason="torch does not import: ImportError: libcudnn.so.9")
    for name, status in (("2.0.1", "building"), ("2.1.2", "failed: torch does not import")):
        assert _main(tmp_path, "run", name) == 2
        err = capsys.readouterr().err
        assert f"{name} is not built ({status}" in err and len(err.strip().splitlines()) == 1, err
    assert _main(tmp_path, "list") == 0
    out = capsys.readouterr().out
    assert "| 2.0.1 | building |" in out and "| 2.1.2 | failed: torch does not import: ImportError: libcudnn.so.9 |" in out


def test_too_little_disk_fails_the_build_before_any_download(tmp_path, capsys, monkeypatch, index):
    monkeypatch.setattr(release_envs.shutil, "disk_usage", lambda path: type("U", (), {"free": 3e9})())

    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be installed")

    monkeypatch.setattr(release_envs, "_run", no_download)
    monkeypatch.setattr(release_index, "python_tag", lambda python: "cp311")
    assert _main(tmp_path, "build", "2.0.1", "2.9") == 1
    err = capsys.readouterr().err
    assert "needs ~" in err and "3.0 GB free" in err
    assert "torch 2.9 does not exist" in err
    assert err.strip().splitlines()[-1] == "funcbench releases build: not built: 2.0.1, 2.9"
    record = release_envs.read_records(Layout(tmp_path / "rel"))["2.0.1"]
    assert record.status == release_envs.FAILED and "needs ~" in record.reason
    assert not Layout(tmp_path / "rel").env_dir("2.0.1").exists()


def test_a_release_measured_already_is_refused_and_again_keeps_the_earlier_file(tmp_path, capsys, monkeypatch):
    layout = Layout(tmp_path / "rel")
    record = _record(layout, "2.0.1", release_envs.BUILT, commit="ab" * 20)
    path = release_runs.results_path(layout, layout.results, "box", record)
    monkeypatch.setattr(release_runs, "already_measured", lambda *args: ["benchmarks.x.time_cpu_op('a')"])
    monkeypatch.setattr(release_runs.Selection, "items", lambda self: [ParamSet("benchmarks.x.time_cpu_op", ("'a'",))])
    assert _main(tmp_path, "run", "2.0.1", "--machine", "box") == 2
    err = capsys.readouterr().err
    assert "2.0.1 was measured already (1 of the 1 selected parameter sets" in err and "--again" in err
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"earlier": True}))
    calls = []
    monkeypatch.setattr(release_runs.Asv, "register_machine", lambda self: None)
    monkeypatch.setattr(release_runs.Asv, "run", lambda self, *args, **kwargs: calls.append(args))
    monkeypatch.setattr(release_runs.release_envs, "staged",
                        lambda layout, record, log: contextlib.nullcontext(layout.python))
    monkeypatch.setattr(release_runs.release_stage, "machine_lock", lambda log: contextlib.nullcontext())
    monkeypatch.setattr(release_runs.environment, "probe",
                        lambda python: release_runs.environment.Fingerprint({"torch": "2.0.1"}, "probed"))
    assert _main(tmp_path, "run", "2.0.1", "--machine", "box", "--again") == 0
    kept = list(path.parent.glob(path.name + ".*.bak"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == {"earlier": True} and path.exists()
    assert calls and "--set-commit-hash" in calls[0] and "ab" * 20 in calls[0]


def test_specs_select_known_releases_by_version_minor_and_range(tmp_path):
    from funcbench.commands.releases import select
    layout = Layout(tmp_path / "rel")
    for name in ("2.0.1", "2.1.2", "2.10.0", "2.13.0+cpu"):
        _record(layout, name, release_envs.BUILT)
    records = release_envs.read_records(layout)
    assert [r.name for r in select(records, [])] == ["2.0.1", "2.1.2", "2.10.0", "2.13.0+cpu"]
    assert [r.name for r in select(records, ["2.1:2.10"])] == ["2.1.2", "2.10.0"]
    assert [r.name for r in select(records, ["2.13.0"])] == ["2.13.0+cpu"]
    assert [r.name for r in select(records, ["2.10", "2.0.1"])] == ["2.0.1", "2.10.0"]
    with pytest.raises(ReleaseError, match="no release 2.2"):
        select(records, ["2.2"])


def test_uv_gets_the_system_certificates_and_the_folders_cache_whatever_the_environment_says(tmp_path, monkeypatch):
    layout = release_envs.Layout(tmp_path)
    monkeypatch.setenv("UV_CACHE_DIR", "/elsewhere")  # a user's own uv cache: the folder's cache still wins
    monkeypatch.delenv("UV_SYSTEM_CERTS", raising=False)
    env = release_envs._uv_env(layout)
    assert env["UV_CACHE_DIR"] == str(layout.cache) and env["UV_SYSTEM_CERTS"] == "1"
    monkeypatch.setenv("UV_SYSTEM_CERTS", "0")  # a user who said otherwise is heard
    assert release_envs._uv_env(layout)["UV_SYSTEM_CERTS"] == "0"
