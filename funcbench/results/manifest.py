"""What one shard was asked to run and what it finished: ``<results-dir>/funcbench-shard.json``,
written by ``funcbench shard`` and read by ``funcbench merge-results``.

asv stores a parameter set it was not asked to run as NaN, the same as one it skipped (n/a), so
a merge cannot tell "not this shard's" from "n/a" from the results alone: the manifest says.
Its unit is the parameter set (funcbench.catalogue.param_sets.ParamSet).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Tuple

from funcbench.catalogue.param_sets import ParamSet

MANIFEST = "funcbench-shard.json"
VERSION = 1
@dataclasses.dataclass
class ShardManifest:
    shard: int  # 1-based
    shards: int
    plan: str  # digest of the whole plan (every shard's items): shards of one plan share it
    machine: str
    commits: List[str]  # full hashes asv was asked to run
    asv_args: List[str]  # the user's asv run arguments (before the shard's own --bench)
    planned: List[ParamSet]
    seconds: float  # the plan's estimate for this shard (committed cost table)
    finished: List[Tuple[ParamSet, str, str]] = dataclasses.field(default_factory=list)  # (item, commit, env_name)
    started: Optional[str] = None  # ISO 8601, UTC
    ended: Optional[str] = None  # None while running, or where the shard died
    version: int = VERSION
    # (item, commit) where the plan's unit is a parameter set at one commit (funcbench releases
    # run --shard: a release per commit); None: every planned item at every commit.
    pairs: Optional[List[Tuple[ParamSet, str]]] = None

    def work(self) -> List[Tuple[ParamSet, str]]:
        """(item, commit) this shard was asked to measure."""
        return list(self.pairs) if self.pairs is not None else [(i, c) for i in self.planned for c in self.commits]

    def write(self, results_dir: Path) -> Path:
        path = Path(results_dir) / MANIFEST
        data = dataclasses.asdict(self)
        data["planned"] = [i.to_json() for i in self.planned]
        data["finished"] = [[i.to_json(), commit, env] for i, commit, env in self.finished]
        if self.pairs is None:
            del data["pairs"]
        else:
            data["pairs"] = [[i.to_json(), commit] for i, commit in self.pairs]
        path.write_text(json.dumps(data, indent=1))
        return path

    @classmethod
    def read(cls, results_dir: Path) -> "ShardManifest":
        """The manifest of ``results_dir``; OSError/ValueError/KeyError if there is none or it is not one."""
        data = json.loads((Path(results_dir) / MANIFEST).read_text())
        if data.get("version") != VERSION:
            raise ValueError(f"shard manifest version {data.get('version')!r}, funcbench reads {VERSION}")
        data["planned"] = [ParamSet.from_json(i) for i in data["planned"]]
        data["finished"] = [(ParamSet.from_json(i), str(c), str(e)) for i, c, e in data["finished"]]
        if "pairs" in data:
            data["pairs"] = [(ParamSet.from_json(i), str(c)) for i, c in data["pairs"]]
        return cls(**data)
