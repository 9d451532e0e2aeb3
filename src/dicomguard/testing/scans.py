"""Run ``dicomguard scan`` as a subprocess over loopback targets and read what it stored,
straight from SQLite (independent of store/ and report/, which the tests check).

Process-level behaviours (forked workers, signals, what the CLI prints) need the real command
line; :func:`scan_argv` holds the flags every such test shares: no rate limit, no progress bar,
quiet, a database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any


def scan_argv(targets: str, ports: str, db: Path, *extra: str) -> list[str]:
    """``scan`` arguments for ``targets`` (loopback) on ``ports`` (``-p`` syntax) into ``db``:
    ``--rate 0 --no-progress -q``, then ``extra``."""
    return ["scan", targets, "-p", ports, "--rate", "0", "--no-progress", "-q", "--db", str(db),
            *extra]


def run_cli(*args: str, timeout: float = 300.0) -> bytes:
    """``python -m dicomguard ARGS`` to completion (CalledProcessError unless exit status 0);
    returns what it printed, stdout and stderr together."""
    done = subprocess.run([sys.executable, "-m", "dicomguard", *args], check=True,
                          timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return done.stdout


def stored_records(db: Path) -> list[dict[str, Any]]:
    """Every endpoint record of a scan database, in table order."""
    conn = sqlite3.connect(db)
    try:
        return [json.loads(r) for (r,) in conn.execute("SELECT record FROM endpoints")]
    finally:
        conn.close()


def stored_states(db: Path) -> dict[str, int]:
    """Endpoint counts per sweep state (open, closed, filtered...) of a scan database."""
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT state, n FROM states"))
    finally:
        conn.close()
