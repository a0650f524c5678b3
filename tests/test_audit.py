"""The audit machinery (funcbench.audit) on one cheap ppl cell: two real asv runs, no timing goals.

- sensitivity: a base run, then a run with the cell given 2x its work through the test-only
  FUNCBENCH_INJECT_SLOWDOWN hook; ``asv compare --factor 1.1`` must mark it '+'.
- fidelity: asv's time_op of the base run / torch.utils.benchmark's median is finite and > 0.
"""
import math
import os
import subprocess

import pytest
import torch

from funcbench.fleet import asv_driver
from funcbench.catalogue import config
from funcbench.results import result_rows
from funcbench.audit import cli, reference, runs, stats
from funcbench.catalogue.registry import Cell

CELL = Cell("ppl_simple_reg", "vjp", "func")


def _has_two_commits() -> bool:
    try:
        asv_driver.git_hash("HEAD~1")
        return True
    except subprocess.CalledProcessError:
        return False


@pytest.mark.skipif(not _has_two_commits(), reason="needs a git checkout with two commits")
@pytest.mark.slow
@pytest.mark.asv
def test_sensitivity_and_fidelity_on_one_cell(tmp_path):
    ws = asv_driver.Workspace(tmp_path / "asv", machine=cli.MACHINE)
    base, head = asv_driver.git_hash("HEAD~1"), asv_driver.git_hash("HEAD")

    rows = runs.sensitivity(ws, [CELL], [2.0], 1, base, head, log=lambda message: None)
    assert rows[0]["flagged"] == 1, rows  # 2x is flagged by asv compare
    assert stats.smallest_reliable(rows) == {str(CELL): 2.0}
    assert not (tmp_path / "asv" / "results" / cli.MACHINE / f"{head[:8]}").exists()

    times = result_rows.measured_cells(result_rows.commit_rows(str(ws.results_dir), ws.machine, base))
    assert list(times) == [CELL]
    threads = torch.get_num_threads()
    (fidelity,) = reference.fidelity_rows(times, "cpu", "small")
    assert torch.get_num_threads() == threads  # the reference's thread count is restored
    for key in ("ratio", "ratio_single"):
        assert math.isfinite(fidelity[key]) and fidelity[key] > 0, fidelity

    # The audit writes only under its own folder: never the repo's results/ or the user's HOME.
    assert (tmp_path / "asv" / "home" / ".asv-machine.json").exists()
    assert config.INJECT_SLOWDOWN.name not in ws.env()


def test_harness_overhead_is_measured_on_the_generated_time_op():
    overhead = reference.harness_overhead_us(calls=2000)
    assert 0 < overhead["bare_noop_us"] <= overhead["time_op_noop_us"] < 50


def test_gpu_part_says_no_cuda_on_cpu(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the GPU part really runs")
    assert cli.main(["--part", "gpu", "--out", str(tmp_path)]) == 0
    assert "no CUDA device here" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "audit.md")


def test_bad_arguments_get_one_line(capsys):
    for argv in (["--part", "speed"], ["--cells", "alexnet:vjp:func"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(argv)
        assert exit.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1
