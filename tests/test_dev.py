"""dev.py: its install sharing (.venv gets hard links to the asv environment's torch & co.)
and the main job's plan."""
from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
from importlib import metadata
from pathlib import Path

from funcbench.catalogue.config import load_asv_conf

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("funcbench_dev", ROOT / "dev.py")
dev = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dev)


def _install_fake(site: Path, name: str, version: str, files: dict) -> None:
    """A distribution as pip leaves it: its files, METADATA, and a RECORD naming them all."""
    info = f"{name}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"}
    for relative, text in files.items():
        path = site / relative
        if not relative.startswith(".."):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    record = [f"{relative},," for relative in files] + [f"{info}/RECORD,,"]
    (site / info / "RECORD").write_text("\n".join(record) + "\n")


def test_share_installed_links_files_and_metadata(tmp_path):
    source, target = tmp_path / "env" / "site", tmp_path / "venv" / "site"
    _install_fake(source, "demo", "1.0", {"demo/__init__.py": "x = 1\n", "demo/sub/data.bin": "abc",
                                          "../../../bin/demo": "#!/other/python\n"})
    _install_fake(source, "pip", "99.0", {"pip/__init__.py": ""})  # the env's own tooling

    linked = dev.share_installed(source, target)

    assert linked == 4  # two package files, METADATA, RECORD; not the script, not pip
    for relative in ("demo/__init__.py", "demo/sub/data.bin", "demo-1.0.dist-info/RECORD"):
        assert (target / relative).stat().st_ino == (source / relative).stat().st_ino
    assert not (target / "pip").exists()
    assert not (tmp_path / "bin" / "demo").exists() and not (tmp_path / "venv" / "bin").exists()
    found = {d.metadata["Name"]: d.version for d in metadata.distributions(path=[str(target)])}
    assert found == {"demo": "1.0"}  # what pip in .venv reads to call torch & co. installed
    assert dev.share_installed(source, target) == 0  # already there: nothing relinked


def test_share_installed_leaves_a_distribution_the_target_has(tmp_path):
    source, target = tmp_path / "env", tmp_path / "venv"
    _install_fake(source, "demo", "1.0", {"demo/__init__.py": "x = 1\n"})
    _install_fake(target, "demo", "2.0", {"demo/__init__.py": "x = 2\n"})

    assert dev.share_installed(source, target) == 0
    assert (target / "demo" / "__init__.py").read_text() == "x = 2\n"
    assert not (target / "demo-1.0.dist-info").exists()


def test_a_failing_step_is_one_line_naming_it(tmp_path):
    import pytest
    with pytest.raises(dev.StepFailed, match=r"^copying: no result within 1 s; try again$"):
        dev.run("sleep", "5", what="copying", hint="try again", timeout=1)
    with pytest.raises(dev.StepFailed, match=r"^listing failed \(exit 2, see above\)$"):
        dev.run("ls", str(tmp_path / "missing"), what="listing", stderr=subprocess.DEVNULL)


def test_dev_links_from_the_env_dir_that_asv_conf_names():
    assert ROOT / load_asv_conf()["env_dir"] == dev.ASV_ENV_DIR


def test_main_job_plans_again_after_each_run_and_names_the_rest_with_a_command_that_runs_it(monkeypatch, capsys):
    regex = r"^(?!.*'(cuda)'\)$)(?=benchmarks\.\w+\.(peakmem_op)\()"  # quotes inside, as policy writes them
    part = lambda name, bench, seconds, of=None: dict(name=name, part=of or name, bench=[bench], seconds=seconds, items=3)
    plans = [  # what main-job answers to each ask, in turn
        dict(speed=1.0, runs=[part("instruction counts", "^counts", 180.0), part("time (70 of 78 parameter sets)", "^t1", 400.0, "time")],
             left_out=[part("time (the other 8)", "^t2", 90.0, "time"), part("peak memory and cost ratio", regex, 197.0)]),
        dict(speed=1.0, runs=[part("time", "^time", 500.0)], left_out=[part("peak memory and cost ratio", regex, 197.0)]),
        dict(speed=1.0, runs=[], left_out=[part("peak memory and cost ratio", regex, 197.0)]),
    ]
    asked = []

    def fake_run(cmd, **kwargs):
        cmd = [str(c) for c in cmd]
        asked.append(cmd)
        if "main-job" in cmd:
            return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(plans.pop(0)), stderr="")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(dev.subprocess, "run", fake_run)
    assert dev._run_planned("HEAD^!") == 0
    plans_asked = [c for c in asked if "main-job" in c]
    runs = [c[c.index("run") + 1:] for c in asked if "asv" in c and "main-job" not in c]
    # one asv run per plan, the first part of each; the next plan knows what ran
    assert runs == [["HEAD^!", "--bench", "^counts"], ["HEAD^!", "--bench", "^time"]]
    assert [c[c.index("--seconds-left") + 2:] for c in plans_asked] == [
        [], ["--done", "instruction counts"], ["--done", "instruction counts", "--done", "time"]]
    budget = float(plans_asked[0][plans_asked[0].index("--seconds-left") + 1])
    assert 0 < budget <= dev.MAIN_JOB_S - dev.PUBLISH_S
    left = [line for line in capsys.readouterr().out.splitlines() if "left out" in line]
    assert len(left) == 1 and "peak memory and cost ratio" in left[0]
    command = shlex.split(left[0].split("run it: ", 1)[1])
    assert command[1:] == ["run", "HEAD^!", "--bench", regex]  # the shell hands asv the regex unchanged


def test_main_job_without_a_plan_runs_the_whole_selection(monkeypatch, capsys):
    asked = []

    def fake_run(cmd, **kwargs):
        cmd = [str(c) for c in cmd]
        asked.append(cmd)
        failed = "main-job" in cmd
        return subprocess.CompletedProcess(cmd, 2 if failed else 0, stdout="" if failed else "^selection\n", stderr="")

    monkeypatch.setattr(dev.subprocess, "run", fake_run)
    assert dev._run_planned("HEAD^!") == 0
    assert "no main-job plan" in capsys.readouterr().out
    assert asked[-1][-4:] == ["run", "HEAD^!", "--bench", "^selection"]
