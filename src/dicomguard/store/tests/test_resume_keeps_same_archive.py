"""A scan killed between two ports of one archive, then resumed, still counts that archive once.

The archive cache (scan.exposure.ArchiveCache) marks a later port of a host that fronts the
archive already measured on an earlier port ``same_archive_as``. It used to live in memory only:
after SIGKILL and ``--resume`` the second port was measured in full and the report's totals
counted the host twice. The lab host answers each A-ASSOCIATE-RQ after a delay and the scan
takes one port of a host at a time, so once the first port's record is committed the second
port still needs several slow associations: the kill lands between the two every time.
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
from dataclasses import replace
from pathlib import Path

import pytest

import dicomguard
from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import FleetThread
from dicomguard.scan import parallel
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import ScanConfig
from dicomguard.scan.targets import build_targets
from dicomguard.store import ScanStore, load_scan
from dicomguard.testing.scans import stored_ports

NETWORK = "127.77.5.0/30"  # .1: the lab host, .2: nothing listens
HOST = "127.77.5.1"
PORTS = (104, 11112)
GREETING = 0.5  # seconds before the lab answers each A-ASSOCIATE-RQ
SRC = str(Path(dicomguard.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC}


@pytest.fixture(scope="module")
def lab() -> Iterator[FleetThread]:
    with FleetThread(
        NETWORK,
        {"slow-greeting": 1},
        ports=PORTS,
        slow_greeting_delay=GREETING,
        max_patients=30,
    ) as fleet:
        yield fleet


def _scan(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomguard", "scan", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _args(db: str) -> list[str]:
    options = "--rate 0 --per-host 1 --timeout 3 --no-tls --no-progress -q --workers 1"
    ports = ",".join(map(str, PORTS))
    return [NETWORK, "-p", ports, *options.split(), "--db", db, "--jsonl", db + ".jsonl"]




def _totals(cwd: Path, db: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "dicomguard", "report", db, "--format", "json", "-o", "-"],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert out.returncode in (0, 1), out.stderr.decode()
    return _headline(json.loads(out.stdout))


def _headline(doc: object) -> dict:
    """The report's patients/studies totals, wherever its JSON nests them."""
    if isinstance(doc, dict):
        if "patients_exposed" in doc:
            return {k: doc[k] for k in ("patients_exposed", "studies_exposed")}
        doc = list(doc.values())
    for value in doc if isinstance(doc, list) else ():
        found = _headline(value)
        if found:
            return found
    return {}


def test_port_after_the_kill_is_marked_same_archive_as_the_port_before(
    lab: FleetThread, tmp_path: Path
) -> None:
    whole = _scan(tmp_path, *_args("whole.db"))
    killed = _scan(tmp_path, *_args("killed.db"))
    db = tmp_path / "killed.db"
    deadline = time.monotonic() + 60
    while PORTS[0] not in stored_ports(db, HOST):  # the first port's record is committed
        assert killed.poll() is None, "scan ended before it could be killed"
        assert time.monotonic() < deadline, "first port not stored in 60 s"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert stored_ports(db, HOST) == {PORTS[0]}, "the kill must land between the two ports"

    resumed = _scan(tmp_path, "--resume", "killed.db")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()
    assert whole.wait(timeout=120) == 0

    a, b = load_scan(tmp_path / "whole.db"), load_scan(db)
    assert b.meta["resumed"] == 1
    for scan in (a, b):
        by_port = {r["port"]: r for r in scan.records if r["host"] == HOST}
        first, second = by_port[PORTS[0]]["exposure"], by_port[PORTS[1]]["exposure"]
        assert first["studies"] > 0 and "same_archive_as" not in first
        assert second["same_archive_as"] == f"{HOST}:{PORTS[0]}"
        assert second["queries"] == 2  # its first and last study day, not a measurement
    totals = _totals(tmp_path, "whole.db")
    assert totals["studies_exposed"] == by_port[PORTS[0]]["exposure"]["studies"]  # once
    assert _totals(tmp_path, "killed.db") == totals


def test_with_two_workers_the_entry_reaches_the_store_and_a_stored_one_is_used(
    lab: FleetThread, tmp_path: Path
) -> None:
    """Workers (scan.parallel) send the entry through their pipe before the index's record;
    a resumed parallel scan starts every worker from the stored entries. (A worker holds a
    lone record until its next message, so the kill test above runs in one process.)"""
    config = ScanConfig(
        targets=build_targets([NETWORK], ports=PORTS),
        probe=ProbeOptions(timeouts=Timeouts(2.0, 3.0, 5.0, 0.5), try_tls=False),
        rate=0,
        per_host=1,
    )
    store = ScanStore.create(tmp_path / "w.db", argv=[], options={}, targets_total=4)
    with store:
        parallel.run(
            config,
            lambda r: store.add(r.to_dict()),
            workers=2,
            on_done=store.mark_done,
            on_closed=store.add_closed,
            closed_batch=store.closed_done,
            on_archive=store.add_archive,
        )
        store.commit()
        entries = store.archives()
        ports = {r["port"]: r for r in store.records() if r["host"] == HOST}
    assert len(entries) == 1
    host, _, _, exposure = entries[0]
    assert host == HOST and exposure["same_archive_as"] == f"{HOST}:{PORTS[0]}"
    assert ports[PORTS[1]]["exposure"]["same_archive_as"] == f"{HOST}:{PORTS[0]}"

    out: list[dict] = []
    later = replace(config, targets=build_targets([HOST], ports=PORTS[1:]), archives=tuple(entries))
    parallel.run(later, lambda r: out.append(r.to_dict()), workers=2)
    (rec,) = out
    assert rec["exposure"]["same_archive_as"] == f"{HOST}:{PORTS[0]}"
    assert rec["exposure"]["queries"] == 2
    assert rec["exposure"]["studies"] == ports[PORTS[0]]["exposure"]["studies"]


def test_database_from_before_the_archive_table_resumes_with_an_empty_cache(
    tmp_path: Path,
) -> None:
    db = tmp_path / "old.db"
    ScanStore.create(db, argv=[], options={}, targets_total=1).close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE archives")  # as written by a dicomguard before it existed
    conn.close()
    with ScanStore.resume(db) as store:
        assert store.archives() == []
        store.add_archive(
            0,
            {
                "host": HOST,
                "key": ("1.2.3", "V1", ("1.2.840.10008.5.1.4.1.2.2.1",)),
                "signature": ("20200101", 1, "20210101", 2),
                "exposure": {"studies": 3, "same_archive_as": f"{HOST}:104"},
            },
        )
        store.add({"seq": 0, "host": HOST, "port": 104, "state": "open"})
        store.mark_done(0)
        store.commit()
        assert store.archives() == [
            (
                HOST,
                ("1.2.3", "V1", ("1.2.840.10008.5.1.4.1.2.2.1",)),
                ("20200101", 1, "20210101", 2),
                {"studies": 3, "same_archive_as": f"{HOST}:104"},
            )
        ]
