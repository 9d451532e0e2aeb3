"""The JSON Lines file of a finished scan holds the final records, the database's.

Some signals only the whole scan shows (identical data on several hosts, issue 10 item 9) are
written into the records when the scan ends; the file written as endpoints finished is then
rewritten from the database, so a tool reading the file sees what the reports see.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dicomguard.lab.fleet import FleetThread
from dicomguard.store.read import load_scan

NETWORK = "127.42.214.0/29"


def test_canned_data_on_two_hosts_reaches_each_jsonl_record(tmp_path: Path) -> None:
    lab = FleetThread(NETWORK, ["honeypot-dicomhawk", "honeypot-dicomhawk"], seed=5).start()
    try:
        db, jsonl = tmp_path / "s.db", tmp_path / "s.jsonl"
        subprocess.run(
            [sys.executable, "-m", "dicomguard", "scan", NETWORK, "-p", "11112",
             "--rate", "0", "--timeout", "2", "--no-tls", "--no-web", "--no-progress", "-q",
             "--db", str(db), "--jsonl", str(jsonl)],
            check=True, timeout=180,
        )
    finally:
        lab.stop()
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    dicom = [r for r in lines if r.get("dicom")]
    assert len(dicom) == 2
    for r in dicom:
        assert "canned-data" in [s["id"] for s in r["honeypot"]["signals"]], r["honeypot"]
    stored = {(r["host"], r["port"]): r for r in load_scan(db).records}
    assert all(stored[(r["host"], r["port"])]["honeypot"] == r["honeypot"] for r in lines)
