"""C-FIND matching of the lab archives against hand-computed expectations from synthetic data."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomguard.knowledge.synthetic import ground_truth, make_patients
from dicomguard.lab.query import (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    WORKLIST_FIND,
    Archive,
    QueryError,
)

PATIENTS = make_patients(11, 60)
ARCHIVE = Archive.from_patients(PATIENTS)
ALL_STUDIES = [(p, s) for p in PATIENTS for s in p.studies]


def q(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def test_universal_study_query_returns_every_study_with_only_asked_keys() -> None:
    got = list(ARCHIVE.find(STUDY_ROOT_FIND, q("STUDY", StudyInstanceUID="", StudyDate="")))
    assert len(got) == ground_truth(PATIENTS).studies
    assert {ds.StudyInstanceUID for ds in got} == {s.study_instance_uid for _, s in ALL_STUDIES}
    assert set(got[0].dir()) == {"QueryRetrieveLevel", "StudyInstanceUID", "StudyDate"}


def test_study_date_ranges() -> None:
    def count(rng: str) -> int:
        return len(list(ARCHIVE.find(STUDY_ROOT_FIND, q("STUDY", StudyDate=rng))))

    dates = sorted(s.study_date for _, s in ALL_STUDIES)
    mid = dates[len(dates) // 2]
    assert count(f"-{mid}") == sum(d <= mid for d in dates)
    assert count(f"{mid}-") == sum(d >= mid for d in dates)
    assert count("20000101-20091231") == sum("20000101" <= d <= "20091231" for d in dates)
    assert count(mid) == dates.count(mid)


def test_patient_level_and_wildcards() -> None:
    pats = list(ARCHIVE.find(PATIENT_ROOT_FIND, q("PATIENT", PatientID="", PatientName="")))
    assert len(pats) == len(PATIENTS)
    assert all(str(p.PatientName).startswith("DGFAKE") for p in pats)
    target = PATIENTS[5]
    hits = list(
        ARCHIVE.find(PATIENT_ROOT_FIND, q("PATIENT", PatientName=target.patient_name[:9] + "*"))
    )
    assert target.patient_name in {str(h.PatientName) for h in hits}
    lower = list(ARCHIVE.find(PATIENT_ROOT_FIND, q("PATIENT", PatientName="dgfake*")))
    assert len(lower) == len(PATIENTS)  # PN matching is case-insensitive here
    by_id = list(ARCHIVE.find(PATIENT_ROOT_FIND, q("STUDY", PatientID=target.patient_id)))
    assert len(by_id) == len(target.studies)


def test_uid_list_matching() -> None:
    uids = [s.study_instance_uid for _, s in ALL_STUDIES[:3]]
    got = list(ARCHIVE.find(STUDY_ROOT_FIND, q("STUDY", StudyInstanceUID="\\".join(uids))))
    assert sorted(ds.StudyInstanceUID for ds in got) == sorted(uids)


def test_series_and_image_levels() -> None:
    study = ALL_STUDIES[0][1]
    series = list(
        ARCHIVE.find(
            STUDY_ROOT_FIND,
            q(
                "SERIES",
                StudyInstanceUID=study.study_instance_uid,
                SeriesInstanceUID="",
                Modality="",
            ),
        )
    )
    assert len(series) == 1 and series[0].Modality == study.modality
    images = list(ARCHIVE.find(STUDY_ROOT_FIND, q("IMAGE", SOPInstanceUID="")))
    assert len(images) == len(ALL_STUDIES)


def test_bad_level_is_identifier_mismatch() -> None:
    with pytest.raises(QueryError) as exc:
        ARCHIVE.find(STUDY_ROOT_FIND, q("PATIENT", PatientID=""))
    assert exc.value.status == 0xA900
    with pytest.raises(QueryError):
        ARCHIVE.find(PATIENT_ROOT_FIND, Dataset())


def test_worklist_sequence_matching() -> None:
    item = Dataset()
    item.ScheduledProcedureStepStartDate = "20200101-"
    item.Modality = ""
    ident = Dataset()
    ident.PatientID = ""
    ident.ScheduledProcedureStepSequence = Sequence([item])
    got = list(ARCHIVE.find(WORKLIST_FIND, ident))
    expected = sum(s.study_date >= "20200101" for _, s in ALL_STUDIES)
    assert len(got) == expected > 0
    sps = got[0].ScheduledProcedureStepSequence[0]
    assert set(sps.dir()) == {"ScheduledProcedureStepStartDate", "Modality"}
