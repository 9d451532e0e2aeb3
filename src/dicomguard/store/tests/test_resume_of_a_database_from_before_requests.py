"""A scan database made before ScanRequest (its options are the argparse namespace) resumes.

``scan/tests/data/namespace-scan.db`` was created by the code of commit 5574342 (see
``scan/tests/data/make_namespace_fixtures.py``) for ``127.77.9.0/29``, port 11112, and left as a
killed scan leaves it: targets and their digest recorded, no endpoint done. Today's code reads
its options (migrated on read), checks the target space, scans the lab and finishes it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.lab.fleet import FleetThread
from dicomguard.store import load_scan

FIXTURE = Path(__file__).parents[2] / "scan" / "tests" / "data" / "namespace-scan.db"
NETWORK = "127.77.9.0/29"
PERSONAS = {"open": 2, "echo-only": 1, "not-dicom": 1}


@pytest.fixture(scope="module")
def lab() -> Iterator[FleetThread]:
    with FleetThread(NETWORK, PERSONAS, ports=(11112,), max_patients=20) as fleet:
        yield fleet


def test_old_database_resumes_with_its_stored_options(
    lab: FleetThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, db)  # the fixture itself is never written
    options = json.loads(sqlite3.connect(db).execute("SELECT options FROM scan").fetchone()[0])
    assert "request_version" not in options and options["workers"] == "1"  # the old shape
    monkeypatch.chdir(tmp_path)  # its --jsonl was stored relative, as typed

    assert main(["scan", "--resume", str(db), "--no-progress", "-q"]) == 0, capsys.readouterr()

    scan = load_scan(db)
    assert scan.meta["finished_at"] and scan.meta["resumed"] == 1
    found = {f"{r['host']}:{r['port']}" for r in scan.records}
    assert found == set(lab.truth["endpoints"])  # every lab endpoint, nothing else
    dicom = {k for k, v in lab.truth["endpoints"].items() if v["dicom"]}
    assert {f"{r['host']}:{r['port']}" for r in scan.records if r["dicom"]} == dicom
    assert {r["scan_id"] for r in scan.records} == {scan.meta["scan_id"]}
    lines = (tmp_path / "resumed.jsonl").read_text().splitlines()
    assert len(lines) == len(scan.records)
    assert scan.meta["targets_total"] == 8 and {r["port"] for r in scan.records} == {11112}
