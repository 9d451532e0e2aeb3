"""C-FIND matching rules of the in-process SCP, checked against the synthetic records."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomguard.knowledge.synthetic import make_patients
from dicomguard.testing import matching

PATIENTS = make_patients(5, 20)


def q(level: str = "STUDY", **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    ds.PatientID = ""
    ds.StudyDate = ""
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def count(identifier: Dataset) -> int:
    return len(list(matching.find(identifier, PATIENTS)))


def test_universal_matching_returns_everything() -> None:
    assert count(q()) == sum(len(p.studies) for p in PATIENTS)
    assert count(q("PATIENT")) == len(PATIENTS)
    assert count(q(PatientName="*")) == sum(len(p.studies) for p in PATIENTS)


def test_wildcards_and_single_values() -> None:
    p = PATIENTS[3]
    assert count(q("PATIENT", PatientID=p.patient_id)) == 1
    assert count(q("PATIENT", PatientID="DGSYN*")) == len(PATIENTS)
    assert count(q("PATIENT", PatientID=p.patient_id[:-1] + "?")) >= 1
    assert count(q("PATIENT", PatientID="NOPE*")) == 0


def test_date_ranges() -> None:
    dates = [s.study_date for p in PATIENTS for s in p.studies]
    assert count(q(StudyDate="-20051231")) == sum(d <= "20051231" for d in dates)
    assert count(q(StudyDate="20060101-")) == sum(d >= "20060101" for d in dates)
    assert count(q(StudyDate=dates[0])) == dates.count(dates[0])


def test_uid_list_matching() -> None:
    uids = [s.study_instance_uid for s in PATIENTS[0].studies + PATIENTS[1].studies]
    assert count(q(StudyInstanceUID="\\".join(uids))) == len(uids)


def test_response_holds_only_requested_keys() -> None:
    answer = next(matching.find(q(AccessionNumber=""), PATIENTS))
    assert {e.keyword for e in answer} == {
        "QueryRetrieveLevel", "PatientID", "StudyDate", "AccessionNumber"}


def test_unsupported_level_raises() -> None:
    try:
        list(matching.find(q("IMAGE"), PATIENTS))
    except ValueError:
        return
    raise AssertionError("IMAGE level should be refused")
