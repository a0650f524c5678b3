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
    for argv in (["--part", "speed"], ["--cells", "alexnet:vjp:func"], ["--part", "explain", "--explain-cells",
                 "ppl_simple_reg:vjp:func"], ["--part", "explain", "--reps", "0"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(argv)
        assert exit.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_the_explain_part_is_written_with_its_ranks_and_sums():
    from funcbench.audit.markdown import markdown
    cost = dict(cells=44, functions=76320, bytes=189681, counting_s=103.0, totals_only_s=0.59, with_profiles_s=1.65,
                write_s=0.14, added_share=0.012, sums_exact=True)
    rows = [dict(rep=1, op="cumsum", kernel="cumsum_cpu_kernel", cell="ppl_simple_reg:vjp:autograd", rank=1, in_top=True,
                 share=0.6, delta=90000, sums_exact=True),
            dict(rep=1, op="sort", kernel="sort_kernel", cell="multiheadattn:vjp:func", rank=None, in_top=False,
                 share=None, delta=None, sums_exact=False, error="valgrind died")]
    text = markdown(dict(commit="c" * 40, device="cpu", preset="small", started="now", load_start="0",
                         explain=dict(command="python -m funcbench.audit --part explain", load="0 -> 0", cost=cost,
                                      rows=rows)))
    assert "76,320 (function, count) pairs in 189,681 bytes" in text and "1.2% added" in text
    assert "| 1 | cumsum | ppl_simple_reg:vjp:autograd | 1 | 60.0% | +90,000 | yes |" in text
    assert "failed: valgrind died" in text and "top 3 movers: 1/2" in text
