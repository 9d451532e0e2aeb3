"""``--discovery`` finds a mutual-TLS DICOM server as the full scan does: TLS, likely DICOM.

Truth (as in test_mutual_tls.py): ``openssl s_client`` against Orthanc with
``DicomTlsRemoteCertificateRequired`` (and storescp ``+tls ... -rc``) completes TLS 1.3, then
reads "tlsv13 alert certificate required (SSL alert number 116)". Discovery used to skip the
TLS probe, so such a port was recorded ``dicom: false`` with DG-014 "not speaking DICOM"
(confirmed) while the full scan said TLS, likely DICOM.
"""

from __future__ import annotations

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), discovery=True)


@pytest.mark.parametrize("fixture", ["storescp_mutual_tls", "orthanc_mutual_tls"])
async def test_discovery_of_mutual_tls_is_tls_and_likely_dicom(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    r = await assess(server.host, server.port, OPTS)
    assert r.tls is True and r.dicom is True
    assert r.dicom_likelihood["verdict"] == "likely"
    assert r.tls_details["client_cert"]["required"] is True
    assert "DG-014" not in {f["id"] for f in r.findings}


async def test_discovery_of_plain_tls_keeps_one_association(storescp_tls) -> None:
    """storescp ``+tls`` without -rc: observed DICOM inside TLS, no extra TLS probing."""
    r = await assess(storescp_tls.host, storescp_tls.port, OPTS)
    assert r.tls and r.dicom and r.dicom_likelihood is None
    assert r.tls_details is None
