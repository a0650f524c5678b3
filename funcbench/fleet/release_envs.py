"""One Python environment per torch release (``funcbench releases build / list / prune``).

The releases folder (``.releases/`` by default, FUNCBENCH_RELEASES_DIR or --dir) holds:

- ``envs/<key>/``: one virtual environment per release, made by uv from one package cache
  (``cache/``, hard links on one file system: a file shared by two releases is on disk once).
  ``<key>`` is 12 hex digits of the release's name: every environment's path has one length,
  since the path lies on the counting process's heap (docs/instruction-counts.md);
- ``state/<name>.json``: what each build did (an ``EnvRecord``); a release counts as built only
  when its record says so, which is written last, after ``import torch`` and one checked cell
  passed in it: an interrupted build is never used, and a rerun resumes it;
- ``repo/``: the history (funcbench.results.release_history); ``results/``, ``html/``: asv's.

Every release is measured at one fixed path (funcbench.fleet.release_stage).

``prune`` removes environments and keeps records and results.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from funcbench.catalogue import config
from funcbench.fleet import release_index, release_stage
from funcbench.fleet.release_index import Release, ReleaseError
from funcbench.results import release_history

DEFAULT_DIR = config.ROOT / ".releases"
BUILD_TIMEOUT_S = 1800
# Disk a build needs before it starts (checked before any download): the torch wheel unpacked
# (~2.5x) plus its CUDA packages where the cache has none of this release's yet (measured:
# docs/releases.md#cost), and a margin for the rest of the system.
UNPACK_FACTOR, CUDA_PACKAGES_BYTES, MARGIN_BYTES = 2.5, 3.5e9, 2e9
CHECKED_CELL = "ppl_simple_reg:vjp:autograd"
BUILT, BUILDING, FAILED, PRUNED = "built", "building", "failed", "pruned"

# Runs in the release's interpreter: torch's version and build, each package funcbench's models
# need, and one cell built and checked (a wrong result fails the build).
CHECK = r'''
import json, sys
out = {}
def why(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
try:
    import torch
    out.update(torch=torch.__version__, torch_git=torch.version.git_version)
except Exception as error:
    out["torch_error"] = why(error)
    print(json.dumps(out)); sys.exit(0)
packages = {}
for name in ("numpy", "scipy", "torchvision", "torchaudio"):
    try:
        packages[name] = getattr(__import__(name), "__version__", "?")
    except ModuleNotFoundError:
        packages[name] = None
    except Exception as error:
        packages[name] = "does not import: " + why(error)
out["packages"] = packages
try:
    from funcbench.catalogue.registry import Cell
    from funcbench.measurement import cases
    cases.build_case(Cell.parse(sys.argv[1]), "cpu", "small").call_checked()
    out["checked"] = sys.argv[1]
except Exception as error:
    out["check_error"] = why(error)
print(json.dumps(out))
'''


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, folder: Optional[str] = None) -> "Layout":
        return cls(Path(folder or config.get(config.RELEASES_DIR) or DEFAULT_DIR).absolute())

    envs = property(lambda self: self.root / "envs")
    cache = property(lambda self: self.root / "cache")
    state = property(lambda self: self.root / "state")
    repo = property(lambda self: self.root / "repo")
    results = property(lambda self: self.root / "results")
    html = property(lambda self: self.root / "html")
    conf = property(lambda self: self.root / "asv.conf.json")
    python = property(lambda self: release_stage.PYTHON)  # what asv runs, whatever the folder

    def env_dir(self, name: str) -> Path:
        return self.envs / hashlib.sha256(name.encode()).hexdigest()[:12]

    def record_path(self, name: str) -> Path:
        return self.state / f"{name}.json"


@dataclasses.dataclass
class EnvRecord:
    """What funcbench knows of one release's environment (``state/<name>.json``)."""
    release: Release
    status: str  # building, built, failed, pruned
    python: str  # the interpreter that runs the release (the environment's, or the given one)
    base_python: Optional[str] = None  # the interpreter the environment was made from
    reason: Optional[str] = None  # why it failed
    packages: Dict[str, Optional[str]] = dataclasses.field(default_factory=dict)  # name -> version, or why not
    torch_git: Optional[str] = None
    commit: Optional[str] = None  # its commit in the history
    date: Optional[str] = None  # its place's date on the axis (the release's, or when it was first built here)
    build_seconds: Optional[float] = None
    disk_bytes: Optional[int] = None  # free disk this build took (shared files not counted twice)
    built_at: Optional[str] = None

    @property
    def name(self) -> str:
        return self.release.name

    def state(self) -> str:
        """Its status, with the reason where it failed."""
        return self.status + (f": {self.reason}" if self.reason else "")

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["release"] = self.release.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "EnvRecord":
        data = dict(data)
        data["release"] = Release.from_json(data["release"])
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def read_records(layout: Layout) -> Dict[str, EnvRecord]:
    out = {}
    for path in sorted(layout.state.glob("*.json")) if layout.state.is_dir() else []:
        try:
            record = EnvRecord.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or torn: `list` shows what it can read
        out[record.name] = record
    return out


def write_record(layout: Layout, record: EnvRecord) -> None:
    """Written whole or not at all (a rename): an interruption leaves the previous record."""
    path = layout.record_path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record.to_json(), indent=1))
    partial.replace(path)


def uv() -> str:
    """uv, beside this interpreter (dev.py installs it into .venv) or on PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.is_file() else shutil.which("uv")
    if not found:
        raise ReleaseError("uv is not installed here (pip install uv; dev.py installs it into .venv)")
    return found


def _uv_env(layout: Layout) -> Dict[str, str]:
    # uv trusts only its own bundled roots unless told otherwise; pip reads the machine's (pip.conf,
    # the system store), so a registry behind a private CA worked for pip and failed for uv
    # ("invalid peer certificate: UnknownIssuer") in an empty environment: the system store it is.
    return {"UV_SYSTEM_CERTS": "1", **os.environ, "UV_CACHE_DIR": str(layout.cache), "UV_LINK_MODE": "hardlink",
            "UV_HTTP_TIMEOUT": "120", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"}


def _run(command: List[str], env: Dict[str, str], what: str, timeout: float = BUILD_TIMEOUT_S) -> None:
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"{what}: no result within {timeout:.0f} s") from None
    except OSError as error:
        raise ReleaseError(f"{what}: {error.strerror}") from None
    if out.returncode != 0:
        lines = [line.strip() for line in (out.stderr or out.stdout).splitlines() if line.strip()]
        raise ReleaseError(f"{what} failed: {' '.join(lines[-3:])[:400] or f'exit {out.returncode}'}")


def estimate_bytes(layout: Layout, release: Release) -> float:
    """Free disk the build needs (see UNPACK_FACTOR)."""
    if release.kind == "python":
        return 0.0
    cached = layout.cache.is_dir() and any(layout.cache.glob("*/nvidia*"))
    cuda = 0.0 if release.kind == "wheel" else (CUDA_PACKAGES_BYTES * (0.3 if cached else 1.0))
    return release.wheel_bytes * UNPACK_FACTOR + cuda + MARGIN_BYTES


def check(python: str, cwd: Path) -> dict:
    """Run CHECK in ``python``: torch's version and build, the models' packages, one checked cell."""
    try:
        out = subprocess.run([python, "-c", CHECK, CHECKED_CELL], capture_output=True, text=True, timeout=900, cwd=cwd,
                             env=dict(os.environ, PYTHONWARNINGS="ignore"))
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"torch_error": f"the check did not finish: {error}"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {"torch_error": f"the check crashed: {tail}"}
    return json.loads(lines[-1])


def build(layout: Layout, release: Release, base_python: str, log: Callable[[str], None] = print) -> EnvRecord:
    """Build (or resume building) ``release``'s environment; the record says how it ended."""
    previous = read_records(layout).get(release.name)
    if previous and previous.status == BUILT and Path(previous.python).exists():
        log(f"{release.name}: built already ({previous.python})")
        return previous
    if release.kind == "python":
        return _adopt(layout, release, log)
    free = shutil.disk_usage(layout.root if layout.root.exists() else layout.root.parent).free
    need = estimate_bytes(layout, release)
    if free < need:
        record = _failed(layout, release, base_python, f"needs ~{need / 1e9:.1f} GB of free disk, {free / 1e9:.1f} GB "
                                                       f"free in {layout.root} (funcbench releases prune frees some)")
        log(f"{release.name}: FAILED: {record.reason}")
        return record
    env_dir = layout.env_dir(release.name)
    python = str(env_dir / "bin" / "python")
    record = EnvRecord(release, BUILDING, python, base_python, date=release.date or
                       (previous.date if previous else None) or release_index.utc_now())
    write_record(layout, record)
    log(f"{release.name}: building in {env_dir} ({'resuming' if env_dir.exists() else 'new'}; "
        f"~{need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free)")
    started = time.monotonic()
    try:
        env = _uv_env(layout)
        site, missing = _install(record, env_dir, env)
        facts = _check_staged(layout, record, env_dir, site, env, missing, log)
    except ReleaseError as error:
        record.status, record.reason = FAILED, str(error)
        write_record(layout, record)
        log(f"{release.name}: FAILED: {error}")
        return record
    packages = {k: v for k, v in facts["packages"].items() if v is not None and not str(v).startswith("does not")}
    packages.update(missing)
    record.packages, record.torch_git = packages, facts.get("torch_git")
    record.commit = release_history.commit(layout.repo, release.name, record.date)
    record.build_seconds = round(time.monotonic() - started, 1)
    record.disk_bytes = max(0, free - shutil.disk_usage(layout.root).free)
    record.status, record.built_at = BUILT, release_index.utc_now()
    write_record(layout, record)
    log(f"{release.name}: built in {record.build_seconds:.0f} s, {record.disk_bytes / 1e9:.2f} GB more on disk; "
        f"torch git {str(record.torch_git)[:12]}, checked {CHECKED_CELL}"
        + "".join(f"; {why}" for why in missing.values()))
    return record


def _install(record: EnvRecord, env_dir: Path, env: Dict[str, str]) -> Tuple[Path, Dict[str, str]]:
    """The environment made (or completed) by uv: torch, its pins and companions, what funcbench
    needs, funcbench itself by SOURCE. Returns (its site-packages, companion -> why it is missing)."""
    release, python = record.release, record.python
    _run([uv(), "venv", "--quiet", "--allow-existing", "--python", record.base_python, str(env_dir)], env, "uv venv")
    torch = release.source if release.kind == "wheel" else f"torch=={release.name}"
    wanted = [torch, *release_index.pins(release.version), "scipy", "asv_runner", "pympler"]
    if "setuptools<70" not in wanted:
        wanted.append("setuptools")  # torch.utils.benchmark and inductor's build import it
    missing = {}
    for package, requirement in release_index.companions(release.version,
                                                         release_index.python_tag(record.base_python)).items():
        if requirement:
            wanted.append(requirement)
        else:
            missing[package] = f"no {package} release for torch {release.version.public} on the registry"
    _run([uv(), "pip", "install", "--quiet", "--python", python, *wanted], env, f"installing {' '.join(wanted)}")
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, timeout=120).stdout.strip())
    (site / "funcbench.pth").write_text(str(release_stage.SOURCE) + "\n")  # funcbench: this checkout, by a fixed path
    return site, missing


def _check_staged(layout: Layout, record: EnvRecord, env_dir: Path, site: Path, env: Dict[str, str],
                  missing: Dict[str, str], log) -> dict:
    """Byte code compiled and CHECK run with the environment at its fixed path; a companion that
    does not import beside this build removed (its models n/a here, ``missing`` says why)."""
    with release_stage.machine_lock(log), staged(layout, record, log) as staged_python:
        release_stage.compile_byte_code(env_dir, site)
        facts = check(staged_python, layout.root)
    if "torch_error" in facts:
        raise ReleaseError(f"torch does not import: {facts['torch_error']}")
    for package, version_or_why in facts["packages"].items():
        if isinstance(version_or_why, str) and version_or_why.startswith("does not import"):
            _run([uv(), "pip", "uninstall", "--quiet", "--python", record.python, package], env, f"removing {package}")
            missing[package] = f"{package} {version_or_why}"
    if "check_error" in facts:
        raise ReleaseError(f"{CHECKED_CELL} failed its check: {facts['check_error']}")
    return facts


def _failed(layout: Layout, release: Release, base_python: Optional[str], reason: str) -> EnvRecord:
    record = EnvRecord(release, FAILED, "", base_python, reason=reason)
    previous = read_records(layout).get(release.name)
    if previous is None or previous.status != PRUNED:
        write_record(layout, record)
    return record


def _adopt(layout: Layout, release: Release, log) -> EnvRecord:
    """An interpreter with torch installed: checked in place, never changed (funcbench and
    asv_runner must import there already)."""
    python = release.source
    facts = check(python, layout.root)
    problem = facts.get("torch_error") or facts.get("check_error")
    if problem is None:
        probe = subprocess.run([python, "-c", "import asv_runner, funcbench"], capture_output=True, timeout=300)
        if probe.returncode != 0:
            problem = (f"funcbench and asv_runner must import in {python}: pip install --no-deps -e {config.ROOT} "
                       f"asv_runner pympler (funcbench does not change an interpreter it did not make)")
    if problem:
        record = _failed(layout, release, None, problem)
        log(f"{release.name}: FAILED: {problem}")
        return record
    previous = read_records(layout).get(release.name)
    date = release.date or (previous.date if previous else None) or release_index.utc_now()
    record = EnvRecord(release, BUILT, python, None, packages={k: v for k, v in facts["packages"].items() if v},
                       torch_git=facts.get("torch_git"), date=date, build_seconds=0.0, disk_bytes=0,
                       built_at=release_index.utc_now())
    record.commit = release_history.commit(layout.repo, release.name, date)
    write_record(layout, record)
    log(f"{release.name}: {python} checked ({CHECKED_CELL}), torch git {str(record.torch_git)[:12]}")
    return record


def staged(layout: Layout, record: EnvRecord, log: Callable[[str], None] = print):
    """``record``'s environment at the fixed path it is measured at (funcbench.fleet.release_stage)."""
    return release_stage.staged(record.name, record.python, record.release.kind != "python",
                                layout.root / "adopted" / layout.env_dir(record.name).name, log)


def prune(layout: Layout, record: EnvRecord, log: Callable[[str], None] = print) -> None:
    """Remove a release's environment (never an interpreter funcbench did not make); its record
    (commit, packages) and its results stay."""
    if record.release.kind != "python":
        env_dir = layout.env_dir(record.name)
        if env_dir.exists():
            shutil.rmtree(env_dir)
    record.status = PRUNED
    write_record(layout, record)
    log(f"{record.name}: pruned (results and record kept)")


def clean_cache(layout: Layout) -> None:
    """Empty uv's cache: what no remaining environment links is freed (uv does not count links)."""
    if layout.cache.is_dir():
        _run([uv(), "cache", "clean", "--quiet"], _uv_env(layout), "uv cache clean", timeout=600)
