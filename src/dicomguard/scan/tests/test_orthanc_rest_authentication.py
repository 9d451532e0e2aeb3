"""Orthanc 1.10.1 with authentication on its REST API (``AuthenticationEnabled`` true and
``RegisteredUsers``), DICOM open: the host-level join cannot read ``/system``.

Truth: ``curl http://host:port/system`` without credentials answers 401 with Orthanc's realm;
DCMTK ``findscu -S`` as STRANGER lists every study on the DICOM port. The scan must: name the
web port Orthanc with authentication required and no DG-030 (nothing exposed there); name the
DICOM port Orthanc only as inferred, without a version (none was seen); count the DICOM
exposure exactly.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.web import WebOptions
from dicomguard.testing.base import find_binary
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.orthanc import OrthancServer

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)


@pytest.fixture(scope="module")
def orthanc_rest_auth() -> Iterator[OrthancServer]:
    for tool in ("Orthanc", "findscu"):
        if find_binary(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/bootstrap)")
    with OrthancServer(lab_address(90), preset="open", patients=make_patients(90, 4),
                       rest_users={"dgadmin": "dg-not-a-secret"}) as s:
        yield s


def test_truth_rest_refuses_and_dicom_answers(orthanc_rest_auth) -> None:
    s = orthanc_rest_auth
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{s.http_url}/system", timeout=10)
    assert refused.value.code == 401
    assert "Orthanc" in refused.value.headers.get("WWW-Authenticate", "")
    done = subprocess.run(
        [str(find_binary("findscu")), "-v", "-S", "-aet", "STRANGER", "-aec", s.aet,
         "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", s.host, str(s.port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (done.stdout + done.stderr).count("Find Response:") == s.ground_truth.studies


async def test_rest_behind_authentication_is_named_not_counted(orthanc_rest_auth) -> None:
    s = orthanc_rest_auth
    opts = ProbeOptions(timeouts=TIMEOUTS, web=WebOptions(ports=(s.http_port,)))
    web = await assess(s.host, s.http_port, opts)
    assert web.web["product"] == "Orthanc" and web.web["orthanc"]["auth_required"] is True
    assert "DG-030" not in {f["id"] for f in web.findings}
    r = await assess(s.host, s.port, opts)
    assert r.product == "Orthanc" and r.product_version is None
    assert r.product_evidence["confidence"] == "inferred"
    assert r.confidence["product"] == "inferred"
    truth = s.ground_truth
    assert (r.exposure["studies"], r.exposure["patients"]) == (truth.studies, truth.patients)
    assert r.exposure["complete"] is True
    # the REST API named no AE title: nothing learned from it
    assert "source" not in r.called_aet
