"""Every fixture's ``expected`` dict must match what the real server does, measured with pynetdicom.

Scanner tests compare their findings with ``expected`` and ``ground_truth``; these tests make sure
those are facts about Orthanc, DCMTK and pynetdicom and not assumptions.
"""

from __future__ import annotations

import ipaddress

import pytest

from dicomguard.testing.base import EXPECTATION_KEYS, LoopbackServer
from dicomguard.testing.tests.scu import associate, find, patient_query, study_query

FIXTURES = ["orthanc_open", "orthanc_locked", "dcmqrscp_aetable", "storescp_server",
            "pynetdicom_scp", "wlmscpfs_server", "pynetdicom_qrscp"]


@pytest.fixture(params=FIXTURES)
def server(request: pytest.FixtureRequest) -> LoopbackServer:
    return request.getfixturevalue(request.param)


# Q/R counts at both levels (wlmscpfs has no Q/R; qrscp's PATIENT level needs its unique
# key, see scan/tests/test_patient_counts_real_servers.py)
FIND_FIXTURES = [f for f in FIXTURES if f not in ("storescp_server", "wlmscpfs_server",
                                                  "pynetdicom_qrscp")]


@pytest.fixture(params=FIND_FIXTURES)
def find_server(request: pytest.FixtureRequest) -> LoopbackServer:
    return request.getfixturevalue(request.param)


def good_calling(server: LoopbackServer) -> str:
    """A calling AE the server lets in."""
    return server.calling_aets[0] if server.calling_aets else "DGSCANNER"


def test_server_is_on_its_own_loopback_address(server: LoopbackServer) -> None:
    assert ipaddress.ip_address(server.host).is_loopback
    assert server.host.startswith("127.0.10.")
    assert set(server.expected) == set(EXPECTATION_KEYS)


def test_services_match_expected(server: LoopbackServer) -> None:
    out = associate(server.host, server.port, server.aet, good_calling(server))
    assert out.established
    assert out.services == {k: server.expected[k] for k in EXPECTATION_KEYS[2:]}
    assert set(server.services) == {k for k, v in out.services.items() if v}
    assert out.echo_status == 0


def test_wrong_called_aet(server: LoopbackServer) -> None:
    out = associate(server.host, server.port, "DGNOSUCHAE", good_calling(server))
    assert out.established is not server.expected["called_aet_enforced"]
    if out.rejected:
        assert out.reject_reason == server.reject_reasons["called_aet"]


def test_wrong_calling_aet(server: LoopbackServer) -> None:
    out = associate(server.host, server.port, server.aet, "DGSTRANGER")
    assert out.established is not server.expected["calling_aet_enforced"]
    if out.rejected:
        assert out.reject_reason == server.reject_reasons["calling_aet"]


def test_study_and_patient_counts_equal_ground_truth(find_server: LoopbackServer) -> None:
    server = find_server
    assert server.expected["find_study_root"] and server.expected["find_patient_root"]
    calling = good_calling(server)
    studies, status = find(server.host, server.port, server.aet, calling, study_query())
    assert status == 0x0000
    assert len(studies) == server.ground_truth.studies
    dates = sorted(str(ds.StudyDate) for ds in studies)
    assert dates[0] == server.ground_truth.earliest_study_date
    assert dates[-1] == server.ground_truth.latest_study_date
    patients, status = find(
        server.host, server.port, server.aet, calling, patient_query(), model="patient"
    )
    assert status == 0x0000
    assert len(patients) == server.ground_truth.patients
    assert all(str(ds.PatientID).startswith("DGSYN") for ds in patients)


def test_date_range_query(find_server: LoopbackServer) -> None:
    server = find_server
    want = sum(
        1 for p in server.patients for s in p.studies if "20000101" <= s.study_date <= "20101231"
    )
    got, status = find(
        server.host, server.port, server.aet, good_calling(server),
        study_query(StudyDate="20000101-20101231"),
    )
    assert status == 0x0000
    assert len(got) == want
