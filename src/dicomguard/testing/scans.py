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

#: ``python -m dicomguard`` started as a terminal's shell starts a foreground job: SIGINT at its
#: default action. A suite launched in the background (``nohup ... &``: a non-interactive shell
#: ignores SIGINT and SIGQUIT for it) passes SIG_IGN down to every child, and Python then keeps
#: ignoring SIGINT: found as scans that ran through their "Ctrl-C" in full runs only
#: (/proc/PID/status SigIgn 0x1001007: SIGHUP, SIGINT, SIGQUIT ignored). exec keeps the pid.
DICOMGUARD_AS_A_FOREGROUND_JOB = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'dicomguard', *sys.argv[1:]])",
]


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


def stored_ports(db: Path, host: str) -> set[int]:
    """Ports of ``host`` with a stored record, read while a scan may still be writing (empty:
    no file yet, or its schema still being created)."""
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT port FROM endpoints WHERE host = ?", (host,))}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


#: record fields that differ between two runs of the same scan by design (seconds, ids)
RUN_FIELDS = frozenset({"elapsed_ms", "measured_at", "scan_id"})


def comparable_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``host:port`` -> record without :data:`RUN_FIELDS`, for comparing two runs of one scan.

    The scanner's own random called AE title (different in every run by design) is masked
    where the called AE is not enforced. Raises AssertionError for an endpoint stored twice.
    """
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        key = f"{r['host']}:{r['port']}"
        assert key not in out, f"{key} stored twice"
        rec = {k: v for k, v in r.items() if k not in RUN_FIELDS}
        if not rec["called_aet"]["enforced"]:
            rec["called_aet"] = {**rec["called_aet"], "accepted": None}
        out[key] = rec
    return out
