"""Mutual TLS is a secured DICOM endpoint, never "not DICOM" and never "no TLS".

Truth (``testing/tests/test_tls_servers.py``): ``openssl s_client -brief`` against storescp
``+tls key crt +cf ca -rc`` and Orthanc ``DicomTlsRemoteCertificateRequired`` completes a TLS 1.3
handshake and then reads "tlsv13 alert certificate required (SSL alert number 116)"; DCMTK
``echoscu +tls`` with a client certificate of the test CA gets "Echo Response (Success)".
"""

from __future__ import annotations

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.report.stats import aggregate
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.store.read import StoredScan

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0))


@pytest.mark.parametrize("fixture", ["storescp_mutual_tls", "orthanc_mutual_tls"])
async def test_client_certificate_required_is_tls_and_likely_dicom(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    r = await assess(server.host, server.port, OPTS)
    assert r.tls is True and r.dicom is True
    assert r.tls_details["client_cert"] == {"requested": True, "required": True}
    assert r.dicom_likelihood["verdict"] == "likely"
    assert 0.5 <= r.dicom_likelihood["confidence"] < 1
    assert r.confidence["dicom"] == "inferred" and r.confidence["tls"] == "observed"
    ids = {f["id"] for f in r.findings}
    assert "DG-014" not in ids and "DG-004" not in ids and "DG-026" not in ids
    assert "DG-013" in ids
    assert not any(r.services.values())


async def test_mutual_tls_counts_as_secured_in_statistics(storescp_mutual_tls) -> None:
    server = storescp_mutual_tls
    r = await assess(server.host, server.port, OPTS)
    scan = StoredScan(path="memory", meta={"states": {"open": 1}}, records=[r.to_dict()])
    stats = aggregate(scan)
    head, ports = stats["headline"], stats["endpoints"]
    assert ports["dicom_services"] == 1 and ports["tls"] == 1
    assert head["tls"]["n"] == head["tls"]["of"] == 1
    assert head["client_cert_required"]["n"] == 1 and head["leaking"]["n"] == 0


async def test_tls_without_client_certificate_is_observed_dicom(storescp_tls) -> None:
    """storescp ``+tls key crt -ic``: echoscu +tls gets "Echo Response (Success)"
    (testing/tests/test_tls_servers.py); DICOM is observed inside TLS, and DG-026 says no
    client certificate is asked for."""
    r = await assess(storescp_tls.host, storescp_tls.port, OPTS)
    assert r.tls and r.dicom and r.dicom_likelihood is None
    assert r.confidence["dicom"] == "observed"
    assert r.tls_details["client_cert"]["required"] is False
    assert r.services["verification"] and r.product == "DCMTK"
    assert "DG-026" in {f["id"] for f in r.findings}


async def test_tls12_server_refusing_the_handshake_without_certificate(storescp_mutual_tls12):
    """storescp ``+tls key crt +cf ca -rc +pa`` (TLS 1.2 only) fails the handshake itself when
    no client certificate comes: openssl s_client -tls1_2 reads "sslv3 alert handshake failure
    ... SSL alert number 40", -tls1_3 "alert protocol version (70)" (test_tls_servers.py).
    Still TLS, likely DICOM, never "not DICOM"."""
    server = storescp_mutual_tls12
    r = await assess(server.host, server.port, OPTS)
    assert r.tls is True and r.tls_details["client_cert"]["required"] is True
    assert r.dicom_likelihood is not None and r.dicom_likelihood["verdict"] == "likely"
    assert "DG-014" not in {f["id"] for f in r.findings}
