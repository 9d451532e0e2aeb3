"""Issue 12 item 3: what is stored never depends on the progress display.

The same scan runs twice as a user runs it: once on a pseudo-terminal (the progress bar is
drawn), once with --no-progress. Counts per state, endpoints and records must be identical.
Before the fix, closed ports vanished from the counts whenever the bar was on.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import dicomguard
from dicomguard.lab.fleet import FleetThread
from dicomguard.store import load_scan

SRC = str(Path(dicomguard.__file__).resolve().parents[1])
NETWORK = "127.77.13.0/27"
PORTS = "104,11112,4242"
#: what the records are compared on (timing and the run's id differ by design)
VOLATILE = {"elapsed_ms", "measured_at", "scan_id"}


def _scan(tmp: Path, name: str, *, terminal: bool) -> tuple[dict, list[dict], bytes]:
    db = tmp / f"{name}.db"
    argv = [sys.executable, "-m", "dicomguard", "scan", NETWORK, "-p", PORTS, "--rate", "0"]
    argv += ["--timeout", "2", "--no-web", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "100", "TERM": "xterm"}
    if not terminal:
        subprocess.run(
            [*argv, "--no-progress"],
            env=env,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return (*_stored(db), b"")
    master, slave = pty.openpty()
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(argv, env=env, stdin=slave, stdout=slave, stderr=slave, timeout=300)
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert proc.returncode == 0, shown.decode(errors="replace")
    return (*_stored(db), bytes(shown))


def _stored(db: Path) -> tuple[dict, list[dict]]:
    scan = load_scan(db)
    records = [{k: v for k, v in r.items() if k not in VOLATILE} for r in scan.records]
    for r in records:
        if not r["called_aet"]["enforced"]:
            r["called_aet"] = {**r["called_aet"], "accepted": None}  # our random title
    return scan.meta["states"], sorted(records, key=lambda r: (r["host"], r["port"]))


def test_progress_bar_on_a_terminal_stores_what_no_progress_stores(tmp_path: Path) -> None:
    personas = {"open": 2, "echo-only": 1, "not-dicom": 1}
    with FleetThread(NETWORK, personas, ports=(104, 11112), max_patients=20):
        bar_states, bar_records, shown = _scan(tmp_path, "bar", terminal=True)
        quiet_states, quiet_records, _ = _scan(tmp_path, "quiet", terminal=False)
    assert b"scanning" in shown or b"\x1b[" in shown  # the bar was really drawn
    assert quiet_states["closed"] == 32 * 3 - 8  # 4 hosts x 2 lab ports open
    assert bar_states == quiet_states
    assert bar_records == quiet_records
