"""Worklist exposure: items, distinct patients (keyed hashes) and the scheduled date span, with
completeness and errors of its own (issue 10, item 7).

The real server is DCMTK wlmscpfs 3.6.7 loaded with synthetic worklist files, reached with the
AE title of DCMTK's example worklist database (``OFFIS``) from the packaged defaults. Truth
checked with DCMTK findscu -W (observed 2026-11-29: 7 items, 4 distinct PatientIDs, Success).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom.sop_class import ModalityWorklistInformationFind

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.aedefaults import load_ae_defaults
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.scan.assess import ProbeOptions, assess, default_called_titles
from dicomguard.testing.findscu import WORKLIST, findscu
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer
from dicomguard.testing.servers import LoopbackServer, WlmscpfsServer, find_binary, lab_address

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)
SPS_DATE = "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate"


@pytest.fixture(scope="module")
def wlmscpfs() -> Iterator[LoopbackServer]:
    if find_binary("wlmscpfs") is None or find_binary("findscu") is None:
        pytest.skip("DCMTK wlmscpfs/findscu not installed")
    with WlmscpfsServer(lab_address(47)) as s:
        yield s


def test_the_toolkit_example_titles_are_guessed_with_their_source():
    called = {d.title: d for d in load_ae_defaults().called}
    for title in ("OFFIS", "ACME_STORE", "QRSCP", "ORTHANC", "DCM4CHEE", "CONQUESTSRV1"):
        assert title in called and called[title].source.strip()
    assert "OFFIS" in default_called_titles()


async def test_wlmscpfs_worklist_patients_and_scheduled_span(wlmscpfs):
    s = wlmscpfs
    items = [(p.patient_id, st.study_date) for p in s.patients for st in p.studies]
    seen = findscu(s.host, s.port, ["PatientID", SPS_DATE], model=WORKLIST, called_aet=s.aet)
    assert seen.final == "Success" and len(seen.matches) == len(items)
    assert len(seen.distinct("0010,0020")) == len({pid for pid, _ in items})
    # the default guesses find wlmscpfs' example title on their own
    r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False, web=None))
    assert r.called_aet["enforced"] is True and r.called_aet["accepted"] == s.aet
    assert r.services["worklist"] is True
    wl = r.exposure["worklist"]
    assert wl["items"] == len(items)
    assert wl["patients"] == len({pid for pid, _ in items})
    assert wl["earliest_scheduled_date"] == min(d for _, d in items)
    assert wl["latest_scheduled_date"] == max(d for _, d in items)
    assert wl["complete"] is True
    text = json.dumps(r.to_dict())
    assert ID_PREFIX not in text and NAME_PREFIX not in text


class WorklistRefused(PynetdicomFindServer):
    """Q/R answers; the Modality Worklist context is accepted but every query fails 0xC000."""

    sop_classes = (*PynetdicomFindServer.sop_classes, ModalityWorklistInformationFind)

    def _on_find(self, event):  # type: ignore[override]
        if event.request.AffectedSOPClassUID == ModalityWorklistInformationFind:
            yield 0xC000, None
            return
        yield from super()._on_find(event)


async def test_a_refused_worklist_leaves_the_qr_counts_complete():
    with WorklistRefused(lab_address(48), patients=make_patients(27, 6)) as s:
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
    exp = r.exposure
    # negotiated, but every worklist query fails: not open to a stranger (scan.operations)
    assert r.services_negotiated["worklist"] is True and r.services["worklist"] is False
    assert r.operations["worklist"]["state"] == "failed"
    assert exp["complete"] is True
    assert exp["studies"] == s.ground_truth.studies and exp["patients"] == s.ground_truth.patients
    assert exp["worklist"]["complete"] is False and exp["worklist"]["status"] == 0xC000
    assert exp["worklist"]["items"] is None and exp["worklist"]["patients"] is None


async def test_wlmscpfs_sends_one_message_per_pdu(wlmscpfs):
    """What the launcher's docstring says about wlmscpfs 3.6.7's framing, measured: each
    C-FIND-RSP ends in its own P-DATA-TF (the packed case is tested in
    dul/tests/test_several_messages_in_one_pdu.py)."""
    from dicomguard.dul import dimse
    from dicomguard.dul.acse import AssociateRequest
    from dicomguard.dul.scu import associate

    s = wlmscpfs
    seen: list[bytes] = []
    wl = str(ModalityWorklistInformationFind)
    out = await associate(
        s.host, s.port, AssociateRequest(called_aet=s.aet, abstract_syntaxes=(wl,)),
        timeouts=TIMEOUTS, recorder=lambda d, b: seen.append(b) if d == "in" else None,
    )
    assert out.association is not None
    async with out.association as assoc:
        q = Dataset()
        q.PatientID = ""
        items = [ds async for ds in assoc.find(wl, q)]
    assert len(items) == sum(len(p.studies) for p in s.patients)
    assembler = dimse.MessageAssembler()
    completed = [len(assembler.feed(p)) for p in seen if p[0] == 0x04]
    assert sum(completed) == len(items) + 1 and max(completed) == 1


@pytest.mark.parametrize("reject_incomplete", [True, False])
async def test_wlmscpfs_incomplete_files_counted_as_served(reject_incomplete: bool) -> None:
    """wlmscpfs skips worklist files missing a type 1 return key (the step's Modality) unless
    run with ``-dfr``; the scan counts what it serves. Truth, findscu -W: 8 items (4 patients'
    studies) by default, 11 with -dfr and 3 incomplete files (observed 2026-11-29)."""
    if find_binary("wlmscpfs") is None or find_binary("findscu") is None:
        pytest.skip("DCMTK wlmscpfs/findscu not installed")
    with WlmscpfsServer(lab_address(89), patients=make_patients(89, 4), incomplete=3,
                        reject_incomplete=reject_incomplete) as s:
        seen = findscu(s.host, s.port, ["PatientID", "AccessionNumber"], model=WORKLIST,
                       called_aet=s.aet)
        served = s.ground_truth.studies + (0 if reject_incomplete else 3)
        assert seen.final == "Success" and len(seen.matches) == served
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False, web=None))
        wl = r.exposure["worklist"]
        assert wl["items"] == served and wl["complete"] is True
        assert wl["patients"] == len(seen.distinct("0010,0020"))
