"""Patient counts on real servers: distinct keyed hashes of PatientID, never 0 for "unknown".

Each truth was checked with DCMTK findscu 3.6.7 before it was asserted, and each test runs
findscu again so a new server version that behaves differently fails here first (issue 10,
item 3). Observed on 2026-11-29 (3 patients / 5 studies in dcmqrscp, 3 / 7 in qrscp,
8 / 12 in Orthanc):

* dcmqrscp 3.6.7: a PATIENT-level query without PatientID (the level's unique key) gets
  0 matches and Success; with PatientID, 3 matches = 3 patients.
* ``python -m pynetdicom qrscp`` (3.0.4): without a unique key the PATIENT level fails with
  0xA900 (findscu: "Error: DataSetDoesNotMatchSOPClass"); with PatientID it answers one match
  *per study* (7 matches, 3 distinct PatientIDs): summing matches over-counts.
* Orthanc 1.10.1 with ``LimitFindResults: 5``: every level answers 5 matches then 0xFE00
  (findscu: "Cancel: MatchingTerminatedDueToCancelRequest"); the study answers of the date
  partitions hold all 8 patients.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.findscu import PATIENT_ROOT, STUDY_ROOT, findscu
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer
from dicomguard.testing.servers import (
    DcmqrscpServer,
    LoopbackServer,
    OrthancServer,
    PynetdicomQrscpServer,
    find_binary,
    lab_address,
)

TIMEOUTS = Timeouts(2.0, 5.0, 10.0, 1.0)
PATIENT_ID = "0010,0020"
STUDY_UID = "0020,000d"


def _need(*names: str) -> None:
    missing = [n for n in names if find_binary(n) is None]
    if missing:
        pytest.skip(f"{missing} not installed (scripts/bootstrap installs them)")


def _opts(server: LoopbackServer, calling: str = "DICOMGUARD") -> ProbeOptions:
    return ProbeOptions(
        timeouts=TIMEOUTS, try_tls=False, wordlist=(server.aet,), calling_aet=calling, web=None
    )


def _honest(record, server: LoopbackServer) -> None:
    """A real archive answers nothing for 18000101-18000102 (findscu agrees) and is not
    flagged by the behavioural honeypot checks."""
    impossible = findscu(
        server.host, server.port,
        ["QueryRetrieveLevel=STUDY", "StudyDate=18000101-18000102", "StudyInstanceUID"],
        model=STUDY_ROOT, called_aet=server.aet,
    )
    assert impossible.matches == [] and impossible.final == "Success"
    assert record.exposure["answers_impossible_query"] is False
    assert record.honeypot["suspected"] is False


def _no_identifier(record: dict, server: LoopbackServer) -> None:
    text = json.dumps(record)
    assert NAME_PREFIX not in text and ID_PREFIX not in text
    for p in server.patients:
        assert p.patient_id not in text


@pytest.fixture(scope="module")
def dcmqrscp() -> Iterator[LoopbackServer]:
    _need("dcmqrscp", "dcmqridx", "findscu")
    patients = make_patients(21, 3, studies_per_patient=(1, 2))
    peers = ("FINDSCU", "DGSCAN")
    with DcmqrscpServer(lab_address(41), patients=patients, calling_aets=peers) as s:
        yield s


@pytest.fixture(scope="module")
def qrscp() -> Iterator[LoopbackServer]:
    _need("findscu")
    with PynetdicomQrscpServer(lab_address(42)) as s:
        yield s


@pytest.fixture(scope="module")
def orthanc_capped() -> Iterator[LoopbackServer]:
    _need("Orthanc", "findscu")
    patients = make_patients(23, 8, studies_per_patient=(1, 2))
    with OrthancServer(lab_address(43), patients=patients, limit_find_results=5) as s:
        yield s


async def test_dcmqrscp_patients_need_the_unique_key(dcmqrscp):
    s = dcmqrscp
    truth = s.ground_truth
    keyless = findscu(s.host, s.port, ["QueryRetrieveLevel=PATIENT"], model=PATIENT_ROOT,
                      called_aet=s.aet)
    keyed = findscu(s.host, s.port, ["QueryRetrieveLevel=PATIENT", "PatientID"],
                    model=PATIENT_ROOT, called_aet=s.aet)
    assert (len(keyless.matches), keyless.final) == (0, "Success")
    assert len(keyed.distinct(PATIENT_ID)) == truth.patients
    r = await assess(s.host, s.port, _opts(s, "DGSCAN"))
    exp = r.exposure
    assert exp is not None and exp["complete"] is True
    assert (exp["patients"], exp["studies"]) == (truth.patients, truth.studies)
    assert exp["patient_level"]["state"] == "complete"
    _honest(r, s)
    _no_identifier(r.to_dict(), s)


async def test_qrscp_repeats_patients_per_study_and_is_deduplicated(qrscp):
    s = qrscp
    truth = s.ground_truth
    keyed = findscu(s.host, s.port, ["QueryRetrieveLevel=PATIENT", "PatientID"],
                    model=PATIENT_ROOT, called_aet=s.aet)
    studies = findscu(s.host, s.port, ["QueryRetrieveLevel=STUDY", STUDY_UID],
                      model=STUDY_ROOT, called_aet=s.aet)
    assert len(keyed.matches) == truth.studies > truth.patients  # one match per study
    assert len(keyed.distinct(PATIENT_ID)) == truth.patients
    assert len(studies.distinct(STUDY_UID)) == truth.studies
    r = await assess(s.host, s.port, _opts(s))
    exp = r.exposure
    assert exp is not None and exp["complete"] is True
    assert (exp["patients"], exp["studies"]) == (truth.patients, truth.studies)
    assert exp["inconsistencies"] == []
    # its worklist answers Success with no item: known and empty, not an error
    assert exp["worklist"]["items"] == 0 and exp["worklist"]["complete"] is True
    _honest(r, s)
    _no_identifier(r.to_dict(), s)


async def test_orthanc_limit_find_results_patients_come_from_the_study_answers(orthanc_capped):
    s = orthanc_capped
    truth = s.ground_truth
    capped = findscu(s.host, s.port, ["QueryRetrieveLevel=PATIENT", "PatientID"],
                     model=PATIENT_ROOT, called_aet=s.aet)
    assert len(capped.matches) == 5 and capped.final.startswith("Cancel")
    r = await assess(s.host, s.port, _opts(s))
    exp = r.exposure
    assert exp is not None
    assert exp["result_cap"] == 5
    assert exp["studies"] == truth.studies and exp["patients"] == truth.patients == 8
    assert exp["patient_level"]["state"] == "capped"
    assert exp["complete"] is True  # every date partition answered below the cap
    _honest(r, s)
    _no_identifier(r.to_dict(), s)


class PatientLevelFails(PynetdicomFindServer):
    """A Q/R SCP whose PATIENT level always fails with 0xC000 (Unable to process) while the
    STUDY level answers: the patient count must be unknown there, never 0."""

    studies_carry_patient_id = True

    def _on_find(self, event):  # type: ignore[override]
        if event.identifier.QueryRetrieveLevel == "PATIENT":
            yield 0xC000, None
            return
        for status, ds in super()._on_find(event):
            if ds is not None and not self.studies_carry_patient_id and "PatientID" in ds:
                del ds.PatientID
            yield status, ds


class PatientLevelFailsAndStudiesHideIds(PatientLevelFails):
    studies_carry_patient_id = False


async def test_refused_patient_level_counts_patients_from_studies_or_says_unknown():
    for kind, address in ((PatientLevelFails, 45), (PatientLevelFailsAndStudiesHideIds, 46)):
        with kind(lab_address(address), patients=make_patients(25, 12)) as s:
            r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
        exp = r.exposure
        assert exp is not None and exp["studies"] == s.ground_truth.studies
        assert exp["patient_level"]["state"] == "refused"
        assert exp["patient_level"]["matches"] == 0
        if kind.studies_carry_patient_id:
            assert exp["patients"] == s.ground_truth.patients and exp["complete"] is True
        else:
            assert exp["patients"] is None and exp["complete"] is False
            assert exp["inconsistencies"] == []


class NoPatientsAtAll(PynetdicomFindServer):
    """PATIENT level: Success with no match (what dcmqrscp answers a query without the
    level's unique key); the study answers carry no PatientID either."""

    def _on_find(self, event):  # type: ignore[override]
        if event.identifier.QueryRetrieveLevel == "PATIENT":
            yield 0x0000, None
            return
        for status, ds in super()._on_find(event):
            if ds is not None and "PatientID" in ds:
                del ds.PatientID
            yield status, ds


class MorePatientsThanStudies(PynetdicomFindServer):
    """PATIENT level lists patients the study level never shows (more than its studies)."""

    def _on_find(self, event):  # type: ignore[override]
        if event.identifier.QueryRetrieveLevel == "PATIENT":
            for i in range(3 * len(self.patients) + 5):
                ds = event.identifier.__class__()
                ds.QueryRetrieveLevel = "PATIENT"
                ds.PatientID = f"DGSYNEXTRA{i}"
                yield 0xFF00, ds
            return
        yield from super()._on_find(event)


async def test_impossible_combinations_are_flagged_never_complete():
    with NoPatientsAtAll(lab_address(67), patients=make_patients(67, 5)) as s:
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
    exp = r.exposure
    assert exp["studies"] == s.ground_truth.studies and exp["patient_level"]["matches"] == 0
    assert exp["patients"] is None and exp["complete"] is False
    assert exp["inconsistencies"] == ["no patients beside studies"]

    with MorePatientsThanStudies(lab_address(68), patients=make_patients(68, 4)) as s:
        r = await assess(s.host, s.port, ProbeOptions(timeouts=TIMEOUTS, try_tls=False))
    exp = r.exposure
    assert exp["studies"] == s.ground_truth.studies < exp["patients"]
    assert exp["complete"] is False
    assert exp["inconsistencies"] == ["more patients than studies at study level"]


def test_the_hash_key_is_per_endpoint_and_never_leaves_memory():
    """Two meters hash one ID differently (a random key each): hashes cannot be linked across
    endpoints or scans, and nothing of the key is in what a meter returns."""
    from dicomguard.scan.exposure import ExposureMeter, ExposureOptions

    a = ExposureMeter(None, ExposureOptions())  # type: ignore[arg-type]
    b = ExposureMeter(None, ExposureOptions())  # type: ignore[arg-type]
    assert a._keyed("DGSYN1") != b._keyed("DGSYN1") and a._keyed("DGSYN1") == a._keyed("DGSYN1")
    summary = json.dumps(a._study_summary(True, None))
    assert a._key.hex() not in summary
