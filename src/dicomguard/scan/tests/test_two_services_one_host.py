"""Two DICOM services on one host: Orthanc (with its REST API) and DCMTK dcmqrscp.

Both announce DCMTK's identity in their A-ASSOCIATE-AC (1.2.276.0.7230010.3.0.3.6.7). Orthanc's
``GET /system`` names its one ``DicomPort``; the dcmqrscp port is another service and must stay
"DCMTK", not be named "Orthanc" from the host's REST API. Truth: ``/system`` DicomPort is the
Orthanc launcher's port; DCMTK ``findscu -S`` lists each archive's own studies on its port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dicomguard.knowledge.synthetic import make_patients
from dicomguard.store.read import load_scan
from dicomguard.testing.base import find_binary
from dicomguard.testing.dcmtk import DcmqrscpServer
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.orthanc import OrthancServer


@pytest.fixture(scope="module")
def two_services() -> Iterator[tuple[OrthancServer, DcmqrscpServer]]:
    for tool in ("Orthanc", "dcmqrscp", "findscu"):
        if find_binary(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/bootstrap)")
    host = lab_address(86)
    with OrthancServer(host, preset="open", patients=make_patients(86, 3)) as orthanc, \
            DcmqrscpServer(host, patients=make_patients(87, 5), calling_aets=(),
                           aet="ACME_STORE") as qr:
        yield orthanc, qr


def _findscu_studies(host: str, port: int, aet: str) -> int:
    done = subprocess.run(
        [str(find_binary("findscu")), "-v", "-S", "-aet", "STRANGER", "-aec", aet,
         "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", host, str(port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return (done.stdout + done.stderr).count("Find Response:")


def test_the_other_dcmtk_service_is_not_named_orthanc(two_services, tmp_path) -> None:
    orthanc, qr = two_services
    assert orthanc.rest("/system")["DicomPort"] == orthanc.port
    assert _findscu_studies(qr.host, qr.port, qr.aet) == qr.ground_truth.studies
    assert _findscu_studies(orthanc.host, orthanc.port, orthanc.aet) == \
        orthanc.ground_truth.studies
    out, db = tmp_path / "scan.jsonl", tmp_path / "scan.db"
    done = subprocess.run(
        [sys.executable, "-m", "dicomguard", "scan", orthanc.host,
         "-p", f"{orthanc.port},{qr.port}", "--web-ports", str(orthanc.http_port),
         "--jsonl", str(out), "--db", str(db), "--no-progress", "-q", "--timeout", "5"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    for records in ([json.loads(x) for x in out.read_text().splitlines()],
                    load_scan(db).records):  # as written, and as the reports see it
        by_port = {r["port"]: r for r in records}
        assert by_port[orthanc.port]["product"] == "Orthanc"
        assert by_port[orthanc.port]["product_evidence"]["confidence"] == "observed"
        assert by_port[qr.port]["product"] == "DCMTK", by_port[qr.port].get("product_evidence")
        assert by_port[qr.port]["exposure"]["studies"] == qr.ground_truth.studies
        assert by_port[orthanc.port]["exposure"]["studies"] == orthanc.ground_truth.studies


def test_a_port_mapped_orthanc_is_still_joined() -> None:
    """Docker ``-p 104:4242``: /system says 4242, the scan sees DICOM on 104 only."""
    from dicomguard.knowledge.host_identity import join_host_identity

    web = {"host": "h", "port": 8042, "dicom": False,
           "web": {"product": "Orthanc", "product_version": "1.10.1",
                   "orthanc": {"dicom_port": 4242}}}
    dicom = {"host": "h", "port": 104, "dicom": True, "product": "DCMTK",
             "product_version": "3.6.7", "toolkit": None, "confidence": {}}
    assert join_host_identity([web, dicom]) == 1
    assert dicom["product"] == "Orthanc" and dicom["confidence"]["product"] == "inferred"
    other = dict(dicom, port=11112, product="DCMTK", toolkit=None, confidence={})
    mapped = dict(dicom, port=4242, product="DCMTK", toolkit=None, confidence={})
    join_host_identity([web, mapped, other])
    assert mapped["product"] == "Orthanc" and other["product"] == "DCMTK"
