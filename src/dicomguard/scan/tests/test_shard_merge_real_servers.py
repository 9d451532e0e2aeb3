"""Shards and merge against real servers: Orthanc, DCMTK dcmqrscp and storescp, pynetdicom.

The five session servers are listed in a ``host:port`` file (the format a survey list often
has); two shard processes and one unsharded process scan it; the merge must equal the
unsharded scan. DCMTK's echoscu, an independent client, confirms every endpoint the merged scan
says a stranger can C-ECHO (with the called AE title the scan found).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dicomguard.testing.base import LoopbackServer
from dicomguard.testing.plugin import REAL_DICOM_SERVERS
from dicomguard.testing.scans import stored_records

from .test_shard_merge_lab import dicomguard, field_diffs, records, states

SERVERS = REAL_DICOM_SERVERS


def scan(db: Path, targets: Path, *extra: str) -> None:
    done = dicomguard(
        *("scan", "-iL", str(targets), "--db", str(db), "--rate", "0", "--timeout", "3"),
        *("--workers", "1", "--no-progress", "-q", "--no-web", *extra),
    )
    assert done.returncode == 0, done.stderr


def test_sharded_scan_of_real_servers_merges_into_the_unsharded_scan(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    servers: list[LoopbackServer] = [request.getfixturevalue(name) for name in SERVERS]
    targets = tmp_path / "servers.txt"
    targets.write_text("".join(f"{s.host}:{s.port}\n" for s in servers))
    shards = [tmp_path / f"shard{k}.db" for k in range(2)]
    for k, db in enumerate(shards):
        scan(db, targets, "--shard", f"{k}/2")
    whole = tmp_path / "whole.db"
    scan(whole, targets)
    merged = tmp_path / "all.db"
    done = dicomguard("merge", *map(str, shards), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    got, expected = records(merged), records(whole)
    assert set(got) == {(s.host, s.port) for s in servers}
    assert all(records(db) for db in shards), "both shards got servers"
    assert field_diffs(got, expected) == {}
    assert states(merged) == states(whole)

    echoscu = shutil.which("echoscu")
    assert echoscu, "scripts/bootstrap installs dcmtk"
    raw = {(r["host"], r["port"]): r for r in _raw(merged)}
    checked = 0
    for (host, port), r in raw.items():
        if not r["services"]["verification"] or r["calling_aet"]["enforced"]:
            continue
        aet = r["called_aet"]["accepted"]
        echo = subprocess.run(
            [echoscu, "-aet", "DICOMGUARD", "-aec", aet, host, str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert echo.returncode == 0, (host, port, aet, echo.stderr)
        checked += 1
    assert checked >= 3


_raw = stored_records
