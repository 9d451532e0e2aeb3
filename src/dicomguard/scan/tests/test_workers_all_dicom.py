"""Where every target is a DICOM server (a zmap list), workers change the speed, not the records.

Issue 13: ``--workers auto`` forks from 2,048 endpoints (it used to wait for 20,000, so a list of
a few thousand open ports ran on one core), and one, two or three processes store the very same
records for the same fleet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dicomguard.lab.fleet import FleetThread
from dicomguard.scan import parallel
from dicomguard.scan.engine import ScanConfig
from dicomguard.scan.targets import build_targets
from dicomguard.testing.scans import run_cli, scan_argv, stored_records

NETWORK = "127.42.223.0/26"
PORT = 11112
#: every host DICOM; a mix so that AE-title guessing, exposure counting and rejects all happen
PERSONAS = ["open", "called-aet-guessable", "echo-only", "capped", "calling-aet-allowlist"]
#: differ between two scans of the same fleet whatever the worker count
VOLATILE = {"elapsed_ms", "measured_at", "scan_id", "seq"}
#: the random called AE title of each scan (ProbeOptions.probe_called_aet)
RANDOM_AET = re.compile(r"DG[0-9A-F]{10}")


def _records(tmp: Path, workers: int) -> list[str]:
    db = tmp / f"w{workers}.db"
    run_cli(*scan_argv(NETWORK, str(PORT), db, "--workers", str(workers), "--timeout", "3"))
    rows = stored_records(db)
    out = []
    for rec in rows:
        for key in VOLATILE:
            rec.pop(key, None)
        out.append(RANDOM_AET.sub("DGRANDOM", json.dumps(rec, sort_keys=True)))
    return sorted(out)


def test_one_two_three_workers_store_identical_records(tmp_path: Path) -> None:
    hosts = [PERSONAS[i % len(PERSONAS)] for i in range(40)]
    with FleetThread(NETWORK, hosts, ports=(PORT,), max_patients=20):
        one = _records(tmp_path, 1)
        two = _records(tmp_path, 2)
        three = _records(tmp_path, 3)
    assert len(one) == 40 and all('"dicom": true' in r for r in one)
    assert one == two == three


def test_auto_forks_for_a_few_thousand_endpoints() -> None:
    small = ScanConfig(targets=build_targets(["127.1.0.0/22"], ports=[PORT]))  # 1,024
    dense = ScanConfig(targets=build_targets(["127.1.0.0/20"], ports=[PORT]))  # 4,096
    assert parallel.auto_workers(small) == 1
    assert parallel.auto_workers(dense) == min(parallel.os.cpu_count() or 1, 8)
