"""What merge-results wrote into a results tree: one JSON object per line (file, sha256, plan,
time) in ``funcbench-merged.jsonl``, so that a rerun of the same plan replaces its own files
without keeping them as ``.bak`` and keeps every other file it would replace."""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Dict, Tuple

RECORD = "funcbench-merged.jsonl"  # not *.json: asv reads every *.json under results/ as results


def read(into: Path) -> Dict[str, Tuple[str, str]]:
    """file (relative to ``into``) -> (sha256, plan) of the merge that last wrote it."""
    found = {}
    try:
        lines = (into / RECORD).read_text().splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            found[entry["file"]] = (entry["sha256"], entry["plan"])
        except (ValueError, KeyError, TypeError):
            continue  # an unreadable line proves nothing: such a file is kept as .bak
    return found


def append(into: Path, name: str, digest: str, plan: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(into / RECORD, "a") as handle:
        handle.write(json.dumps({"file": name, "sha256": digest, "plan": plan, "written": stamp}) + "\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
