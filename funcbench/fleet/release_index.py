"""The torch releases a package registry offers for one Python on this platform, and what a
``funcbench releases`` SPEC names (docs/releases.md).

The registry is read through its PEP 691 JSON index (``<index>/torch/``: every file with its
upload time and size), the index ``UV_INDEX_URL`` or ``PIP_INDEX_URL`` names, else PyPI's.
A release is on the history's axis by its version; its date is the first upload of its files,
the same for everyone who reads that registry (so the history's commits are the same too).

A SPEC is one of:
- ``2.8.0``: that release; ``2.8``: the newest patch of 2.8;
- ``2.8:`` / ``2.0:2.5`` / ``:2.3``: the newest patch of every minor in the range (inclusive);
- a wheel file (``torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl``);
- an interpreter with torch installed (a contributor's source build), placed by its version.
No SPEC: the newest patch of every minor from 2.0 (``DEFAULT_SPEC``).
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

DEFAULT_SPEC = "2.0:"
OLDEST = Version("2.0")  # torch.func, which every API but autograd's needs, first shipped in 2.0
PYPI = "https://pypi.org/simple"
INDEX_TIMEOUT_S = 60
COMPANIONS = ("torchvision", "torchaudio")


class ReleaseError(Exception):
    """A SPEC that names no release that can be built here, or a registry that cannot be read:
    one line for the user."""


@dataclasses.dataclass(frozen=True)
class Wheel:
    filename: str
    size: int  # bytes, 0 where the index does not say
    uploaded: Optional[str]  # ISO 8601, UTC


@dataclasses.dataclass(frozen=True)
class Release:
    """One point of the history: a torch build, named by its version."""
    name: str  # torch's version as the axis orders it: 2.0.1, 2.13.0+cpu, 2.16.0a0+git1234abc
    kind: str  # "registry", "wheel" or "python"
    source: str  # the requirement (torch==2.0.1), the wheel's path, or the interpreter's path
    date: Optional[str] = None  # ISO 8601 (UTC) of the release where known
    wheel_bytes: int = 0  # the torch wheel's size where known (the disk estimate)

    @property
    def version(self) -> Version:
        return Version(self.name)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Release":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def index_url() -> str:
    return (os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or PYPI).rstrip("/")


def python_tag(python: str) -> str:
    """``cp311`` for a CPython 3.11 interpreter."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
        name, major, minor = out.stdout.split()
    except (OSError, subprocess.TimeoutExpired, ValueError):
        raise ReleaseError(f"cannot run the interpreter {python}") from None
    if name != "cpython":
        raise ReleaseError(f"{python} is {name}; torch's wheels are for CPython")
    return f"cp{major}{minor}"


def wheel_fits(filename: str, tag: str, machine: str = platform.machine()) -> bool:
    """Whether a wheel installs on CPython ``tag`` (cp311) on Linux ``machine``."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return any(t.interpreter == tag and t.abi in (tag, "abi3", "none") and t.platform.startswith("manylinux")
               and t.platform.endswith("_" + machine) for t in tags)


@functools.lru_cache(maxsize=None)
def _project_files(project: str, url: str) -> Tuple[dict, ...]:
    request = urllib.request.Request(f"{url}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=INDEX_TIMEOUT_S) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ReleaseError(f"cannot read {project}'s releases from {url} ({reason}); check that this machine reaches "
                           f"the package registry, or set UV_INDEX_URL") from None
    if not isinstance(data, dict) or "files" not in data:
        raise ReleaseError(f"{url}/{project}/ is no PEP 691 JSON index (set UV_INDEX_URL to one that is)")
    return tuple(data["files"])


def wheels(project: str, tag: str, url: Optional[str] = None) -> Dict[Version, List[Wheel]]:
    """Version -> the wheels of ``project`` that fit CPython ``tag`` here (yanked ones left out)."""
    out: Dict[Version, List[Wheel]] = {}
    for entry in _project_files(project, url or index_url()):
        name = entry.get("filename", "")
        if not name.endswith(".whl") or entry.get("yanked") or not wheel_fits(name, tag):
            continue
        try:
            version = parse_wheel_filename(name)[1]
        except InvalidWheelFilename:
            continue
        out.setdefault(version, []).append(Wheel(name, int(entry.get("size") or 0), entry.get("upload-time")))
    return out


def release_dates(project: str, url: Optional[str] = None) -> Dict[Version, str]:
    """Version -> its first file's upload time, over every file of the project (any Python)."""
    out: Dict[Version, str] = {}
    for entry in _project_files(project, url or index_url()):
        match = re.match(rf"{re.escape(project)}-([^-]+)-", entry.get("filename", ""))
        uploaded = entry.get("upload-time")
        if not match or not uploaded:
            continue
        try:
            version = Version(match.group(1))
        except InvalidVersion:
            continue
        out[version] = min(out.get(version, uploaded), uploaded)
    return out


def all_versions(project: str, url: Optional[str] = None) -> List[Version]:
    """Every version the registry has files of, for any Python (to tell 'does not exist' from 'no wheel here')."""
    return sorted(release_dates(project, url))


def companion_requirement(project: str, torch: Version) -> str:
    """The companion release series of a torch release: torchvision 0.(minor+15).*, torchaudio
    2.minor.* (each release of them pins one torch release exactly; the installer picks the
    patch that pins this one)."""
    if project == "torchvision":
        return f"torchvision=={torch.major - 2}.{torch.minor + 15}.*" if torch.major == 2 else ""
    return f"torchaudio=={torch.major}.{torch.minor}.*"


def companions(torch: Version, tag: str, url: Optional[str] = None) -> Dict[str, Optional[str]]:
    """Per companion package: its requirement, or None where the registry has no release of it
    for this torch and Python (the models that need it are n/a in that release)."""
    out: Dict[str, Optional[str]] = {}
    for project in COMPANIONS:
        requirement = companion_requirement(project, torch)
        series = requirement.split("==")[-1].rstrip(".*") if requirement else None
        found = series and any(str(v).startswith(series + ".") or str(v) == series
                               for v in wheels(project, tag, url) if not v.is_prerelease)
        out[project] = requirement if found else None
    return out


def pins(torch: Version) -> List[str]:
    """What else a release needs to import and run funcbench on Python 3.11: numpy < 2 before
    2.3 (the first release built against NumPy 2), setuptools < 70 before 2.4 (their
    torch.utils.benchmark imports pkg_resources)."""
    out = []
    if torch < Version("2.3"):
        out.append("numpy<2")
    if torch < Version("2.4"):
        out.append("setuptools<70")
    return out


def _parse_version(text: str, spec: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ReleaseError(f"{spec!r} is no torch version, range (2.8: or 2.0:2.5), wheel file or python") from None


def _newest_patches(versions: Sequence[Version], low: Optional[Version], high: Optional[Version]) -> List[Version]:
    """The newest final patch of every minor between ``low`` and ``high`` (each minor's own: 2.5 means 2.5.*)."""
    newest: Dict[Tuple[int, int], Version] = {}
    for version in versions:
        if version.is_prerelease or version.is_devrelease or version.local:
            continue
        minor = (version.major, version.minor)
        if low is not None and minor < (low.major, low.minor):
            continue
        if high is not None and minor > (high.major, high.minor):
            continue
        newest[minor] = max(newest.get(minor, version), version)
    return sorted(newest.values())


def _registry_release(version: Version, available: Dict[Version, List[Wheel]], dates: Dict[Version, str],
                      tag: str) -> Release:
    if version < OLDEST:
        raise ReleaseError(f"torch {version} is older than {OLDEST}: funcbench measures torch.func, which {OLDEST} "
                           f"first shipped")
    if version not in available:
        if version in dates:
            raise ReleaseError(f"torch {version} has no wheel for CPython {tag[2]}.{tag[3:]} on Linux "
                               f"{platform.machine()} on {index_url()}")
        raise ReleaseError(f"torch {version} does not exist on {index_url()}")
    wheel = max(available[version], key=lambda w: w.size)
    return Release(str(version), "registry", f"torch=={version}", dates.get(version), wheel.size)


def resolve(spec: str, tag: str) -> List[Release]:
    """The releases one SPEC names (ReleaseError, one line, where it names none that fits here)."""
    path = Path(spec)
    if spec.endswith(".whl"):
        if not path.is_file():
            raise ReleaseError(f"no wheel file {spec}")
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            raise ReleaseError(f"{path.name} is no wheel file name") from None
        if name != "torch":
            raise ReleaseError(f"{path.name} is a wheel of {name}, not of torch")
        if not wheel_fits(path.name, tag):
            raise ReleaseError(f"{path.name} does not install on CPython {tag[2]}.{tag[3:]} on Linux {platform.machine()}")
        return [Release(str(version), "wheel", str(path.resolve()), _wheel_date(path), path.stat().st_size)]
    if os.sep in spec or path.is_file():
        return [python_release(spec)]
    available, dates = wheels("torch", tag), release_dates("torch")
    if ":" in spec:
        low_text, _, high_text = spec.partition(":")
        low = _parse_version(low_text, spec) if low_text else None
        high = _parse_version(high_text, spec) if high_text else None
        found = [v for v in _newest_patches(list(available), low, high) if v >= OLDEST]
        if not found:
            raise ReleaseError(f"no torch release in {spec} has a wheel for CPython {tag[2]}.{tag[3:]} here")
        return [_registry_release(v, available, dates, tag) for v in found]
    version = _parse_version(spec, spec)
    if len(version.release) == 2:  # 2.8: its newest patch
        found = _newest_patches(list(available), version, version)
        if not found:
            raise ReleaseError(f"no torch {spec}.* release has a wheel for CPython {tag[2]}.{tag[3:]} here"
                               if any((v.major, v.minor) == version.release for v in dates)
                               else f"torch {spec} does not exist on {index_url()}")
        version = found[-1]
    return [_registry_release(version, available, dates, tag)]


def _wheel_date(path: Path) -> Optional[str]:
    """When the wheel was built: the time stamp of its torch/version.py (the same for every copy
    of the file, so its commit in the history is the same wherever it is built)."""
    try:
        with zipfile.ZipFile(path) as wheel:
            stamp = wheel.getinfo("torch/version.py").date_time
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    return datetime.datetime(*stamp, tzinfo=datetime.timezone.utc).isoformat(timespec="seconds")


# The version, and when the installed torch/version.py was written (its build, for a source build).
PROBE_TORCH = ("import datetime, os, torch; print(torch.__version__, datetime.datetime.fromtimestamp("
               "int(os.path.getmtime(torch.version.__file__)), datetime.timezone.utc).isoformat())")


def python_release(python: str) -> Release:
    """An interpreter with torch installed, named by its torch's version."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ReleaseError(f"{python} is no interpreter (give a torch version, a range, a wheel file or a python)")
    try:
        out = subprocess.run([python, "-c", PROBE_TORCH], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ReleaseError(f"cannot run {python}: {error}") from None
    if out.returncode != 0 or not out.stdout.strip():
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseError(f"torch does not import in {python}: {tail}")
    version, date = out.stdout.split()[-2:]
    return Release(str(Version(version)), "python", os.path.abspath(python), date)


def resolve_all(specs: Sequence[str], tag: str) -> Tuple[List[Release], Dict[str, str]]:
    """The releases of every SPEC (none: DEFAULT_SPEC), in version order, each once; and SPEC ->
    one line, for each SPEC that names none."""
    releases: Dict[str, Release] = {}
    problems: Dict[str, str] = {}
    for spec in specs or [DEFAULT_SPEC]:
        try:
            for release in resolve(spec, tag):
                releases.setdefault(release.name, release)
        except ReleaseError as error:
            problems[spec] = str(error)
    return sorted(releases.values(), key=lambda r: r.version), problems


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
