"""A ScanSession runs a ScanRequest built in code, without the command line: the lab's truth is
what it stores; what the request points at is checked before the database exists, each problem
a ScanSetupError (or the request's own named error) in one line."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomguard.lab.fleet import FleetThread
from dicomguard.runner.session import ScanSession, ScanSetupError
from dicomguard.scan.request import OptionOutOfRange, ScanRequest
from dicomguard.store import load_scan

NETWORK = "127.77.10.0/29"  # 8 addresses; 3 lab hosts, the rest closed
PERSONAS = {"open": 2, "echo-only": 1}


@pytest.fixture(scope="module")
def lab() -> Iterator[FleetThread]:
    with FleetThread(NETWORK, PERSONAS, ports=(11112,), max_patients=20) as fleet:
        yield fleet


def _request(tmp: Path, **change: object) -> ScanRequest:
    base = ScanRequest(targets=(NETWORK,), ports="11112", no_web=True, rate=0.0, timeout=2.0,
                       workers=1, jsonl=str(tmp / "scan.jsonl"))
    return dataclasses.replace(base, **change)


def test_a_request_built_in_code_scans_the_lab(lab: FleetThread, tmp_path: Path) -> None:
    db = tmp_path / "scan.db"
    session = ScanSession.start(_request(tmp_path), db=str(db), progress=False, summary=False)
    outcome = session.run()
    assert outcome.db == str(db)
    assert outcome.stats["endpoints"] == 8 and outcome.stats["dicom"] == len(lab.fleet.plan)
    scan = load_scan(db)
    assert {f"{r['host']}:{r['port']}" for r in scan.records} == set(lab.truth["endpoints"])
    assert scan.meta["options"] == _request(tmp_path).resolved().to_dict()
    assert len((tmp_path / "scan.jsonl").read_text().splitlines()) == len(scan.records)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"jsonl": "{tmp}/missing/out.jsonl"}, "does not exist"),
        ({"input_files": ("{tmp}/none.txt",), "targets": ()}, "none.txt"),
        ({"wordlist": "{tmp}/none.txt"}, "wordlist"),
        ({"geoip": ("{tmp}/bad.mmdb",)}, "bad.mmdb"),
        ({"impersonate": "no such product"}, "no such product"),
        ({"shard": "3/2"}, "--shard"),
        ({"targets": ("0.0.0.1",)}, "never a server"),
    ],
    ids=["jsonl-folder", "input-file", "wordlist", "geoip", "impersonate", "shard", "never"],
)
def test_what_a_request_points_at_is_checked_before_the_database_exists(
    tmp_path: Path, change: dict, says: str
) -> None:
    (tmp_path / "bad.mmdb").write_bytes(b"not a MaxMind database")
    change = {
        k: (tuple(x.replace("{tmp}", str(tmp_path)) for x in v) if isinstance(v, tuple)
            else v.replace("{tmp}", str(tmp_path)))
        for k, v in change.items()
    }
    db = tmp_path / "scan.db"
    with pytest.raises(ScanSetupError) as info:
        ScanSession.start(_request(tmp_path, **change), db=str(db))
    assert says in str(info.value) and "\n" not in str(info.value)
    assert not db.exists()


def test_an_invalid_request_is_its_named_error_before_anything(tmp_path: Path) -> None:
    with pytest.raises(OptionOutOfRange, match="--timeout"):
        ScanSession.start(_request(tmp_path, timeout=0.0), db=str(tmp_path / "scan.db"))
    assert not list(tmp_path.iterdir())


def test_a_database_holding_a_scan_is_not_started_again(lab: FleetThread, tmp_path: Path) -> None:
    db = str(tmp_path / "scan.db")
    ScanSession.start(_request(tmp_path), db=db, progress=False, summary=False).run()
    with pytest.raises(ScanSetupError, match="already holds a scan"):
        ScanSession.start(_request(tmp_path), db=db)
    with pytest.raises(ScanSetupError, match="finished"):
        ScanSession.resume(db)


def test_a_new_scan_replaces_the_jsonl_file_an_earlier_scan_left(
    lab: FleetThread, tmp_path: Path
) -> None:
    """The streamed lines of a finished discovery scan are final, so the file is not rewritten
    at the end: a new scan into the same file must still hold its own records only."""
    for n in (1, 2):
        request = _request(tmp_path, discovery=True)
        ScanSession.start(request, db=str(tmp_path / f"scan{n}.db"), summary=False).run()
        records = load_scan(tmp_path / f"scan{n}.db").records
        assert len((tmp_path / "scan.jsonl").read_text().splitlines()) == len(records)
