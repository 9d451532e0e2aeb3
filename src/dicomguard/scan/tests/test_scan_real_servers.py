"""The scan's verdicts match what real servers (Orthanc, DCMTK, pynetdicom) really allow.

Each server's ``expected`` dict was measured with pynetdicom as a client by the launchers in
``dicomguard.testing``; here the scanner must reach the same verdicts on its own.
"""

from __future__ import annotations

import json

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.base import EXPECTATION_KEYS, LoopbackServer

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0))
SERVICES = EXPECTATION_KEYS[2:]  # the service keys of the launchers' measured truth
@pytest.fixture
def server(real_dicom_server: LoopbackServer) -> LoopbackServer:
    """Each of the test kit's real DICOM servers in turn."""
    return real_dicom_server


async def test_verdicts_match_the_real_configuration(server: LoopbackServer):
    r = await assess(server.host, server.port, OPTS)
    exp = server.expected
    assert r.dicom and r.state == "open" and not r.tls
    reasons = server.reject_reasons
    if exp["called_aet_enforced"] and reasons.get("called_aet") == 7:
        assert r.called_aet["enforced"] is True
    elif not exp["called_aet_enforced"] and not exp["calling_aet_enforced"]:
        assert r.called_aet == {
            "enforced": False,
            "accepted": r.called_aet["accepted"],
            "verified": True,
        }
    if exp["calling_aet_enforced"]:
        if r.called_aet.get("accepted") or not exp["called_aet_enforced"]:
            assert r.calling_aet["enforced"] is True
    else:
        assert r.calling_aet["enforced"] is False
    reached = r.called_aet.get("accepted") is not None and not r.calling_aet["enforced"]
    if reached:  # an association was accepted: the services must be exactly those offered
        for name in SERVICES:
            assert r.services[name] == exp[name], name
        assert r.product in ("DCMTK", "pynetdicom")
    else:  # a stranger gets nothing: no service may be claimed
        assert not any(r.services.values())


async def test_exposure_equals_ground_truth_where_queries_are_open(orthanc_open, pynetdicom_scp):
    for server in (orthanc_open, pynetdicom_scp):
        r = await assess(server.host, server.port, OPTS)
        truth = server.ground_truth
        assert r.exposure is not None, server
        assert r.exposure["studies"] == truth.studies, server
        assert r.exposure["patients"] == truth.patients, server
        assert r.exposure["earliest_study_date"] == truth.earliest_study_date
        assert r.exposure["latest_study_date"] == truth.latest_study_date
        assert r.exposure["complete"] is True
        text = json.dumps(r.to_dict())
        assert NAME_PREFIX not in text and ID_PREFIX not in text


async def test_guessed_called_aet_reveals_calling_aet_check_on_orthanc(orthanc_locked):
    """With the right called AE in the wordlist, Orthanc's calling-AE check (reason 3) shows."""
    server = orthanc_locked
    # no calling-title guesses here: the point is the reason-3 verdict and its cost
    opts = ProbeOptions(timeouts=OPTS.timeouts, wordlist=("PACS", server.aet), calling_titles=())
    r = await assess(server.host, server.port, opts)
    assert r.called_aet["enforced"] is True and r.called_aet["accepted"] == server.aet
    assert r.calling_aet == {"enforced": True, "verified": True}
    assert r.associations == 3
    assert not any(r.services.values()) and r.exposure is None


async def test_dcmqrscp_refuses_a_right_called_aet_from_an_unknown_peer_with_reason_7(
    dcmqrscp_aetable,
):
    """dcmqrscp answers an unknown calling AE with reason 7 too, so the guess cannot be told
    apart from a wrong one: the scan must not claim to have found the title."""
    server = dcmqrscp_aetable
    opts = ProbeOptions(timeouts=OPTS.timeouts, wordlist=(server.aet,))
    r = await assess(server.host, server.port, opts)
    assert r.called_aet["enforced"] is True and r.called_aet["accepted"] is None


async def test_dcmqrscp_known_peer_gets_services(dcmqrscp_aetable):
    server = dcmqrscp_aetable
    opts = ProbeOptions(
        timeouts=OPTS.timeouts, wordlist=(server.aet,), calling_aet=server.calling_aets[0]
    )
    r = await assess(server.host, server.port, opts)
    assert r.called_aet["accepted"] == server.aet
    assert r.services["find_study_root"] and r.services["find_patient_root"]
    assert r.exposure is not None and r.exposure["studies"] == server.ground_truth.studies
