"""SIGKILL a real scan of the lab mid-way, resume it, and compare with an uninterrupted scan.

The scan runs as ``python -m dicomguard scan`` in a subprocess (as a user runs it) against a lab
fleet on loopback in this process; a low ``--rate`` makes it last a few seconds so the kill lands
in the middle.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dicomguard
from dicomguard.lab.fleet import FleetThread
from dicomguard.store import load_scan
from dicomguard.testing.scans import comparable_records

NETWORK = "127.77.4.0/28"  # 16 addresses: 12 lab hosts, the rest closed
PORTS = "11112,11113"  # nothing listens on 11113: closed endpoints between the open ones
PERSONAS = {
    "open": 3,
    "echo-only": 3,
    "store-only": 2,
    "capped": 1,
    "user-identity-required": 1,
    "not-dicom": 1,
}
SRC = str(Path(dicomguard.__file__).resolve().parents[1])
#: fields that measure time or name the run, not what the endpoint is


@pytest.fixture(scope="module")
def lab() -> Iterator[FleetThread]:
    # few patients and a small query budget keep the scan at seconds, not minutes
    with FleetThread(NETWORK, PERSONAS, ports=(11112,), max_patients=40) as fleet:
        yield fleet


def _scan(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-m", "dicomguard", "scan", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _args(db: str) -> list[str]:
    options = "--rate 6 --concurrency 4 --timeout 2 --query-budget 8 --no-progress -q"
    return [NETWORK, "-p", PORTS, *options.split(), "--db", db, "--jsonl", db + ".jsonl"]


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM endpoints").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # file or schema still being created
    finally:
        conn.close()


def test_killed_and_resumed_scan_equals_uninterrupted(lab: FleetThread, tmp_path: Path) -> None:
    whole = _scan(tmp_path, *_args("whole.db"))
    killed = _scan(tmp_path, *_args("killed.db"))
    db = tmp_path / "killed.db"
    deadline = time.monotonic() + 30
    while _rows(db) < 4:  # a few endpoints committed: we are mid-way
        assert killed.poll() is None, "scan ended before it could be killed"
        assert time.monotonic() < deadline, "scan stored nothing in 30 s"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL

    partial = load_scan(db)
    assert partial.meta["finished_at"] is None
    total = partial.meta["targets_total"]
    done_before = partial.meta["watermark"] + len(
        sqlite3.connect(db).execute("SELECT seq FROM done").fetchall()
    )
    assert 0 < done_before < total, "the kill must land mid-way"

    resumed = _scan(tmp_path, "--resume", "killed.db")
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err.decode()
    assert whole.wait(timeout=60) == 0

    a, b = load_scan(tmp_path / "whole.db"), load_scan(db)
    assert b.meta["finished_at"] and b.meta["resumed"] == 1
    assert comparable_records(b.records) == comparable_records(a.records)
    assert len(a.records) == sum(PERSONAS.values())  # every lab host, nothing else
    # one scan id across the kill: records of both runs carry the killed scan's
    assert {r["scan_id"] for r in b.records} == {b.meta["scan_id"]}
    assert all(r["measured_at"].endswith("Z") for r in b.records)
    # every target counted exactly once: nothing lost, nothing assessed twice
    assert b.meta["states"] == a.meta["states"]
    assert sum(b.meta["states"].values()) == total
    # the resumed run only probed what the killed one had not finished
    assert b.meta["stats"]["endpoints"] == total - done_before
    # JSONL comes from the same records: rebuilt on resume, then appended
    lines = [json.loads(x) for x in (tmp_path / "killed.db.jsonl").read_text().splitlines()]
    assert comparable_records(lines) == comparable_records(b.records)
