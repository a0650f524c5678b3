"""funcbench releases end to end on what is small and quick to install here: the machine's local
CPU wheel of torch 2.13.0 (190 MB, no CUDA packages) built as a release by uv, and this test's
own interpreter (torch 2.14.1) adopted as a second one, as a contributor's source build would be.
Real uv, asv, valgrind (one counted cell), merge-results and headless Chromium; no download of
more than a few packages (numpy, scipy, torchvision and torch's small dependencies)."""
from __future__ import annotations

import glob
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path

import pytest

from funcbench import commands
from funcbench.fleet import release_envs, release_runs
from funcbench.fleet.release_envs import Layout
from funcbench.results import release_history, result_rows

pytestmark = [pytest.mark.slow, pytest.mark.asv]

WHEEL_DIRS = [*os.environ.get("PIP_FIND_LINKS", "").split(), "/opt/wheels"]
CELL = r"\('ppl_simple_reg', 'vjp', 'autograd'"
CPU = rf"^benchmarks\.ppl_simple_reg\.time_cpu_op{CELL}"
COUNT = r"^benchmarks\.Instructions\.track_instructions\('ppl_simple_reg:vjp:autograd'"
MACHINE = "box"


def _local_wheel() -> str:
    found = sorted(f for d in WHEEL_DIRS for f in glob.glob(os.path.join(d, "torch-2.13.0+cpu-cp311-*.whl")))
    if not found:
        pytest.fail(f"the machine's local CPU wheel of torch 2.13.0 is not in {WHEEL_DIRS} (this image lays it on disk)")
    return found[0]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A releases folder with the wheel built and this interpreter adopted; HOME of its own."""
    root = tmp_path_factory.mktemp("releases")
    home = root / "home"
    home.mkdir()
    return dict(root=root, dir=root / "rel", home=home, wheel=_local_wheel())


def _main(history, monkeypatch, *argv):
    monkeypatch.setenv("HOME", str(history["home"]))  # asv's machine file
    return commands.main(["releases", "--dir", str(history["dir"]), *argv])


def test_build_a_wheel_and_adopt_an_interpreter(history, monkeypatch, capsys):
    assert _main(history, monkeypatch, "build", history["wheel"]) == 0
    err = capsys.readouterr().err
    layout = Layout(history["dir"])
    record = release_envs.read_records(layout)["2.13.0+cpu"]
    assert record.status == release_envs.BUILT and record.torch_git and record.commit, err
    assert Path(record.python).is_file() and str(layout.envs) in record.python
    assert "checked ppl_simple_reg:vjp:autograd" in err
    # PyPI's torchvision does not import beside a CPU build: removed, its models n/a there, with the reason
    assert "does not import" in record.packages["torchvision"] and "no torchaudio release" in record.packages["torchaudio"]
    assert release_history.releases(layout.repo) == {"2.13.0+cpu": record.commit}
    # a rerun does nothing; an interrupted build is never used, and a rerun resumes it
    assert _main(history, monkeypatch, "build", history["wheel"]) == 0
    assert "built already" in capsys.readouterr().err
    record.status = release_envs.BUILDING
    release_envs.write_record(layout, record)
    assert _main(history, monkeypatch, "run", "2.13.0") == 2
    assert "2.13.0+cpu is not built (building)" in capsys.readouterr().err
    assert _main(history, monkeypatch, "build", history["wheel"]) == 0
    assert "resuming" in capsys.readouterr().err
    again = release_envs.read_records(layout)["2.13.0+cpu"]
    assert again.status == release_envs.BUILT and again.commit == record.commit
    # this interpreter (funcbench and asv_runner import here): adopted, never changed
    assert _main(history, monkeypatch, "build", sys.executable) == 0
    adopted = next(r for r in release_envs.read_records(layout).values() if r.release.kind == "python")
    assert adopted.python == os.path.abspath(sys.executable) and adopted.name.startswith("2.14.1")
    history["other"] = adopted.name
    assert _main(history, monkeypatch, "list") == 0
    out = capsys.readouterr().out
    assert "| 2.13.0+cpu | built |" in out and f"| {adopted.name} | built |" in out


@pytest.mark.valgrind
def test_run_each_release_at_its_commit_and_read_what_moved(history, monkeypatch, capsys):
    assert _main(history, monkeypatch, "run", "2.13.0+cpu", "--machine", MACHINE, "--bench", CPU, "--bench", COUNT) == 0
    assert _main(history, monkeypatch, "run", history["other"], "--machine", MACHINE, "--bench", CPU, "--bench", COUNT) == 0
    capsys.readouterr()
    layout = Layout(history["dir"])
    records = release_envs.read_records(layout)
    rows = {name: result_rows.commit_rows(str(layout.results), MACHINE, r.commit) for name, r in records.items()}
    count = [r for r in rows["2.13.0+cpu"] if r.method == "track_instructions" and r.measured]
    assert len(count) == 1 and count[0].value > 100_000
    assert all(any(r.method == "time_cpu_op" and r.measured for r in found) for found in rows.values())
    # funcbench's record names torch's build and funcbench's own commit
    facts = release_runs.environment.recorded(layout.results, MACHINE)
    assert {f.get("release") for f in facts.values()} == set(records)
    assert all(f.get("torch_git") and f.get("funcbench") for f in facts.values())
    # a second run of a measured release: refused, nothing changed
    results = sorted((layout.results / MACHINE).glob("*.json"))
    before = {p: p.read_bytes() for p in results}
    assert _main(history, monkeypatch, "run", "2.13.0+cpu", "--machine", MACHINE, "--bench", CPU) == 2
    assert "was measured already" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in results} == before
    # the steps along the axis and the table between the two
    assert _main(history, monkeypatch, "steps", "--metric", "cpu", "--at", "1.0", "--machine", MACHINE) == 0
    out = capsys.readouterr().out
    assert re.search(rf"\| ppl_simple_reg:vjp:autograd \| 2\.13\.0\+cpu \| {re.escape(history['other'])} \|", out), out
    assert _main(history, monkeypatch, "compare", "2.13.0+cpu", history["other"], "--metric", "cpu",
                 "--machine", MACHINE) == 0
    captured = capsys.readouterr()
    assert "ppl_simple_reg" in captured.out
    assert "torch version: 2.13.0+cpu -> 2.14.1" in captured.err, captured.err  # what differs is named
    assert _main(history, monkeypatch, "compare", "2.13.0+cpu", history["other"], "--metric", "cpu",
                 "--fail-above", "1.5", "--machine", MACHINE) == 2  # a time gate trusts only interleaved sides
    assert "interleaved" in capsys.readouterr().err
    # asv gives an existing environment's benchmark process no commit: the profiles are kept all the same,
    # beside each release's results, and explain the step between the two releases exactly
    kept = sorted(p.name for p in (layout.results / MACHINE).glob("funcbench-profiles-*.json.gz"))
    assert kept == sorted(f"funcbench-profiles-{r.commit[:8]}-{release_runs.env_name(layout)}.json.gz"
                          for r in records.values()), kept
    assert _main(history, monkeypatch, "compare", "2.13.0+cpu", history["other"], "--explain", "all:3",
                 "--machine", MACHINE) == 0
    out = capsys.readouterr().out
    assert "cannot be explained" not in out and out.count("| total |") == 1, out
    block = out[out.index("**ppl_simple_reg[small] vjp**"):]
    heading, total = block.splitlines()[0], next(line for line in block.splitlines() if line.startswith("| total |"))
    before, after = (int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:→|instructions)", heading))
    assert f"| {before:,} | {after:,} |" in total, (heading, total)


def test_shards_over_releases_merge_into_one_tree(history, monkeypatch, capsys, tmp_path):
    shards = [tmp_path / "s1", tmp_path / "s2"]
    for index, folder in enumerate(shards, start=1):
        assert _main(history, monkeypatch, "run", "--shard", f"{index}/2", "--results-dir", str(folder),
                     "--machine", MACHINE, "--bench", CPU) == 0
    err = capsys.readouterr().err
    assert "pairs of 2.13.0+cpu" in err and f"pairs of {history['other']}" in err, err
    merged = tmp_path / "merged"
    assert commands.main(["merge-results", "--into", str(merged), *map(str, shards)]) == 0
    assert "did not finish" not in capsys.readouterr().out
    layout = Layout(history["dir"])
    for record in release_envs.read_records(layout).values():
        rows = result_rows.commit_rows(str(merged), MACHINE, record.commit)
        assert any(r.method == "time_cpu_op" and r.measured for r in rows), record.name


@pytest.mark.browser
def test_the_history_dashboard_draws_both_releases_offline(history, monkeypatch, capsys, tmp_path):
    from test_dashboard_browser import _render, _text

    assert _main(history, monkeypatch, "publish") == 0
    html = Layout(history["dir"]).html
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        params = {"p-model": "'ppl_simple_reg'", "p-task": "'vjp'", "p-api": "'autograd'", "p-preset": "'small'",
                  "p-device": "'cpu'"}
        url = (f"http://127.0.0.1:{server.server_address[1]}/asv.html#benchmarks.ppl_simple_reg.time_cpu_op?"
               f"{urllib.parse.urlencode(params)}")
        dom = _render(tmp_path, url, "releases-asv.png")
    finally:
        server.shutdown()
    assert "failed to load" not in dom and "flot-base" in dom, _text(dom)[:2000]
    for name in ("2.13.0+cpu", history["other"]):  # each release is a labelled tag on the axis
        assert f"v{name}" in dom, _text(dom)[:3000]
    # one line through both releases: every release runs as the same interpreter path, which is
    # what asv keys a line by (each release's own path would be a line of one point each)
    files = [p for p in html.glob("graphs/**/benchmarks.ppl_simple_reg.time_cpu_op.json") if "summary" not in p.parts]
    assert len(files) == 1, files
    graphs = [json.loads(p.read_text()) for p in files]
    points = [point for point in graphs[0] if point[1] is not None and any(v is not None for v in point[1])]
    assert len(points) == 2, graphs[0]


@pytest.mark.valgrind
def test_the_same_release_built_again_elsewhere_counts_the_same(history, monkeypatch, capsys):
    """run --build --prune, as a CI runner does: the wheel built in a second releases folder,
    counted, pruned; its count equals the first environment's, to the instruction."""
    # a folder path of the first one's length: the interpreter's path lies on the counting process's
    # heap (counts of one build moved 0.3 % between folders of other lengths)
    second = dict(history, dir=history["root"] / "re2")
    assert _main(second, monkeypatch, "run", "--build", "--prune", history["wheel"], "--machine", MACHINE,
                 "--bench", COUNT) == 0
    layout = Layout(second["dir"])
    record = release_envs.read_records(layout)["2.13.0+cpu"]
    assert record.status == release_envs.PRUNED and not layout.env_dir(record.name).exists()
    first = release_envs.read_records(Layout(history["dir"]))["2.13.0+cpu"]
    assert record.commit == first.commit  # the same point of the history, made apart

    def count(folder):
        rows = result_rows.commit_rows(str(folder), MACHINE, record.commit)
        return [r.value for r in rows if r.method == "track_instructions" and r.measured]

    assert count(layout.results) == count(Layout(history["dir"]).results) and count(layout.results)
