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

import pytest

import dicomguard
from dicomguard.lab.fleet import FleetThread
from dicomguard.store import load_scan
from dicomguard.testing.scans import DICOMGUARD_AS_A_FOREGROUND_JOB

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


@pytest.mark.parametrize(
    ("sig", "network"),
    [(signal.SIGINT, NETWORK), (signal.SIGTERM, "127.77.14.16/28")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_prints_the_resume_command_and_it_works(
    tmp_path: Path, sig: signal.Signals, network: str
) -> None:
    """SIGTERM too (found by a fresh tester: it killed the scan without a word): it is how
    Kubernetes evicts a pod of an Indexed Job and how Slurm ends a job at its time limit."""
    db = tmp_path / "my scan.db"  # a space: the command must quote it
    argv = [network, "-p", "11112", "--rate", "4", "--concurrency", "2", "--timeout", "60"]
    argv += ["--query-budget", "4", "--no-progress", "-q", "--db", str(db)]
    # the last host does not answer its association while the first scan runs (its delay and
    # the scan's timeout are far longer than the test): the scan cannot have finished when the
    # signal comes, however loaded the machine (a 3 s delay lost that race twice under load)
    personas = {"open": 4, "echo-only": 3, "slow": 1}
    with FleetThread(network, personas, ports=(11112,), max_patients=20, slow_delay=600.0):
        scan = subprocess.Popen(
            [*DICOMGUARD_AS_A_FOREGROUND_JOB, "scan", *argv],
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
        scan.send_signal(sig)
        _, err = scan.communicate(timeout=60)
    assert scan.returncode == 130, err
    assert "Traceback" not in err
    command = err.strip().splitlines()[-1].strip()
    assert command == f"dicomguard scan --resume {shlex.quote(str(db))}", err
    assert load_scan(db).meta["finished_at"] is None

    words = shlex.split(command)
    assert words[0] == "dicomguard"
    # the same lab again, its slow host now answering after a moment
    with FleetThread(network, personas, ports=(11112,), max_patients=20, slow_delay=0.5):
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


def test_a_failed_worker_ends_with_one_line_and_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker process that fails (here: its engine raises) is no traceback: exit 1, what
    failed, and the command that resumes from what the parent stored."""
    from dicomguard.cli import main
    from dicomguard.scan import engine

    async def broken(self: engine.Engine) -> engine.ScanStats:
        raise OSError("disk on fire")

    monkeypatch.setattr(engine.Engine, "run", broken)  # the forked workers inherit it
    db = tmp_path / "w.db"
    code = main(
        ["scan", "127.0.0.1", "-p", "1", "--workers", "2", "--no-progress", "-q", "--db", str(db)]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and "disk on fire" in err
    assert err.strip().splitlines()[-1].strip() == f"dicomguard scan --resume {db}"
