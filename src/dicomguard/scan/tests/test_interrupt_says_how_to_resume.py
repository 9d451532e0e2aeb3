"""Issue 12 item 5: Ctrl-C ends a scan with the exact command that continues it.

A real scan (subprocess) of a small lab is interrupted with SIGINT, as Ctrl-C does; its last
line must be a ``dicomguard scan --resume DB`` command, and running that command (split as a
shell would) must finish the scan.
"""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dicomguard
from dicomguard.lab.fleet import FleetThread
from dicomguard.store import load_scan

SRC = str(Path(dicomguard.__file__).resolve().parents[1])
NETWORK = "127.77.14.0/28"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC}


def _stored(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM endpoints").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_ctrl_c_prints_the_resume_command_and_it_works(tmp_path: Path) -> None:
    db = tmp_path / "my scan.db"  # a space: the command must quote it
    argv = [NETWORK, "-p", "11112", "--rate", "4", "--concurrency", "2", "--timeout", "2"]
    argv += ["--query-budget", "4", "--no-progress", "-q", "--db", str(db)]
    with FleetThread(NETWORK, {"open": 4, "echo-only": 4}, ports=(11112,), max_patients=20):
        scan = subprocess.Popen(
            [sys.executable, "-m", "dicomguard", "scan", *argv],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while _stored(db) < 2:
            assert scan.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        scan.send_signal(signal.SIGINT)
        _, err = scan.communicate(timeout=60)
        assert scan.returncode == 130, err
        assert "Traceback" not in err
        command = err.strip().splitlines()[-1].strip()
        assert command == f"dicomguard scan --resume {shlex.quote(str(db))}", err
        assert load_scan(db).meta["finished_at"] is None

        words = shlex.split(command)
        assert words[0] == "dicomguard"
        resumed = subprocess.run(
            [sys.executable, "-m", "dicomguard", *words[1:]],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert resumed.returncode == 0, resumed.stderr
    done = load_scan(db)
    assert done.meta["finished_at"] and sum(done.meta["states"].values()) == 16
    assert len(done.records) == 8
