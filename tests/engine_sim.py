"""What CI engines put in the environment of each job of a fanned-out run, for the tests of
funcbench/fleet/engines.py and recipes/: one environment per task, as the engine would set it."""
from __future__ import annotations

import re
from typing import Dict, List

Env = Dict[str, str]


def slurm_array_ids(spec: str) -> List[int]:
    """The task ids of ``sbatch --array=spec``: "1-3", "0-15%4", "1-7:2", "1,3,5", "1-7:2,20"."""
    ids = set()
    for part in spec.split("%", 1)[0].split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        assert match, f"not an --array part: {part!r}"
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        ids.update(range(first, last + 1, int(match.group(3) or 1)))
    return sorted(ids)


def _atoi(text: str) -> int:
    match = re.match(r"\s*[+-]?\d+", text)
    return int(match.group()) if match else 0


def slurm_array_envs(spec: str, job_id: int = 4242) -> List[Env]:
    """Each task's SLURM_ARRAY_* variables, as slurmctld's _create_job_array sets them: COUNT,
    MIN and MAX from the set of ids, STEP the number after the first ':' of the spec (else 1)."""
    ids = slurm_array_ids(spec)
    step = _atoi(spec.split(":", 1)[1]) if ":" in spec else 1
    common = {"SLURM_ARRAY_JOB_ID": str(job_id), "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
              "SLURM_ARRAY_TASK_MIN": str(ids[0]), "SLURM_ARRAY_TASK_MAX": str(ids[-1]),
              "SLURM_ARRAY_TASK_STEP": str(step)}
    return [dict(common, SLURM_ARRAY_TASK_ID=str(i), SLURM_JOB_ID=str(job_id + k)) for k, i in enumerate(ids)]


def kubernetes_envs(completions: int) -> List[Env]:
    """An Indexed Job's pods: JOB_COMPLETION_INDEX 0..completions-1, and no count."""
    return [{"JOB_COMPLETION_INDEX": str(i)} for i in range(completions)]


def gitlab_envs(parallel: int) -> List[Env]:
    """``parallel: N``: CI_NODE_INDEX 1..N (1-based), CI_NODE_TOTAL N."""
    return [{"GITLAB_CI": "true", "CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(parallel)}
            for i in range(1, parallel + 1)]


def circleci_envs(parallelism: int) -> List[Env]:
    return [{"CIRCLECI": "true", "CIRCLE_NODE_INDEX": str(i), "CIRCLE_NODE_TOTAL": str(parallelism)}
            for i in range(parallelism)]


def aws_batch_envs(size: int) -> List[Env]:
    return [{"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ARRAY_SIZE": str(size)} for i in range(size)]


def buildkite_envs(parallelism: int) -> List[Env]:
    return [{"BUILDKITE": "true", "BUILDKITE_PARALLEL_JOB": str(i), "BUILDKITE_PARALLEL_JOB_COUNT": str(parallelism)}
            for i in range(parallelism)]
