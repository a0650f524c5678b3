"""The one place that builds asv command lines: subprocesses, private configurations and HOMEs,
machine registration, git.

- ``Asv``: one asv configuration file, machine and environment; ``asv(...)`` runs
  ``python -m asv ARGS --config CONF`` and raises ``AsvError`` (with the output's tail) when
  asv fails; ``run(...)`` adds ``--machine`` and the benchmark selection.
- ``private_conf``: a copy of asv.conf.json with results, html and environments redirected
  (asv 0.6.6 has no ``--results-dir`` option), for the audit, a shard, the tests.
- ``Workspace``: a folder of its own holding such a copy and a private HOME (asv keeps its
  machine file in ``~/.asv-machine.json``): the repo's results/ and the user's machine file
  are never touched. The audit runs asv through it, with ``-E existing:<python>
  --set-commit-hash`` (no build).

dev.py keeps its own few asv calls: it runs before this package is installed. What asv
writes is read back by funcbench.results.asv_results, never by parsing asv's printed tables.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from funcbench.catalogue import config
from funcbench.results import environment, profiles
from funcbench.results.result_files import existing_env_name  # noqa: F401 (fleet's modules take it from here)
from funcbench.catalogue.registry import Cell

ROOT = config.ROOT


class AsvError(RuntimeError):
    """An asv command failed; the message names it and ends with its output's tail."""


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def git_hash(rev: str, cwd: Path = ROOT) -> str:
    return git("rev-parse", rev, cwd=cwd)


def private_conf(path: Path, base: Path = ROOT / "asv.conf.json", **overrides) -> Path:
    """``base`` (asv.conf.json, comments dropped) written to ``path`` with ``overrides``; the
    repo and benchmark folder are made absolute, so the copy works from any folder."""
    conf = config.load_asv_conf(base)
    here = Path(base).resolve().parent
    conf.update(repo=str((here / conf.get("repo", ".")).resolve()),
                benchmark_dir=str((here / conf.get("benchmark_dir", "benchmarks")).resolve()))
    conf.update({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conf, indent=2))
    return path


def bench_regex(cell: Cell, method: str = "time_op") -> str:
    """asv --bench regex selecting one cell's benchmark of ``method`` (a time class's model,
    task, api params, or a one-value class's cell param)."""
    return (rf"^benchmarks\.\w+\.{method}\(('{cell.model}', '{cell.task}', '{cell.api}'"
            rf"|'{cell.model}:{cell.task}:{cell.api}'), ")


@dataclasses.dataclass
class Asv:
    """asv commands for one configuration file and machine.

    ``home``: the HOME asv runs under (its machine file lives there); None keeps the caller's.
    ``env``: the environment the commands get (default: this process's). ``log``: where to
    say each command ("+ ..."); with a log, asv's output streams to this process's instead of
    being captured."""
    conf: Path
    machine: Optional[str] = None
    home: Optional[Path] = None
    env: Optional[Dict[str, str]] = None
    log: Optional[Callable[[str], None]] = None

    def __post_init__(self):
        self.conf = Path(self.conf).absolute()
        if not self.conf.is_file():
            raise AsvError(f"no asv configuration {str(self.conf)!r} (run from the funcbench checkout, or --config)")
        settings = config.load_asv_conf(self.conf)
        here = self.conf.parent
        self.results_dir = here / settings.get("results_dir", "results")
        self.html_dir = here / settings.get("html_dir", "html")
        self.repo = here / settings.get("repo", ".")

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = dict(os.environ if self.env is None else self.env)
        if self.home is not None:
            env["HOME"] = str(self.home)
        for name in (profiles.COMMIT_VARIABLE, profiles.ENV_VARIABLE):  # only run() knows what its results are
            env.pop(name, None)
        env.update(extra or {})
        env[profiles.DIR_VARIABLE] = str(self.results_dir / profiles.UNFILED)  # what run() files after asv
        return env

    def command(self, *args: str) -> List[str]:
        return [sys.executable, "-m", "asv", *args, "--config", str(self.conf)]

    def __call__(self, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 6 * 3600) -> str:
        """Run ``asv ARGS``; its output (empty when streamed to a log)."""
        command = self.command(*args)
        if self.log:
            self.log("+ " + " ".join(command))
        try:
            proc = subprocess.run(command, cwd=self.conf.parent, env=self.environ(env), timeout=timeout,
                                  capture_output=self.log is None, text=True)
        except subprocess.TimeoutExpired:
            raise AsvError(f"asv {' '.join(args[:1])} gave no result within {timeout:.0f} s") from None
        output = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            tail = f" ({' '.join(command)}):\n{output[-6000:]}" if output else " (see above)"
            raise AsvError(f"asv {' '.join(args[:1])} exited {proc.returncode}{tail}")
        return output

    def register_machine(self) -> None:
        """``asv machine --yes --machine NAME``, unless HOME's machine file knows the machine."""
        home = Path(self.environ().get("HOME") or os.path.expanduser("~"))
        try:
            if self.machine in json.loads((home / ".asv-machine.json").read_text()):
                return
        except (OSError, ValueError):
            pass
        self("machine", "--yes", *(["--machine", self.machine] if self.machine else []))

    def run(self, *args: str, bench: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
            timeout: float = 6 * 3600) -> str:
        """``asv run ARGS --machine M --bench B ...``."""
        selection = [part for regex in bench for part in ("--bench", regex)]
        env = dict(env or {})
        # asv tells a benchmark process in an existing environment neither its commit nor its
        # environment (no ASV_COMMIT, ASV_ENV_NAME): the profiles' file needs both
        commit, environment_arg = self._commit(_arg(args, "--set-commit-hash")), _arg(args, "-E") or ""
        if commit:
            env[profiles.COMMIT_VARIABLE] = commit
        if environment_arg.startswith("existing:"):
            env[profiles.ENV_VARIABLE] = existing_env_name(environment_arg.split(":", 1)[1])
        try:
            return self("run", *args, *(["--machine", self.machine] if self.machine else []), *selection,
                        env=env, timeout=timeout)
        finally:  # the counts' profiles beside the results file asv wrote (also after a failed run)
            profiles.file(self.results_dir, self.machine or _arg(args, "--machine"))

    def _commit(self, name: Optional[str]) -> Optional[str]:
        """The full hash of a commit name in asv's repository, as asv resolves --set-commit-hash; None
        where there is none (asv then says why)."""
        if not name:
            return None
        try:
            return git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", cwd=self.repo)
        except (OSError, subprocess.CalledProcessError):
            return None


def _arg(args: Sequence[str], flag: str) -> Optional[str]:
    """The value an asv command line gives ``flag`` (``--flag V`` or ``--flag=V``), if any."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f} (1/5 min, {os.cpu_count()} cores)"


@dataclasses.dataclass
class Run:
    commit: str
    wall_s: float
    output: str
    load_before: str
    load_after: str
    quick: bool = False


class Workspace:
    """A private asv configuration in ``path``: this repo and its benchmarks, results, html,
    environments and HOME under ``path``; runs in an existing environment (``python``)."""

    def __init__(self, path: Path, device: str = "cpu", preset: str = config.PRESET.default,
                 machine: str = "funcbench-audit", python: str = sys.executable):
        self.path = Path(path)
        self.home = self.path / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.results_dir = self.path / "results"
        self.device, self.preset, self.machine, self.python = device, preset, machine, python
        self.conf = private_conf(self.path / "asv.conf.json", results_dir=self.results_dir,
                                 html_dir=self.path / "html", env_dir=self.path / "env")
        self.asv = Asv(self.conf, machine, self.home, self.env())
        self.asv.register_machine()
        self.fingerprints: Dict[str, environment.Fingerprint] = {}

    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = dict(os.environ, HOME=str(self.home), **{config.DEVICE.name: self.device, config.PRESET.name: self.preset,
                                                       config.CLOCKS.name: "wall,cpu"})  # what --bench selects decides
        for setting in (config.INJECT_SLOWDOWN, config.INJECT_OP):  # never inherited: only a test sets them
            env.pop(setting.name, None)
        env.update(extra or {})
        return env

    def run(self, commit: str, bench: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
            quick: bool = False, extra: Sequence[str] = ()) -> Run:
        """``asv run -E existing:<python> --set-commit-hash COMMIT --record-samples``."""
        args = ["-E", f"existing:{self.python}", "--show-stderr", *extra]
        args += ["--quick"] if quick else ["--set-commit-hash", commit, "--record-samples"]  # --quick saves nothing
        if self.python not in self.fingerprints:  # what compare will name, recorded beside the results
            self.fingerprints[self.python] = environment.probe(self.python)
        environment.record(self.results_dir, self.machine, existing_env_name(self.python), self.fingerprints[self.python])
        before = load_avg()
        start = time.perf_counter()
        output = self.asv.run(*args, bench=bench, env=self.env(env))
        return Run(commit, time.perf_counter() - start, output, before, load_avg(), quick)

    def forget(self, commit: str) -> None:
        """Remove ``commit``'s results of this machine (the audit's runs reuse two commit labels)."""
        for path in (self.results_dir / self.machine).glob(f"{commit[:8]}-*.json"):
            path.unlink()
