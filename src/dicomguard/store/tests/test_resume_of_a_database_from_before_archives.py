"""A scan database written before the ``archives`` table, killed between two ports of one
archive and resumed by today's code, counts that archive once, as an uninterrupted scan does.

``data/before-archives-killed.db`` was written by the code of commit 5574342 (see
``data/make_before_archives_fixture.py``) scanning the lab below and SIGKILLed once the first
port's record was committed: it holds that record and no archive cache entry. Resumed, the
cache entry is rebuilt from the record (``store.db.rebuilt_archive``: its first and last
year's study counts as two date ranges), so the second port is asked for those two ranges,
found to front the same archive and marked ``same_archive_as``; before, it was measured in
full and the report counted the host's patients twice.
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
from dicomguard.report.stats import per_ip
from dicomguard.store import ScanStore, load_scan
from dicomguard.store.db import rebuilt_archive

from .data import make_before_archives_fixture as made

FIXTURE = Path(__file__).parent / "data" / "before-archives-killed.db"


@pytest.fixture(scope="module")
def lab() -> Iterator[FleetThread]:
    with FleetThread(
        made.NETWORK,
        {"slow-greeting": 1},
        ports=made.PORTS,
        slow_greeting_delay=made.GREETING,
        max_patients=made.MAX_PATIENTS,
        seed=made.SEED,
    ) as fleet:
        yield fleet


def _totals(db: Path) -> tuple[int, int]:
    scan = load_scan(db)
    headline = per_ip(scan.records, scan.probed)
    return headline["patients_exposed"], headline["studies_exposed"]


def test_old_database_killed_between_two_ports_counts_the_archive_once(
    lab: FleetThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, db)  # the fixture itself is never written
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    ports = {r[0] for r in conn.execute("SELECT port FROM endpoints")}
    conn.close()
    assert "archives" not in tables and ports == {made.PORTS[0]}  # as the old code left it

    whole = tmp_path / "whole.db"
    assert main(["scan", *made.ARGV, "--db", str(whole)]) == 0, capsys.readouterr()
    assert main(["scan", "--resume", str(db), "--no-progress", "-q"]) == 0, capsys.readouterr()

    a, b = load_scan(whole), load_scan(db)
    assert b.meta["resumed"] == 1 and b.meta["finished_at"]
    for scan in (a, b):
        by_port = {r["port"]: r["exposure"] for r in scan.records if r["host"] == made.HOST}
        first, second = by_port[made.PORTS[0]], by_port[made.PORTS[1]]
        assert first["complete"] and "same_archive_as" not in first
        assert second == {**first, "same_archive_as": f"{made.HOST}:{made.PORTS[0]}",
                          "queries": 2}  # the two ranges, not a measurement
    assert _totals(db) == _totals(whole)
    truth = lab.truth["endpoints"][f"{made.HOST}:{made.PORTS[0]}"]
    assert _totals(db)[1] == truth["exposure"]["studies"]  # once, not twice


def test_entry_rebuilt_from_an_old_record() -> None:
    """The rebuilt entry: date ranges whose counts the record's studies_by_year gives exactly,
    the services in place of the syntaxes; none from an incomplete or linked measurement."""
    record = json.loads(
        sqlite3.connect(FIXTURE).execute("SELECT record FROM endpoints").fetchone()[0]
    )
    host, key, signature, exposure = rebuilt_archive(record) or ((),) * 4
    assert host == made.HOST
    assert key == ("2.25.4242.0.1", "DGLAB_010", None, ("find_study_root", "verification"))
    assert signature == ("19960719-19961231", 4, "20250101-20250809", 2)
    assert exposure == {**record["exposure"], "same_archive_as": f"{made.HOST}:104"}

    incomplete = {**record, "exposure": {**record["exposure"], "complete": False}}
    linked = {**record, "exposure": {**record["exposure"], "same_archive_as": "x:1"}}
    refused = {**record, "operations": {"find_study_root": {"state": "refused"}}}
    assert rebuilt_archive(incomplete) is None and rebuilt_archive(linked) is None
    assert rebuilt_archive(refused)[1][3] == ("verification",)  # type: ignore[index]


def test_stored_entries_are_not_rebuilt_twice(tmp_path: Path) -> None:
    """A record with its archives row (written since) is not rebuilt as well."""
    db = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, db)
    with ScanStore.resume(db) as store:
        (entry,) = store.archives()
        store.start()
        host, _, _, exposure = entry
        store.conn.execute(
            "INSERT INTO archives (host, port, key, signature, exposure) VALUES (?,?,?,?,?)",
            (host, 104, json.dumps(["1.2", "V", ["1.2.840.10008.1.1"]]),
             json.dumps(["20200101", 1, "20200102", 1]), json.dumps(exposure)),
        )
        (again,) = store.archives()
        assert again[1] == ("1.2", "V", ("1.2.840.10008.1.1",))
