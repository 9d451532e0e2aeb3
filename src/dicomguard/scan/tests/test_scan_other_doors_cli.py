"""``dicomguard scan`` end to end: web, TLS and (only when asked) intrusive checks in the output.

One real Orthanc with its DICOMweb plugin (DICOM and HTTP ports on one loopback address) and
the lab's TLS persona are scanned with the command line; the JSON Lines file must hold the web
record, the TLS facts and the findings with remediation in the terminal summary, and no
synthetic name or ID anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomguard.knowledge.findings import catalog
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.lab.fleet import FleetThread
from dicomguard.testing.orthanc import DicomWebOrthanc
from dicomguard.testing.servers import lab_address

TLS_NETWORK = "127.42.246.0/30"


@pytest.fixture(scope="module")
def orthanc() -> Iterator[DicomWebOrthanc]:
    if not DicomWebOrthanc.installed():
        pytest.skip("Orthanc or orthanc-dicomweb missing: run scripts/bootstrap")
    with DicomWebOrthanc(lab_address(45), preset="open", patients=make_patients(45, 12)) as s:
        yield s


def _scan(tmp_path: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    jsonl = tmp_path / "scan.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dicomguard",
            "scan",
            *args,
            "--rate",
            "0",
            "--timeout",
            "3",
            "--no-progress",
            "--jsonl",
            str(jsonl),
            "--db",
            str(tmp_path / "scan.db"),
        ],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    text = jsonl.read_text()
    for path in tmp_path.iterdir():  # every output file, the database included
        data = path.read_bytes()
        assert NAME_PREFIX.encode() not in data and ID_PREFIX.encode() not in data, path
    return [json.loads(line) for line in text.splitlines()], proc.stdout


def test_web_record_and_dicom_record_of_one_orthanc(orthanc, tmp_path: Path):
    s = orthanc
    records, summary = _scan(tmp_path, s.host, "-p", str(s.port), "--web-ports", str(s.http_port))
    by_port = {r["port"]: r for r in records}
    web, dicom = by_port[s.http_port], by_port[s.port]
    assert web["dicom"] is False and dicom["dicom"] is True
    assert web["web"]["orthanc"]["counts"]["studies"] == s.ground_truth.studies
    assert web["web"]["qido"]["studies"] == s.ground_truth.studies
    assert (web["product"], web["product_version"]) == ("Orthanc", "1.10.1")
    assert {f["id"] for f in web["findings"]} == {"DG-030", "DG-032", "DG-033", "DG-034"}
    assert dicom["exposure"]["studies"] == s.ground_truth.studies
    assert dicom["intrusive"] is None  # not asked for
    assert dicom["tls_details"] is None
    assert "DG-005" in summary and catalog()["DG-005"].remediation[:30] in summary


def test_tls_persona_gets_tls_facts_and_findings(tmp_path: Path):
    with FleetThread(TLS_NETWORK, ["tls-only"], ports=(11112,)):
        records, summary = _scan(tmp_path, TLS_NETWORK, "-p", "2762")
    (r,) = records
    assert r["tls"] is True and r["dicom"] is True
    d = r["tls_details"]
    accepted = {v for v, e in d["versions"].items() if e["accepted"]}
    assert accepted == {"TLSv1.2", "TLSv1.3"}
    cert = d["certificate"]
    assert cert["self_signed"] is False and cert["key_type"] == "EC secp256r1"
    assert d["client_cert"]["required"] is False
    ids = {f["id"] for f in r["findings"]}
    assert {"DG-013", "DG-026", "DG-027"} <= ids and "DG-020" not in ids
    assert "DG-026" in summary and catalog()["DG-026"].remediation[:30] in summary
