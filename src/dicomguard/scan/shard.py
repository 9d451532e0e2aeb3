"""``--shard K/N`` and ``--shard auto``: one part of a scan split across machines.

The split itself is :meth:`dicomguard.scan.targets.TargetSet.shard` (whole hosts, interleaved
by rank, zmap's semantics: same inputs, same split on every machine, disjoint, complete). This
module only says which part this run is. ``K`` counts from 0, as zmap's ``--shard``.

``auto`` reads the orchestrator's environment:

* Kubernetes Indexed Job: ``JOB_COMPLETION_INDEX`` (set by Kubernetes in every pod of an
  Indexed Job, 0 .. completions-1) and ``DICOMGUARD_SHARDS``, which the manifest sets to the
  Job's ``completions`` (Kubernetes does not put the completion count in the environment).
* Slurm job array: ``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN`` (an array may start
  at 1, or anywhere), divided by ``SLURM_ARRAY_TASK_STEP`` when there is one, and
  ``SLURM_ARRAY_TASK_COUNT``. Task ids must be a contiguous range (``--array=0-9`` or
  ``1-10``, a step is fine); a list with gaps cannot be mapped to shards and is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["SHARD_COUNT_ENV", "ShardError", "parse_shard"]

#: the variable a Kubernetes Indexed Job manifest sets to its ``completions``
SHARD_COUNT_ENV = "DICOMGUARD_SHARDS"

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class ShardError(ValueError):
    """A ``--shard`` value or the orchestrator's environment cannot name one shard."""


def _int(env: Mapping[str, str], name: str) -> int:
    value = env.get(name, "")
    if not value.strip().isdigit():
        raise ShardError(f"--shard auto: {name}={value!r} is not a non-negative integer")
    return int(value)


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"K/N"`` or ``"auto"`` -> (k, n) with 0 <= k < n. Raises :class:`ShardError`."""
    env = os.environ if env is None else env
    if text.strip() == "auto":
        k, n = _from_environment(env)
    else:
        m = _SPEC.fullmatch(text)
        if not m:
            raise ShardError(f"--shard {text!r}: expected K/N (e.g. 0/4; K counts from 0) or auto")
        k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ShardError(f"--shard {k}/{n}: need N >= 1 and 0 <= K < N (K counts from 0)")
    return k, n


def _from_environment(env: Mapping[str, str]) -> tuple[int, int]:
    if "JOB_COMPLETION_INDEX" in env:
        if SHARD_COUNT_ENV not in env:
            raise ShardError(
                "--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but not "
                f"{SHARD_COUNT_ENV}: set it to the Job's completions in the manifest"
            )
        return _int(env, "JOB_COMPLETION_INDEX"), _int(env, SHARD_COUNT_ENV)
    if "SLURM_ARRAY_TASK_ID" in env:
        task = _int(env, "SLURM_ARRAY_TASK_ID")
        first = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
        count = (
            _int(env, SHARD_COUNT_ENV)
            if SHARD_COUNT_ENV in env
            else _int(env, "SLURM_ARRAY_TASK_COUNT")
        )
        offset = task - first
        if offset < 0 or offset % max(step, 1) or offset // max(step, 1) >= count:
            raise ShardError(
                f"--shard auto: Slurm array task {task} (min {first}, step {step}, count "
                f"{count}) is not one of {count} contiguous tasks: use --array=0-{count - 1}"
            )
        return offset // max(step, 1), count
    raise ShardError(
        "--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor "
        "SLURM_ARRAY_TASK_ID (Slurm job array) is set; give --shard K/N"
    )
