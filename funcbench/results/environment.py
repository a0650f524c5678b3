"""What a measurement ran on, beyond the code: the facts that move time or counts.

Two sides of a comparison should differ in what is being compared (a torch build, a commit) and
nothing else. Measured here: one torch 2.14.1 in two venvs on two interpreters (pyenv's 3.11.7,
Debian's 3.11.2) gave 19/19 ppl rows "significantly slower" (+2-23 %), while the table named only
two environment paths. A ``Fingerprint`` holds those facts; ``probe(python)`` reads them in that
interpreter (a subprocess, so nothing is imported here); ``differences`` names each one that
differs. ``funcbench interleave`` says them before it starts; ``funcbench compare`` in its
heading and summary. funcbench's own asv runs record the fingerprints of their environments
next to asv's results (``record``), so a comparison elsewhere still knows them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

RECORD = "funcbench-environments.json"  # in results/<machine>/: env_name -> fingerprint

# Runs in the probed interpreter: only the standard library at the top, everything else guarded.
PROBE = r'''
import hashlib, json, os, platform, sys
def version(name):
    try:
        module = __import__(name)
        return getattr(module, "__version__", "?")
    except Exception as error:
        return "does not import: " + type(error).__name__
facts = dict(
    python=platform.python_version(), implementation=platform.python_implementation(),
    python_build=" ".join(platform.python_build()), python_compiler=platform.python_compiler(),
    python_home=sys.base_prefix, python_binary=hashlib.sha256(open(sys.executable, "rb").read()).hexdigest()[:16],
    numpy=version("numpy"),
    torchvision=version("torchvision"),
    torchaudio=version("torchaudio"), libc=" ".join(platform.libc_ver()),
    malloc_env=" ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                        if k == "LD_PRELOAD" or k.startswith("MALLOC_") or k == "GLIBC_TUNABLES") or "none",
    machine=platform.node(), arch=platform.machine(), cores=os.cpu_count())
try:
    with open("/proc/cpuinfo") as handle:
        facts["cpu"] = next((l.split(":", 1)[1].strip() for l in handle if l.startswith("model name")), "?")
except OSError:
    facts["cpu"] = platform.processor() or "?"
try:
    import torch
    facts.update(torch=torch.__version__, torch_git=torch.version.git_version, torch_cuda=str(torch.version.cuda),
                 torch_debug=str(torch.version.debug))
except Exception as error:
    facts.update(torch="does not import: " + type(error).__name__)
try:
    from funcbench.measurement import process
    facts.update(threads=str(process.THREADS), allocator="steady (glibc malloc pinned)"
                 if platform.libc_ver()[0] == "glibc" else "the C library's default")
except Exception as error:
    facts.update(threads="funcbench does not import: " + type(error).__name__)
print(json.dumps(facts))
'''

# The facts, in the order they are reported, with what each one is called. The torch build is
# what an A/B of two builds compares; everything else should be equal.
FACTS = {
    "torch": "torch version", "torch_git": "torch.version.git_version", "torch_cuda": "torch's CUDA",
    "torch_debug": "torch debug build",
    # funcbench releases: the release and its environment belong to the build being compared
    "release": "release", "release_python": "release environment",
    "python": "python version", "implementation": "python implementation", "python_build": "python build",
    "python_compiler": "python compiler", "python_home": "python installation", "python_binary": "python binary (sha256)",
    "numpy": "numpy",
    "torchvision": "torchvision", "torchaudio": "torchaudio", "threads": "funcbench's threads per process",
    "allocator": "allocator", "libc": "C library", "malloc_env": "allocator environment", "machine": "machine",
    "arch": "architecture", "cpu": "CPU", "cores": "cores",
    # what asv's own results say of a side (known even where nothing else is)
    "asv_python": "python (asv)", "asv_req_torch": "torch (asv's matrix)", "asv_req_torchvision": "torchvision (asv's matrix)",
    "asv_req_torchaudio": "torchaudio (asv's matrix)", "asv_machine": "asv machine", "asv_cpu": "CPU (asv)",
    "asv_num_cpu": "cores (asv)", "asv_os": "OS (asv)", "asv_arch": "architecture (asv)", "asv_ram": "RAM (asv)",
}
TORCH_BUILD = ("torch", "torch_git", "torch_cuda", "torch_debug", "release", "release_python", "asv_req_torch")


class ProbeFailed(RuntimeError):
    """The interpreter could not be run or printed no facts: one line saying why."""


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    facts: Dict[str, str]
    source: str  # where the facts come from: "probed <python>", "recorded by <command>", "asv's results"

    def get(self, fact: str) -> Optional[str]:
        value = self.facts.get(fact)
        return None if value is None else str(value)

    def to_json(self) -> dict:
        return dict(facts=self.facts, source=self.source)

    @classmethod
    def from_json(cls, data: dict) -> "Fingerprint":
        return cls({k: str(v) for k, v in data["facts"].items()}, data.get("source", "recorded"))


def probe(python: str, timeout: float = 300) -> Fingerprint:
    """The facts of interpreter ``python``, read by running it."""
    try:
        result = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=timeout,
                                env=dict(os.environ, PYTHONWARNINGS="ignore"))
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProbeFailed(f"cannot run {python}: {error}") from None
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeFailed(f"{python} printed no facts (exit {result.returncode}): {tail}")
    return Fingerprint({k: str(v) for k, v in json.loads(lines[-1]).items()}, f"probed {python}")


@dataclasses.dataclass(frozen=True)
class Difference:
    fact: str
    before: Optional[str]
    after: Optional[str]

    @property
    def torch_build(self) -> bool:
        return self.fact in TORCH_BUILD

    def __str__(self) -> str:
        return f"{FACTS.get(self.fact, self.fact)}: {self.before or 'not known'} -> {self.after or 'not known'}"


def differences(before: Fingerprint, after: Fingerprint) -> List[Difference]:
    """Every fact both sides know that differs, torch's build first (a fact only one side knows
    is not a difference: asv's own results record fewer facts than a probe)."""
    out = []
    for fact in list(FACTS) + sorted(set(before.facts) & set(after.facts) - set(FACTS)):
        a, b = before.get(fact), after.get(fact)
        if a is not None and b is not None and a != b:
            out.append(Difference(fact, a, b))
    return out


def describe(diffs: List[Difference]) -> List[str]:
    """One line per difference, then the verdict an A/B of torch builds needs."""
    lines = [str(d) for d in diffs]
    others = [d for d in diffs if not d.torch_build]
    if others:
        lines.append(f"WARNING: the sides differ in {len(others)} thing(s) besides the torch build "
                     f"({', '.join(FACTS.get(d.fact, d.fact) for d in others)}): a difference in time or counts may "
                     f"come from them, not from torch")
    elif not diffs:
        lines.append("the sides differ in nothing recorded (same environment facts)")
    return lines


def recorded(results_dir: Path, machine: str) -> Dict[str, Fingerprint]:
    """env_name -> fingerprint that funcbench recorded for ``machine`` (empty when none)."""
    try:
        data = json.loads((Path(results_dir) / machine / RECORD).read_text())
        return {env: Fingerprint.from_json(entry) for env, entry in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_key(env_name: str, commit: Optional[str] = None) -> str:
    """The key of a fingerprint: the environment's name, with the commit where one environment
    name measures other builds at other commits (the release history's one interpreter path)."""
    return f"{env_name}@{commit}" if commit else env_name


def record(results_dir: Path, machine: str, env_name: str, fingerprint: Fingerprint, commit: Optional[str] = None) -> None:
    """Record ``fingerprint`` as ``env_name``'s on ``machine`` (at ``commit`` only, where given;
    the newest wins: an environment is probed just before funcbench measures it)."""
    path = Path(results_dir) / machine / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    known = {env: f.to_json() for env, f in recorded(results_dir, machine).items()}
    known[record_key(env_name, commit)] = fingerprint.to_json()
    path.write_text(json.dumps(known, indent=2, sort_keys=True))
