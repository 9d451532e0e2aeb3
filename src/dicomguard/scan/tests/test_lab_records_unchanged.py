"""The records of a lab scan are those the scanner wrote before the probe interface (issue 16).

``data/lab_records.jsonl`` holds the JSON Lines records of one scan of the lab (one host per
persona, default options and --intrusive), written by the scanner as it was before issue 16's
step 4 (commit 5574342: five probe signatures, dict verdicts), keys in output order. The same
scan now must give the same lines. Only what differs between any two runs is left out:
timings (``elapsed_ms``, ``slow_greeting_s``, ``measured_at``), the scan id, and the lab's
freshly made test certificate (serial, validity dates) and test object UIDs.

Regenerate (only when a change of the records is intended, and say so in the commit):
``DG_WRITE_LAB_RECORDS=1 scripts/test src/dicomguard/scan/tests/test_lab_records_unchanged.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import Fleet
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets

NETWORK = "127.42.212.0/27"
TIMEOUTS = Timeouts(connect=1.0, associate=1.5, dimse=3.0, release=0.5)
GOLDEN = Path(__file__).parent / "data" / "lab_records.jsonl"
#: fields whose value differs between two runs of the same scan
VOLATILE = ("elapsed_ms", "slow_greeting_s", "measured_at", "scan_id")
CERT_VOLATILE = ("serial", "not_before", "not_after", "days_left")


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    cert = (out.get("tls_details") or {}).get("certificate")
    if isinstance(cert, dict):
        out["tls_details"] = dict(out["tls_details"])
        out["tls_details"]["certificate"] = {
            k: v for k, v in cert.items() if k not in CERT_VOLATILE
        }
    intrusive = out.get("intrusive") or {}
    if intrusive:
        out["intrusive"] = {
            check: ({k: v for k, v in res.items()
                     if k not in ("study_instance_uid", "sop_instance_uid", "destination")}
                    if isinstance(res, dict) else res)
            for check, res in intrusive.items()
        }
        out["findings"] = [
            {**f, "detail": "<uid or AE>"} if f["id"] in ("DG-040", "DG-041") else f
            for f in out["findings"]
        ]
    return out


def _scan(intrusive: bool) -> list[str]:
    async def go() -> list[str]:
        lines: list[str] = []
        async with Fleet(NETWORK, slow_delay=0.3, slow_greeting_delay=2.5, max_patients=120):
            targets = build_targets([NETWORK], ports=(11112, 2762))
            assert targets.all_loopback()
            probe = ProbeOptions(
                timeouts=TIMEOUTS, slow_greeting_timeout=4.0, probe_called_aet="DGLABRECORDS",
                intrusive=intrusive,
            )
            records: list[dict[str, Any]] = []

            def sink(r: EndpointResult) -> None:
                records.append(r.to_dict())

            await Engine(ScanConfig(targets=targets, probe=probe, rate=0), sink).run()
            for rec in sorted(records, key=lambda r: (r["host"], r["port"])):
                lines.append(json.dumps(_stable(rec), separators=(",", ":")))
        return lines

    return asyncio.run(go())


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return _scan(False) + _scan(True)


def test_lab_scan_records_equal_those_before_the_probe_interface(lines):
    if os.environ.get("DG_WRITE_LAB_RECORDS"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected)
    for got, want in zip(lines, expected, strict=True):
        assert got == want
