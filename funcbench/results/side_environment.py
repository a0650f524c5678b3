"""What the environment of an asv results file ran on: funcbench's recorded fingerprint, its
interpreter probed now, or only what asv's results say."""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Dict, Optional

from funcbench.results import environment
from funcbench.results.environment import Fingerprint
from funcbench.results.result_files import ResultFile


def _machine_facts(results_dir: str, machine: str) -> Dict[str, str]:
    """What asv's machine.json says of a machine (asv's names prefixed: they are asv's words)."""
    try:
        with open(os.path.join(results_dir, machine, "machine.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    facts = {"asv_machine": machine}
    facts.update({f"asv_{k}": str(v) for k, v in data.items() if k in ("arch", "cpu", "num_cpu", "os", "ram")})
    return facts


def _existing_python(env_name: str) -> Optional[str]:
    """The interpreter of an ``existing`` environment, from asv's name for it (its path with the
    separators written as '_'), where exactly one such interpreter exists here."""
    prefix = "existing-py"
    if not env_name.startswith(prefix + "_"):
        return None
    parts = env_name[len(prefix):].split("_")[1:]
    if not parts or len(parts) > 14:
        return None
    found = []
    for choice in itertools.product("/_", repeat=len(parts) - 1):
        path = "/" + parts[0] + "".join(sep + part for sep, part in zip(choice, parts[1:]))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
    return found[0] if len(found) == 1 else None


def _matrix_python(env_name: str, conf_path: str = "asv.conf.json") -> Optional[str]:
    """The interpreter of a matrix environment that asv made here from ``conf_path``."""
    if not os.path.isfile(conf_path):
        return None
    try:
        from asv import environment as asv_environment
        from asv.config import Config

        for env in asv_environment.get_environments(Config.load(conf_path), None):
            python = os.path.join(env._path, "bin", "python")
            if env.name == env_name and os.path.isfile(python):
                return python
    except Exception:  # another asv, a conf it cannot load: the environment is simply not known here
        return None
    return None


def fingerprint(entry: ResultFile, results_dir: str) -> Fingerprint:
    """What a results file's environment ran on: the fingerprint funcbench recorded when it ran
    it, else its interpreter probed now where it is still here, else only what asv's results say
    (python version, the matrix's requirements, machine.json). asv's machine facts are always added."""
    asv_facts = _machine_facts(results_dir, entry.machine)
    if os.sep not in entry.python:  # an existing environment's is its path, which its name says already
        asv_facts["asv_python"] = entry.python
    asv_facts.update({f"asv_req_{k}": v for k, v in entry.requirements.items()})
    known = environment.recorded(Path(results_dir), entry.machine)
    found = known.get(environment.record_key(entry.env_name, entry.commit)) or known.get(entry.env_name)
    if found is None:
        python = _existing_python(entry.env_name) or _matrix_python(entry.env_name)
        if python:
            try:
                found = environment.probe(python)
                found = Fingerprint(found.facts, f"{found.source} (now, not when it was measured)")
            except environment.ProbeFailed:
                found = None
    if found is None:
        return Fingerprint(asv_facts, "asv's results only (funcbench recorded nothing, the interpreter is not here)")
    return Fingerprint({**found.facts, **asv_facts}, found.source)
