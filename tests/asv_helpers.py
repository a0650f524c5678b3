"""Helpers that make REAL asv results of this project, for the asv and dashboard tests.

- ``make_project_repo``: a temporary git repo holding two commits of this working tree
  (tracked plus untracked-but-not-ignored files, so it works before anything is committed).
- ``write_conf``: this project's asv.conf.json pointed at that repo and at test folders
  (funcbench.fleet.asv_driver.private_conf).
- ``asv``: runs ``python -m asv`` through funcbench.fleet.asv_driver.Asv (the one place that builds
  asv command lines); with ``home`` it runs under that HOME, because asv 0.6.6 keeps machine
  info in ~/.asv-machine.json and has no option to put it elsewhere.
- ``run_commits`` / ``run_existing``: ``asv run`` over commits (virtualenv from the matrix),
  and ``asv run -E existing:<python> --set-commit-hash`` (no build).
- ``shared_suite``: one asv environment + results per pytest session, for all test modules.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from funcbench.fleet.asv_driver import Asv, AsvError, private_conf

ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = Path(os.environ.get("FUNCBENCH_ASV_TEST_ENV_DIR", ROOT / ".asv" / "env"))

# A small, cheap --bench subset: ppl_simple_reg and multiheadattn vjp cells (light tier) of the two
# eager APIs, their time by both clocks, peak memory and cost ratio. asv matches "name(params)".
SMALL_BENCH = (r"^benchmarks\.(ppl_simple_reg|multiheadattn|Memory|CostRatio)\."
               r"(time_op|time_cpu_op|peakmem_op|track_cost_ratio)"
               r"\('(ppl_simple_reg|multiheadattn)(', '|:)vjp(', '|:)(autograd|func)'")
# The tests' runs time with both clocks (a CPU run's default is the CPU clock alone: docs/cpu-time.md),
# and count nothing unless a test asks (valgrind would add a minute to every run).
TEST_ENV = {"FUNCBENCH_CLOCKS": "wall,cpu", "FUNCBENCH_INSTRUCTIONS": "none"}


def project_files(root: Path = ROOT) -> List[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, check=True, capture_output=True, text=True).stdout
    return sorted(f for f in set(out.split("\0")) if f and (root / f).is_file())


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="funcbench test", GIT_AUTHOR_EMAIL="test@funcbench.invalid",
               GIT_COMMITTER_NAME="funcbench test", GIT_COMMITTER_EMAIL="test@funcbench.invalid")
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def make_project_repo(dest: Path, root: Path = ROOT) -> List[str]:
    """A git repo at ``dest`` (branch main) with two commits of the project; returns their hashes.

    The second commit only touches a file outside the package, so both measure the same code."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in project_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "first commit (test copy)")
    (dest / "ASV_TEST_MARKER.txt").write_text("second commit\n")
    _git(dest, "add", "ASV_TEST_MARKER.txt")
    _git(dest, "commit", "-q", "-m", "second commit (test copy)")
    return _git(dest, "rev-list", "--reverse", "main").split()


def commit_all(repo: Path, message: str) -> str:
    """Commit every change in ``repo``; returns the new commit's hash."""
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def project_workspace(work: Path):
    """``work``/repo, a copy of the project with two commits, and an empty ``work``/home for asv's
    machine file: (repo, home, (older commit, newer commit))."""
    repo, home = work / "repo", work / "home"
    home.mkdir(parents=True)
    return repo, home, tuple(make_project_repo(repo))


def write_conf(path: Path, repo: Path, work: Path, **overrides) -> Path:
    """This project's conf, with repo/benchmarks/results/html redirected to ``repo`` and ``work``.

    The environments stay in the project's .asv/env (or $FUNCBENCH_ASV_TEST_ENV_DIR): the
    torch virtualenv costs ~65 s and ~5.5 GB, and the same matrix serves dev.py dashboard."""
    paths = dict(repo=repo, benchmark_dir=repo / "benchmarks", env_dir=ENV_DIR, results_dir=work / "results",
                 html_dir=work / "html")
    return private_conf(path, **{**paths, **overrides})


def asv(conf: Path, *args: str, home: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
        timeout: float = 1800) -> str:
    """Run asv from this venv; returns its output, raises with the output on failure. ``home``:
    asv keeps machine info in ~/.asv-machine.json, so tests run it under a HOME of their own."""
    try:
        return Asv(conf, home=home)(*args, env=env, timeout=timeout)
    except AsvError as error:
        raise AssertionError(str(error)) from None


def add_machine(conf: Path, machine: str, home: Path) -> str:
    return asv(conf, "machine", "--yes", "--machine", machine, home=home)


def run_commits(conf: Path, spec: str, machine: str, home: Path, bench: str = SMALL_BENCH,
                extra: Sequence[str] = ()) -> str:
    """``asv run SPEC`` in the conf's virtualenv matrix (built and installed per commit)."""
    return asv(conf, "run", spec, "--machine", machine, "--bench", bench, "--show-stderr",
               "--record-samples", *extra, home=home, env=TEST_ENV)


def run_existing(conf: Path, python: str, commit: str, machine: str, home: Path,
                 bench: str = SMALL_BENCH, env: Optional[Dict[str, str]] = None) -> str:
    """``asv run -E existing:PYTHON --set-commit-hash COMMIT``: no build, results saved for COMMIT."""
    return asv(conf, "run", "-E", f"existing:{python}", "--set-commit-hash", commit, "--machine",
               machine, "--bench", bench, "--show-stderr", "--record-samples", home=home, env={**TEST_ENV, **(env or {})})


def env_python(conf: Path) -> str:
    """The python of the conf's (single-matrix) virtualenv that asv made."""
    env_dir = Path(json.loads(conf.read_text())["env_dir"])
    found = sorted(env_dir.glob("*/bin/python"))
    if len(found) != 1:
        raise AssertionError(f"expected one asv environment under {env_dir}, found {found}")
    return str(found[0])


def result_files(work: Path, machine: str) -> List[Path]:
    return sorted(p for p in (work / "results" / machine).glob("*.json") if p.name != "machine.json")


_SHARED: Dict[str, dict] = {}
TEST_TAG = "v0.1-test"


def shared_suite(base: Path) -> dict:
    """Once per pytest session: a two-commit repo (the first tagged TEST_TAG); results of both commits on machine
    ``cpu-box`` (virtualenv, HASHFILE) and of the second on ``gpu-box`` (existing env, as if
    copied from another box), published. Returns the paths, hashes and asv outputs."""
    key = str(base)
    if key in _SHARED:
        return _SHARED[key]
    work = base / "asv-suite"
    repo, home = work / "repo", work / "home"
    home.mkdir(parents=True, exist_ok=True)
    commits = make_project_repo(repo)
    _git(repo, "tag", TEST_TAG, commits[0])  # the dashboard test looks for it on the commit axis
    conf = write_conf(work / "asv.conf.json", repo, work)
    outputs = {}
    for machine in ("cpu-box", "gpu-box"):
        outputs[f"machine {machine}"] = add_machine(conf, machine, home)
    hashfile = work / "hashes.txt"
    hashfile.write_text("\n".join(commits) + "\n")
    outputs["run"] = run_commits(conf, f"HASHFILE:{hashfile}", "cpu-box", home)
    # The second "box": same project, results saved under another machine name.
    outputs["existing"] = run_existing(conf, env_python(conf), commits[1], "gpu-box", home)
    outputs["publish"] = asv(conf, "publish", home=home)
    _SHARED[key] = dict(work=work, repo=repo, home=home, conf=conf, commits=commits, outputs=outputs)
    return _SHARED[key]


def benchmark_ids(output: str) -> List[str]:
    return re.findall(r"benchmarks\.\w+\.\w+", output)


def load_dev():
    """dev.py as a module (it sits beside the package, not in it)."""
    spec = importlib.util.spec_from_file_location("funcbench_dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
