"""A refused worklist query does not make C-MOVE / C-GET "closed" where Q/R C-FIND is answered.

Truth (DCMTK 3.6.7, Orthanc ``worklist`` preset: DicomAlwaysAllowFind/Move/Get true,
DicomAlwaysAllowFindWorklist false): ``findscu -W`` gets "Peer aborted Association";
``getscu -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=<none>`` gets a final response with 0
sub-operations; ``movescu -aem NOWHERE`` gets "Failed: UnableToProcess" (judged, not refused).
The default scan sends no retrieve request; it used to infer move and get closed from the
worklist's refusal, dropping DG-006 (retrieve open to a stranger).
"""

from __future__ import annotations

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.operations import ANSWERED, REFUSED, UNTESTED, open_services, record

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0))


async def test_orthanc_worklist_refused_retrieve_still_inferred_open(orthanc_worklist) -> None:
    server = orthanc_worklist
    r = await assess(server.host, server.port, OPTS)
    assert r.operations["worklist"]["state"] == "refused"
    for name in ("move", "get"):
        assert r.operations[name]["state"] == "untested"
        assert r.services[name] is server.open_to_stranger[name] is True
        assert r.services_confidence[name] == "inferred"
    assert "DG-006" in {f["id"] for f in r.findings}


def test_refused_find_still_closes_retrieve() -> None:
    negotiated = dict.fromkeys(("find_study_root", "find_patient_root", "move", "get"), True)
    refused = {"find_study_root": record(REFUSED), "find_patient_root": record(REFUSED),
               "move": record(UNTESTED), "get": record(UNTESTED)}
    out, _ = open_services(negotiated, refused)
    assert out["move"] is False and out["get"] is False
    answered = dict(refused, find_study_root=record(ANSWERED, 0))
    out, _ = open_services(negotiated, answered)
    assert out["move"] is True and out["get"] is True
