"""Negotiated-then-refused is not open: the scan's services say what a stranger really gets.

Truth: ``testing/tests/test_orthanc_access.py`` (DCMTK echoscu/findscu/movescu/getscu against
the same presets): at Orthanc's defaults echoscu gets Success, findscu -S/-P, movescu and
getscu get "Peer aborted Association"; with the worklist plugin and
DicomAlwaysAllowFindWorklist false, findscu -W is aborted while findscu -S is answered.
"""

from __future__ import annotations

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.base import find_binary
from dicomguard.testing.loopback import lab_address
from dicomguard.testing.orthanc import KNOWN_VIEWER_AET, OrthancServer

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0))
CONTRACT = ("verification", "find_patient_root", "find_study_root", "move", "get", "worklist",
            "storage")


def _ids(r) -> set[str]:
    return {f["id"] for f in r.findings}


@pytest.mark.parametrize("fixture", ["orthanc_default", "orthanc_modalities"])
async def test_orthanc_refusing_a_strangers_find_is_not_reported_open(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server: OrthancServer = request.getfixturevalue(fixture)
    r = await assess(server.host, server.port, OPTS)
    assert r.dicom and r.services_negotiated["find_study_root"]
    assert {k: r.services[k] for k in CONTRACT} == server.open_to_stranger
    assert r.operations["find_study_root"]["state"] == "refused"
    assert r.operations["find_patient_root"]["state"] == "refused"
    assert r.operations["verification"]["state"] == "answered"
    assert r.operations["move"]["state"] == "untested"  # no C-MOVE without --intrusive
    assert r.access_enforced_per_operation is True
    assert r.exposure is None
    # calling AE: not "any (verified)"; judged per operation
    assert r.calling_aet["verified"] is False and r.calling_aet["per_operation"] is True
    ids = _ids(r)
    assert "DG-015" in ids and not ids & {"DG-005", "DG-006", "DG-003"}
    assert "DG-009" in ids and "DG-008" in ids  # echo and store really are open
    # every report words it the same way (report/verdict.py)
    from dicomguard.report import verdict as V

    rec = r.to_dict()
    assert V.calling_aet(rec) == "checked per operation"
    text = V.services_text(rec)
    assert "find-S(refused)" in text and "find-P(refused)" in text and "echo" in text


async def test_the_declared_modality_is_answered_and_counts(orthanc_modalities) -> None:
    server = orthanc_modalities
    opts = ProbeOptions(timeouts=OPTS.timeouts, calling_aet=KNOWN_VIEWER_AET)
    r = await assess(server.host, server.port, opts)
    assert r.operations["find_study_root"]["state"] == "answered"
    assert r.services["find_study_root"] and not r.access_enforced_per_operation
    assert r.exposure is not None and r.exposure["studies"] == server.ground_truth.studies
    assert "DG-005" in _ids(r)


async def test_refused_worklist_beside_open_query_retrieve(orthanc_worklist) -> None:
    server = orthanc_worklist
    r = await assess(server.host, server.port, OPTS)
    assert r.services_negotiated["worklist"] and not r.services["worklist"]
    assert r.operations["worklist"]["state"] == "refused"
    assert r.services["find_study_root"] and r.services["find_patient_root"]
    assert r.exposure is not None and r.exposure["studies"] == server.ground_truth.studies
    # the refused worklist is not queried again: the Q/R counts stay complete
    assert r.exposure["complete"] is True and "worklist_items" not in r.exposure
    ids = _ids(r)
    assert "DG-005" in ids and "DG-007" not in ids and "DG-015" in ids


@pytest.fixture
def scratch_orthanc(request: pytest.FixtureRequest):
    """A private empty Orthanc with the preset named by the test's parameter: the --intrusive
    checks store a test object, which must not change the shared servers' ground truth."""
    if find_binary("Orthanc") is None:
        pytest.skip("Orthanc not installed")
    with OrthancServer(lab_address(27), preset=request.param, patients=[]) as server:
        yield server


@pytest.mark.parametrize("scratch_orthanc", ["default"], indirect=True)
async def test_intrusive_move_probe_observes_the_refusal(scratch_orthanc) -> None:
    server = scratch_orthanc
    r = await assess(server.host, server.port, ProbeOptions(timeouts=OPTS.timeouts,
                                                             intrusive=True))
    assert r.operations["move"]["state"] == "refused"
    assert r.operations["get"]["state"] == "refused"
    for name in ("move", "get"):
        assert r.services[name] is False and r.services_confidence[name] == "observed"


@pytest.mark.parametrize("scratch_orthanc", ["worklist"], indirect=True)
async def test_intrusive_retrieve_probes_see_processed_requests(scratch_orthanc) -> None:
    """Truth: movescu/getscu of a nonexistent study on this preset (DicomAlwaysAllowMove/Get)
    get "Failed: UnableToProcess" (0xC000): the request was judged, not refused."""
    server = scratch_orthanc
    r = await assess(server.host, server.port, ProbeOptions(timeouts=OPTS.timeouts,
                                                             intrusive=True))
    for name in ("move", "get"):
        op = r.operations[name]
        assert op["state"] == "answered" and op["status"] == 0xC000, (name, op)
        assert r.services[name] is True and r.services_confidence[name] == "observed"
    dg006 = next(f for f in r.findings if f["id"] == "DG-006")
    assert dg006["confidence"] == "confirmed"


async def test_wlmscpfs_worklist_is_answered_so_open(wlmscpfs_server) -> None:
    """Truth (testing/tests/test_worklist_server.py): findscu -W with called AE DGWLM gets
    every item and a final Success; a wrong called AE is rejected."""
    server = wlmscpfs_server
    opts = ProbeOptions(timeouts=OPTS.timeouts, wordlist=("PACS", server.aet))
    r = await assess(server.host, server.port, opts)
    assert r.called_aet["enforced"] is True and r.called_aet["accepted"] == server.aet
    assert r.operations["worklist"]["state"] == "answered"
    assert r.services["worklist"] and not r.access_enforced_per_operation
    assert "DG-007" in _ids(r) and "DG-015" not in _ids(r)
