"""The command line: run writes the original report, compare reads it back, bad input
gets one line on stderr and a non-zero exit."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from funcbench.commands import main
from funcbench.results.values import Measurement
from funcbench.catalogue.registry import Cell
from funcbench.results.report import Report, compare

ROOT = Path(__file__).resolve().parents[1]

# As the original script wrote it (floats from tensor.item()).
ORIGINAL_REPORT = """| model | task | mean | var |
| -- | -- | -- | -- |
| ppl_simple_reg | vjp | 0.00034 | 1.2e-10 |
| ppl_simple_reg | functorch vjp | 0.0005 | 3e-10 |
| multiheadattn | vhp | 0.0027 | 4e-09 |
"""


def run_cli(*args):
    """The CLI as a user runs it: a fresh process."""
    return subprocess.run([sys.executable, "-m", "funcbench", *args], capture_output=True, text=True, cwd=ROOT)


def test_run_writes_the_original_report_with_both_apis_and_the_preset(tmp_path, capsys):
    out = tmp_path / "small.md"
    assert main(["run", "--preset", "small", "--device", "cpu", "--num-iters", "2", "--model-filter",
                 "ppl_simple_reg", "--task-filter", "vjp,hessian_fwdrev", "--output", str(out)]) == 0
    report = Report.from_markdown(out.read_text())
    # Substring filters, as the original: 'hessian_fwdrev' selects 'hessian' too.
    assert list(report.rows) == [("ppl_simple_reg[small]", t) for t in (
        "vjp", "functorch vjp", "hessian", "functorch hessian", "hessian_fwdrev", "functorch hessian_fwdrev")]
    assert all(mean > 0 and var >= 0 for mean, var in report.rows.values())
    captured = capsys.readouterr()
    assert "preset small on cpu" in captured.out and out.read_text() in captured.out
    assert "malloc steady:" in captured.out  # the suite's allocator policy, said in the heading
    assert "[6/6] ppl_simple_reg functorch hessian_fwdrev: mean" in captured.err


def test_run_one_api_and_gpu_minus_one_means_cpu(tmp_path, capsys):
    out = tmp_path / "r.md"
    assert main(["run", "--preset", "small", "--gpu", "-1", "--api", "func", "--num-iters", "1",
                 "--model-filter", "multiheadattn", "--output", str(out)]) == 0
    assert [t for _, t in Report.from_markdown(out.read_text()).rows] == [
        "functorch vjp", "functorch jvp", "functorch vhp"]


def test_run_with_the_default_allocator_says_so():
    result = run_cli("run", "--preset", "small", "--device", "cpu", "--num-iters", "1", "--malloc", "default",
                     "--model-filter", "ppl_simple_reg", "--task-filter", "vjp", "--api", "autograd")
    assert result.returncode == 0, result.stderr
    assert "malloc default:" in result.stdout


def test_unsupported_cells_are_skipped_with_their_reason(capsys):
    assert main(["run", "--preset", "small", "--device", "cpu", "--num-iters", "1", "--model-filter",
                 "deepspeech", "--task-filter", "vjp", "--run-slow-tasks"]) == 0
    captured = capsys.readouterr()
    assert "| deepspeech[small] | vjp |" in captured.out and "functorch vjp" not in captured.out


def test_a_failing_cell_is_reported_and_the_rest_still_runs(monkeypatch, capsys):
    from funcbench.catalogue import tasks

    def broken(f, p, v):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(tasks.AUTOGRAD_TASKS, "jvp", broken)
    assert main(["run", "--preset", "small", "--num-iters", "1", "--device", "cpu",
                 "--model-filter", "ppl_simple_reg", "--task-filter", "vjp,jvp"]) == 1
    captured = capsys.readouterr()
    assert "ppl_simple_reg jvp: FAILED: RuntimeError: boom" in captured.err and "second line" not in captured.err
    assert "| ppl_simple_reg[small] | functorch jvp |" in captured.out
    assert "| ppl_simple_reg[small] | vjp |" in captured.out


def test_report_round_trips_through_compare(tmp_path, capsys):
    before, after = tmp_path / "before.md", tmp_path / "after.md"
    before.write_text(ORIGINAL_REPORT)
    after.write_text(ORIGINAL_REPORT.replace("0.00034", "0.00017").replace("| multiheadattn | vhp | 0.0027 | 4e-09 |\n", "")
                     + "| resnet18 | vjp | 0.5 | 0.01 |\n")
    out = tmp_path / "cmp.md"
    assert main(["compare", "--before", str(before), "--after", str(after), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "| model | task | speedup | mean (before) | var (before) | mean (after) | var (after) |"
    assert lines[1] == "| -- | -- | -- | -- | -- | -- | -- |"
    assert lines[2] == "| ppl_simple_reg | vjp | 2.0 | 0.00034 | 1.2e-10 | 0.00017 | 1.2e-10 |"
    assert lines[3] == "| ppl_simple_reg | functorch vjp | 1.0 | 0.0005 | 3e-10 | 0.0005 | 3e-10 |"
    assert lines[4] == "| multiheadattn | vhp | None | 0.0027 | 4e-09 | None | None |"
    assert lines[5] == "| resnet18 | vjp | None | None | None | 0.5 | 0.01 |"
    assert capsys.readouterr().out.strip() == out.read_text().strip()


def test_compare_summary_of_report_files_says_there_are_no_statistics(tmp_path, capsys):
    before, after = tmp_path / "before.md", tmp_path / "after.md"
    before.write_text(ORIGINAL_REPORT)
    after.write_text(ORIGINAL_REPORT.replace("0.00034", "0.00068").replace("0.0027 ", "0.00135 "))
    assert main(["compare", "--before", str(before), "--after", str(after)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["funcbench compare (time): 3 rows on both sides (no statistics: every difference counts): 1 slower, "
                   "1 faster, 1 equal; 0 only before, 0 only after",
                   "funcbench compare (time): slowest: ppl_simple_reg vjp +100.0 %",
                   "funcbench compare (time): fastest: multiheadattn vhp -50.0 %"]


def test_instruction_gate_uses_the_plain_ratio(tmp_path, capsys):
    before, after = tmp_path / "before.md", tmp_path / "after.md"
    before.write_text("| model | task | mean | var |\n| -- | -- | -- | -- |\n| m | vjp | 1000000 | 0 |\n"
                      "| m | jvp | 1000000 | 0 |\n")
    after.write_text("| model | task | mean | var |\n| -- | -- | -- | -- |\n| m | vjp | 1010000 | 0 |\n"
                     "| m | jvp | 1000500 | 0 |\n")
    argv = ["compare", "--metric", "instructions", "--before", str(before), "--after", str(after)]
    assert main([*argv, "--fail-above", "1.005"]) == 1
    err = capsys.readouterr().err
    assert "1 significantly slower, 0 significantly faster, 1 unchanged" in err  # 0.05 % is within noise
    assert [line for line in err.splitlines() if "FAIL" in line] == [
        "funcbench compare: FAIL m vjp: 1.0100 x the before side's instructions (limit 1.005)"]
    assert main([*argv, "--fail-above", "1.02"]) == 0


def test_report_text_is_parsed_back_exactly():
    report = Report.from_markdown(ORIGINAL_REPORT)
    assert Report.from_markdown(report.to_markdown()).rows == report.rows
    assert report.to_markdown() == ORIGINAL_REPORT
    assert compare(report, report).count("| 1.0 |") == 3


def test_presets_never_match_between_reports():
    small, full = Report(), Report()
    cell = Cell("wav2letter", "vjp", "autograd")
    small.add(Measurement.from_samples(cell, "small", "cpu", "time", [1.0, 1.0]))
    full.add(Measurement.from_samples(cell, "full", "cpu", "time", [2.0, 2.0]))
    assert "None" in compare(small, full).splitlines()[2]


def test_list_names_every_model_preset_and_reason(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    from funcbench.catalogue.registry import MODELS

    assert all(f"\n{m}" in out for m in MODELS)
    assert "presets: small, full" in out
    assert "no double backward" in out and "torch.func has no non-vectorized jacobian" in out


BAD_INPUTS = [
    (["run", "--model-filter", "alexnet"], "matches no model; models: wav2letter, deepspeech"),
    (["run", "--task-filter", "grad"], "matches no task; tasks: vjp, jvp"),
    (["run", "--preset", "huge"], "invalid choice: 'huge' (choose from 'small', 'full')"),
    (["run", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "--num-iters", "0"], "--num-iters must be at least 1"),
    (["run", "--num-iters", "ten"], "argument --num-iters: invalid int value: 'ten'"),
    (["run", "--api", "jax"], "invalid choice: 'jax'"),
    (["compare", "--before", "missing.md", "--after", "missing.md"], "cannot read report 'missing.md'"),
    (["compare", "--before", "a.md", "--after", "b.md", "--fail-above", "0"], "--fail-above must be a positive ratio"),
    (["compare", "--before", "a.md", "--after", "b.md", "--metric", "cycles"], "invalid choice: 'cycles'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


def exit_code(argv):
    """main's return code, or argparse's exit code for errors found while parsing."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize("argv, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_and_exit_2(argv, words, capsys):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_reports_name_the_file_and_line(tmp_path, capsys):
    bad_header, bad_row = tmp_path / "header.md", tmp_path / "row.md"
    bad_header.write_text("| a | b |\n| -- | -- |\n")
    bad_row.write_text("| model | task | mean | var |\n| -- | -- | -- | -- |\n| x | vjp | fast | 0 |\n")
    for path, words in ((bad_header, "not a funcbench report"), (bad_row, "line 3 is not")):
        assert main(["compare", "--before", str(path), "--after", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and words in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's answer")
def test_cuda_asked_where_none_exists(capsys):
    for argv in (["run", "--device", "cuda"], ["run", "--gpu", "0"]):
        assert main(argv) == 2
        assert "CUDA is not available here" in capsys.readouterr().err


def test_a_fresh_process_prints_no_traceback_and_the_console_script_exists():
    result = run_cli("run", "--model-filter", "alexnet")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    script = Path(sys.executable).parent / "funcbench"
    assert script.exists(), "pip install -e . installs the funcbench console script"
    listed = subprocess.run([str(script), "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "ppl_robust_reg" in listed.stdout


def test_default_allocator_refused_where_this_process_pinned_it(capsys):
    from funcbench.measurement.process import steady_allocator
    if not steady_allocator():
        pytest.skip("steady_allocator pins glibc's malloc only")
    assert main(["run", "--preset", "small", "--malloc", "default", "--model-filter", "ppl_simple_reg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fresh process" in err
