"""The archive cache entry rebuilt from an old database's record holds against real servers:
two DCMTK 3.6.7 dcmqrscp on two ports of one address, serving the same archive, scanned as a
database from before the ``archives`` table leaves a scan killed after the first port.

The resumed scan asks the second port for the two StudyDate ranges of the rebuilt entry and
marks it ``same_archive_as`` the first, as the uninterrupted scan did; findscu (DCMTK) reads
the same counts for those ranges and the archive's studies from the second port.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.report.stats import per_ip
from dicomguard.store import load_scan
from dicomguard.store.db import rebuilt_archive
from dicomguard.testing.dcmtk import DcmqrscpServer
from dicomguard.testing.findscu import STUDY_ROOT, findscu
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.require import need_binaries

HOST = lab_address(120)
AET = "DGQRSCP"
STUDY_UID = "0020,000d"


@pytest.fixture(scope="module")
def two_ports() -> Iterator[tuple[int, int]]:
    """Two dcmqrscp on HOST, any calling AE, the same synthetic patients: 3 studies in the
    first year (1996), 2 in the last (2025), so each range holds more than its day."""
    need_binaries("dcmqrscp", "dcmqridx", "findscu")
    patients = make_patients(3, 12)
    with DcmqrscpServer(HOST, aet=AET, calling_aets=(), patients=patients) as a, \
            DcmqrscpServer(HOST, aet=AET, calling_aets=(), patients=patients) as b:
        yield tuple(sorted((a.port, b.port)))  # type: ignore[misc]


def _headline(db: Path) -> tuple[int, int]:
    scan = load_scan(db)
    h = per_ip(scan.records, scan.probed)
    return h["patients_exposed"], h["studies_exposed"]


def _as_killed_before_archives(db: Path, port: int) -> None:
    """What a dicomguard from before the archives table leaves when killed after the first
    port: the second port's record, done mark and state count gone, no archives table."""
    conn = sqlite3.connect(db)
    (seq,) = conn.execute("SELECT seq FROM endpoints WHERE port = ?", (port,)).fetchone()
    conn.execute("DELETE FROM findings WHERE endpoint_id IN"
                 " (SELECT id FROM endpoints WHERE port = ?)", (port,))
    conn.execute("DELETE FROM endpoints WHERE port = ?", (port,))
    conn.execute("DELETE FROM done")
    conn.execute("UPDATE scan SET finished_at = NULL, stats = NULL, watermark = ?", (seq,))
    conn.execute("UPDATE states SET n = n - 1 WHERE state = 'open'")
    conn.execute("DROP TABLE archives")
    conn.commit()
    conn.close()


def test_second_port_after_resume_is_same_archive_as_the_first(
    two_ports: tuple[int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = two_ports
    wordlist = tmp_path / "aets.txt"
    wordlist.write_text(f"{AET}\n")
    whole = tmp_path / "whole.db"
    args = (f"{HOST} -p {first},{second} --rate 0 --per-host 1 --workers 1 --no-tls --no-web"
            f" --timeout 5 --wordlist {wordlist} --no-progress -q --db {whole}")
    assert main(["scan", *args.split()]) in (0, 1), capsys.readouterr()
    by_port = {r["port"]: r for r in load_scan(whole).records}
    origin = by_port[first]["exposure"]
    assert origin["complete"] and origin["studies"] > 0
    assert by_port[second]["exposure"]["same_archive_as"] == f"{HOST}:{first}"

    killed = tmp_path / "killed.db"
    shutil.copyfile(whole, killed)
    _as_killed_before_archives(killed, second)
    _, _, signature, _ = rebuilt_archive(by_port[first]) or ((),) * 4
    assert signature[1] == 3 and signature[3] == 2
    assert main(["scan", "--resume", str(killed), "--no-progress", "-q"]) in (0, 1)

    resumed = {r["port"]: r["exposure"] for r in load_scan(killed).records}
    assert resumed[second] == {**origin, "same_archive_as": f"{HOST}:{first}", "queries": 2}
    assert _headline(killed) == _headline(whole)

    # independently: findscu reads from the second port what the rebuilt entry says of the
    # first one's archive, and the whole archive once
    for date_range, count in ((signature[0], signature[1]), (signature[2], signature[3])):
        found = findscu(HOST, second, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID",
                                       f"StudyDate={date_range}"],
                        model=STUDY_ROOT, called_aet=AET)
        assert found.final.startswith("Success") or "0000" in found.final, found.final
        assert len(found.distinct(STUDY_UID)) == count
    every = findscu(HOST, second, ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"],
                    model=STUDY_ROOT, called_aet=AET)
    assert len(every.distinct(STUDY_UID)) == origin["studies"] == _headline(killed)[1]
