"""A scan split over worker processes stores exactly what a one-process scan stores."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from dicomguard.lab.fleet import FleetThread

NETWORK = "127.42.222.0/27"


def _scan(tmp: Path, name: str, workers: int) -> tuple[dict, list[dict]]:
    db = tmp / f"{name}.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dicomguard",
            "scan",
            NETWORK,
            "-p",
            "104,11112,4242",
            "--rate",
            "0",
            "--no-progress",
            "-q",
            "--db",
            str(db),
            "--workers",
            str(workers),
            "--timeout",
            "2",
            "--no-web",
        ],
        check=True,
        timeout=300,
    )
    with sqlite3.connect(db) as c:
        states = dict(c.execute("SELECT state, n FROM states").fetchall())
        records = [json.loads(r) for (r,) in c.execute("SELECT record FROM endpoints")]
    return states, records


def _comparable(rec: dict) -> tuple:
    exp = rec.get("exposure") or {}
    return (
        rec["host"],
        rec["port"],
        rec["seq"],
        rec["dicom"],
        rec["tls"],
        rec["product"],
        json.dumps(rec["services"], sort_keys=True),
        rec["called_aet"]["enforced"],
        rec["calling_aet"]["enforced"],
        exp.get("studies"),
        exp.get("patients"),
        tuple(sorted(f["id"] for f in rec["findings"])),
    )


def test_two_workers_store_the_same_endpoints_as_one(tmp_path: Path) -> None:
    personas = ["open", "echo-only", "called-aet-guessable", "not-dicom", "capped", "store-only"]
    with FleetThread(NETWORK, personas, ports=(104, 11112), max_patients=30):
        one_states, one = _scan(tmp_path, "one", 1)
        two_states, two = _scan(tmp_path, "two", 2)
    assert one_states == two_states
    assert sum(one_states.values()) == 32 * 3
    assert sorted(map(_comparable, one)) == sorted(map(_comparable, two))
    assert len({r["seq"] for r in two}) == len(two)  # nothing stored twice
