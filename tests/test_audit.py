"""The audit machinery (funcbench.audit) on one cheap ppl cell: two real asv runs, no timing goals.

- sensitivity: a base run, then a run with the cell slowed 2x through the test-only
  FUNCBENCH_INJECT_SLOWDOWN hook; ``asv compare --factor 1.1`` must mark it '+'.
- fidelity: asv's time_op of the base run / torch.utils.benchmark's median is finite and > 0.
"""
import math
import os
import subprocess

import pytest

from funcbench import audit

CELL = "ppl_simple_reg:vjp:func"


def _has_two_commits() -> bool:
    try:
        audit.git_hash("HEAD~1")
        return True
    except subprocess.CalledProcessError:
        return False


@pytest.mark.skipif(not _has_two_commits(), reason="needs a git checkout with two commits")
def test_sensitivity_and_fidelity_on_one_cell(tmp_path):
    ws = audit.Workspace(tmp_path / "asv")
    base, head = audit.git_hash("HEAD~1"), audit.git_hash("HEAD")

    rows = audit.sensitivity(ws, [CELL], [2.0], 1, base, head, log=lambda message: None)
    assert rows[0]["flagged"] == 1, rows  # 2x is flagged by asv compare
    assert audit.smallest_reliable(rows) == {CELL: 2.0}
    assert not (tmp_path / "asv" / "results" / audit.MACHINE / f"{head[:8]}").exists()

    times = audit.time_op_results(ws.values(base))
    assert list(times) == [tuple(CELL.split(":"))]
    (fidelity,) = audit.fidelity_rows(times, "cpu", "small")
    for key in ("ratio", "ratio_single"):
        assert math.isfinite(fidelity[key]) and fidelity[key] > 0, fidelity

    # The audit writes only under its own folder: never the repo's results/ or the user's HOME.
    assert (tmp_path / "asv" / "home" / ".asv-machine.json").exists()
    assert audit.INJECT_VAR not in ws.env()


def test_gpu_part_says_no_cuda_on_cpu(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the GPU part really runs")
    assert audit.main(["--part", "gpu", "--out", str(tmp_path)]) == 0
    assert "no CUDA device here" in capsys.readouterr().out
    assert os.path.exists(tmp_path / "audit.md")
