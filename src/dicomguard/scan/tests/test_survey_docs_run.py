"""The Kubernetes manifest and the Slurm scripts in docs/survey/ do a sharded scan and the merge.

No cluster here: each shard's shell command runs as its own process with the environment the
orchestrator would give it (JOB_COMPLETION_INDEX + DICOMGUARD_SHARDS; SLURM_ARRAY_TASK_ID,
_MIN, _COUNT), against a lab on 127.42.143.0/28 listed in a gzipped zmap JSON file. The merged
database must hold exactly the lab's endpoints.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dicomguard.lab.fleet import FleetThread

DOCS = Path(__file__).resolve().parents[4] / "docs" / "survey"
NETWORK = "127.42.143.0/28"
PORTS = (11112, 2762)


def endpoints(db: Path) -> set[tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return {(h, p) for h, p in conn.execute("SELECT host, port FROM endpoints")}
    finally:
        conn.close()


def run(script: str, cwd: Path, env: dict[str, str], shell: str = "sh") -> None:
    bindir = str(Path(sys.executable).parent)  # the venv's dicomguard
    done = subprocess.run(
        [shell, "-c", script],
        cwd=cwd,
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (script, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("survey")
    with FleetThread(NETWORK, size=6, ports=PORTS, slow_delay=0.2, max_patients=40) as fleet:
        truth = {tuple(k.rsplit(":", 1)) for k in fleet.truth["endpoints"]}
        expected = {(h, int(p)) for h, p in truth}
        lines = [json.dumps({"saddr": h, "sport": p, "success": 1}) for h, p in sorted(expected)]
        yield tmp, expected, gzip.compress(("\n".join(lines) + "\n").encode())


def test_kubernetes_indexed_job_shards_then_merges(lab: Any) -> None:
    tmp, expected, targets = lab
    data = tmp / "k8s"
    data.mkdir()
    (data / "targets.json.gz").write_bytes(targets)
    scan_job, merge_job = list(yaml.safe_load_all((DOCS / "k8s-indexed-job.yaml").read_text()))
    spec = scan_job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["DICOMGUARD_SHARDS"]) == spec["completions"]
    script = container["args"][0].replace("/data", str(data))
    script = script.replace("--rate 300", "--rate 0 --timeout 2")
    for k in range(spec["completions"]):
        run(script, data, {"JOB_COMPLETION_INDEX": str(k), **env})
    merge = merge_job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    run(merge.replace("/data", str(data)), data, {})
    assert endpoints(data / "all.db") == expected
    assert (data / "all.parquet").stat().st_size > 0
    # a restarted pod resumes its finished shard instead of scanning again: resume refuses
    restarted = subprocess.run(
        ["sh", "-c", script],
        cwd=data,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "JOB_COMPLETION_INDEX": "0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert restarted.returncode == 2 and "nothing to resume" in restarted.stderr


def test_slurm_array_with_ids_from_one_then_merge(lab: Any) -> None:
    tmp, expected, targets = lab
    work = tmp / "slurm"
    work.mkdir()
    (work / "targets.json.gz").write_bytes(targets)
    sbatch = (DOCS / "slurm-shard.sbatch").read_text()
    assert "#SBATCH --array=0-3" in sbatch
    script = sbatch.replace("--rate 300", "--rate 0 --timeout 2")
    for task in (1, 2, 3, 4):  # as if submitted with --array=1-4
        env = {
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "4",
            "SLURM_ARRAY_TASK_COUNT": "4",
        }
        run(script, work, env, shell="bash")
    submit = (DOCS / "slurm-sharded-scan.sh").read_text()
    wrap = submit.split('--wrap "', 1)[1].split('"\n', 1)[0]
    run(wrap, work, {}, shell="bash")
    assert endpoints(work / "results" / "all.db") == expected
