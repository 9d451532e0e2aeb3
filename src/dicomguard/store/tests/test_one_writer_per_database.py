"""One scan database has one writer: a ``--resume`` of a database another dicomguard is still
scanning into is refused (exit 2, the file unchanged), a killed writer leaves it resumable, and
a reader open when the scan ends (a report read during the scan) does not fail the scan.

Found by review: ``scan --resume c.db`` while the scan that made c.db was still running (its
watermark held by a slow endpoint) was accepted; both probed the same endpoints, the summary
said "Scanned 69 endpoint(s)" of 64 targets, and the first scan ended in a traceback
(``sqlite3.OperationalError: database is locked`` from ``finish``'s switch out of WAL, which
any other open connection blocks, a reader's as well).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicomguard.store import ScanStore, StoreError, load_scan
from dicomguard.testing.scans import DICOMGUARD_AS_A_FOREGROUND_JOB

from .test_store_bookkeeping import _new, _rec


def test_a_resume_of_a_database_being_written_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    writer = _new(db, batch_size=1)
    writer.add(_rec(0))
    writer.mark_done(0)
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another dicomguard is scanning into it"):
        ScanStore.resume(db)
    assert db.read_bytes() == before
    writer.close()  # the scan stopped (interrupted): now it can be resumed
    again = ScanStore.resume(db)
    assert again.resume_point() == (1, frozenset())
    again.close()


def test_a_killed_writer_leaves_the_database_resumable(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    code = (
        "import os, signal, sys\n"
        "from dicomguard.store import ScanStore\n"
        "s = ScanStore.create(sys.argv[1], argv=['scan'], options={}, targets_total=5)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(db)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    store = ScanStore.resume(db)  # the lock died with its process
    store.close()


def test_a_reader_open_when_the_scan_ends_does_not_fail_it(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = _new(db)
    for seq in range(3):
        store.add(_rec(seq))
        store.mark_done(seq)
    store.commit()
    reader = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        assert reader.execute("SELECT count(*) FROM endpoints").fetchone() == (3,)
        store.conn.execute("PRAGMA busy_timeout=100")
        store.finish({"endpoints": 3})  # raised 'database is locked'
        store.close()
    finally:
        reader.close()
    scan = load_scan(db)
    assert scan.meta["finished_at"] is not None
    assert len(scan.records) == 3




def test_scan_resume_of_a_running_scan_exits_2(
    silent_port: tuple[str, int], tmp_path: Path
) -> None:
    host, port = silent_port
    db = tmp_path / "running.db"
    first = subprocess.Popen(
        [*DICOMGUARD_AS_A_FOREGROUND_JOB, "scan", host, "-p", str(port), "--rate", "0",
         "--timeout", "8", "--slow-greeting", "0", "--no-tls", "--no-progress", "-q",
         "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the scan row is written before the first probe
            try:
                load_scan(db)
                break
            except (StoreError, sqlite3.Error):
                time.sleep(0.1)
        time.sleep(0.5)
        assert first.poll() is None, "the scan ended before the resume could be tried"
        second = subprocess.run(
            [sys.executable, "-m", "dicomguard", "scan", "--resume", str(db)],
            capture_output=True, timeout=60,
        )
        assert second.returncode == 2, second.stderr.decode()
        assert b"another dicomguard is scanning into it" in second.stderr
        assert b"Traceback" not in second.stderr
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert first.returncode in (0, 130), err.decode()
