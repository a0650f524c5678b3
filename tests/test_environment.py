"""Naming what differs between two sides: the facts of an interpreter, read by running it."""
import sys

from funcbench.results import environment


def test_probe_reads_the_interpreter_and_torch():
    facts = environment.probe(sys.executable)
    assert facts.source == f"probed {sys.executable}"
    for fact in ("python", "python_build", "python_home", "torch", "torch_git", "numpy", "threads", "allocator",
                 "machine", "cores"):
        assert facts.get(fact), fact
    assert facts.get("threads") == "1"


def test_differences_name_each_fact_and_warn_beyond_the_torch_build():
    a = environment.Fingerprint({"python": "3.11.7", "python_home": "/root/.pyenv/versions/3.11.7", "torch": "2.14.1",
                                 "torch_git": "aaa", "numpy": "2.3.0"}, "probed a")
    b = environment.Fingerprint({"python": "3.11.2", "python_home": "/usr", "torch": "2.14.1", "torch_git": "bbb",
                                 "numpy": "2.3.0"}, "probed b")
    diffs = environment.differences(a, b)
    assert [d.fact for d in diffs] == ["torch_git", "python", "python_home"]  # torch's build first
    lines = environment.describe(diffs)
    assert lines[:3] == ["torch.version.git_version: aaa -> bbb", "python version: 3.11.7 -> 3.11.2",
                         "python installation: /root/.pyenv/versions/3.11.7 -> /usr"]
    assert lines[3].startswith("WARNING: the sides differ in 2 thing(s) besides the torch build (python version, "
                               "python installation)")
    only_torch = environment.describe(environment.differences(a, environment.Fingerprint(dict(a.facts, torch_git="c"),
                                                                                         "x")))
    assert only_torch == ["torch.version.git_version: aaa -> c"]  # what an A/B of torch builds should show
    assert environment.describe([]) == ["the sides differ in nothing recorded (same environment facts)"]


def test_a_fact_one_side_lacks_is_not_a_difference(tmp_path):
    a = environment.Fingerprint({"python": "3.11.7", "torch": "2.14.1"}, "probed")
    b = environment.Fingerprint({"asv_python": "3.11"}, "asv's results only")
    assert environment.differences(a, b) == []
    environment.record(tmp_path, "box", "env-a", a)
    environment.record(tmp_path, "box", "env-b", b)
    assert environment.recorded(tmp_path, "box") == {"env-a": a, "env-b": b}


def test_a_python_that_cannot_run_is_one_line(tmp_path):
    import pytest
    with pytest.raises(environment.ProbeFailed) as failed:
        environment.probe(str(tmp_path / "no-python"))
    assert "\n" not in str(failed.value)
