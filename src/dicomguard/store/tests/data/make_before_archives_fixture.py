"""Make ``before-archives-killed.db``: a scan database written by dicomguard before the
``archives`` table (the code of commit 5574342), killed between two ports of one archive.

Run ONCE, with the old code as the scanner and today's lab (the lab's archives are
deterministic for a network, persona and ``max_patients``: the test starts the same lab)::

    mkdir /tmp/old5574 && git archive 5574342 | tar -x -C /tmp/old5574
    .venv/bin/python -m dicomguard.testing.netns .venv/bin/python \\
        src/dicomguard/store/tests/data/make_before_archives_fixture.py /tmp/old5574/src

The lab host answers each A-ASSOCIATE-RQ after 0.5 s and the scan takes one port of a host at
a time (``--per-host 1``), so once the first port's record is committed the second port still
needs several slow associations: the SIGKILL lands between the two (checked below). The file
is then checkpointed (its WAL folded in, still in WAL mode as the old code left it).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dicomguard.lab.fleet import FleetThread
from dicomguard.testing.scans import stored_ports

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "before-archives-killed.db"
#: the lab the fixture was made against (the test starts the same one)
NETWORK = "127.77.18.0/30"  # .1: a slow-greeting host, .2: nothing listens
HOST = "127.77.18.1"
PORTS = (104, 11112)
GREETING = 0.5
MAX_PATIENTS = 30
#: lab seed: the host's archive has 4 studies in its first year and 2 in its last (so the
#: entry rebuilt from the record is checked with date ranges of more than one study)
SEED = 2
ARGV = [NETWORK, "-p", "104,11112", "--rate", "0", "--per-host", "1", "--timeout", "3",
        "--no-tls", "--no-progress", "-q", "--workers", "1"]




def main(old_src: str) -> None:
    assert (Path(old_src) / "dicomguard" / "cli.py").is_file(), "give the old code's src/"
    with tempfile.TemporaryDirectory() as cwd, FleetThread(
        NETWORK, {"slow-greeting": 1}, ports=PORTS, slow_greeting_delay=GREETING,
        max_patients=MAX_PATIENTS, seed=SEED,
    ):
        db = Path(cwd) / "killed.db"
        scan = subprocess.Popen(
            [sys.executable, "-m", "dicomguard", "scan", *ARGV, "--db", str(db)],
            cwd=cwd, env={**os.environ, "PYTHONPATH": old_src},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while PORTS[0] not in stored_ports(db, HOST):
            assert scan.poll() is None, scan.stderr.read() if scan.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        scan.send_signal(signal.SIGKILL)
        scan.wait()
        assert stored_ports(db, HOST) == {PORTS[0]}, "the kill must land between the two ports"
        conn = sqlite3.connect(db)
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'archives'"
        ).fetchone(), "not the old code"
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        FIXTURE.write_bytes(db.read_bytes())
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
