"""``scan --resume`` from another directory writes the JSON Lines file the scan started, not a
new file of that name in the current directory: the stored request holds ``--jsonl`` made
absolute, as it holds ``-iL``, ``--evidence`` and the other paths.

Found by review: the request stored ``"jsonl": "out/a.jsonl"`` as typed, so a resume run
elsewhere rebuilt and continued ``./out/a.jsonl`` there (or failed: "folder out does not
exist") while the scan's own file stayed cut off at the interruption.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dicomguard.scan.request import ScanRequest
from dicomguard.testing.scans import DICOMGUARD_AS_A_FOREGROUND_JOB


def test_the_stored_request_has_the_jsonl_path_absolute(tmp_path: Path) -> None:
    request = ScanRequest(targets=("127.0.0.1",), jsonl="out/a.jsonl")
    assert request.resolved(cwd=tmp_path).jsonl == str(tmp_path / "out" / "a.jsonl")
    assert ScanRequest(targets=("127.0.0.1",), jsonl="-").resolved(cwd=tmp_path).jsonl == "-"
    assert ScanRequest(targets=("127.0.0.1",)).resolved(cwd=tmp_path).jsonl is None




def test_resume_from_another_directory_appends_to_the_scans_jsonl(
    silent_port: tuple[str, int], tmp_path: Path
) -> None:
    host, port = silent_port
    first_dir, other_dir = tmp_path / "first", tmp_path / "other"
    (first_dir / "out").mkdir(parents=True)
    other_dir.mkdir()
    scan = subprocess.Popen(
        [*DICOMGUARD_AS_A_FOREGROUND_JOB, "scan", host, "-p", str(port), "--rate", "0",
         "--timeout", "2", "--slow-greeting", "0", "--no-tls", "--no-progress", "-q",
         "--db", "a.db", "--jsonl", "out/a.jsonl"],
        cwd=first_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    db = first_dir / "a.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # interrupted once the scan row is written
        try:
            with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
                if conn.execute("SELECT 1 FROM scan").fetchone():
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    scan.send_signal(signal.SIGINT)
    _, err = scan.communicate(timeout=60)
    assert scan.returncode == 130, err.decode()
    resumed = subprocess.run(
        [sys.executable, "-m", "dicomguard", "scan", "--resume", str(db)],
        cwd=other_dir, capture_output=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert not (other_dir / "out").exists()
    lines = (first_dir / "out" / "a.jsonl").read_text().splitlines()
    assert [(r["host"], r["port"]) for r in map(json.loads, lines)] == [(host, port)]
