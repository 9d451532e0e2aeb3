"""C-FIND attribute matching (PS3.4 C.2.2.2) over in-memory synthetic records.

Hand-written on purpose: pynetdicom's qrscp app matches through SQLAlchemy (an extra dependency)
and enforces the strict Q/R key hierarchy, while the real archives we imitate (Orthanc) are
lenient. This covers what scanners send: universal matching, single value, ``*``/``?``
wildcards, date/time ranges and UID lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pydicom.dataset import Dataset

from dicomguard.knowledge.synthetic import SyntheticPatient, study_dataset

#: Keys that steer the query instead of matching (never compared with records).
_CONTROL_KEYWORDS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
_RANGE_VRS = {"DA", "TM", "DT"}


def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def value_matches(vr: str, query: str, value: str) -> bool:
    """Does record ``value`` (one value) match the query ``query`` (non-empty) for ``vr``?"""
    if vr in _RANGE_VRS and "-" in query:
        low, _, high = query.partition("-")
        return (not low or value >= low) and (not high or value <= high)
    if vr == "UI":
        return value in query.split("\\")
    if "*" in query or "?" in query:
        return _wildcard(query).match(value) is not None
    return value == query


def _values(elem_value: object) -> list[str]:
    if elem_value is None:
        return [""]
    if isinstance(elem_value, str | bytes):
        return [str(elem_value)]
    try:
        return [str(v) for v in elem_value]  # type: ignore[union-attr]
    except TypeError:
        return [str(elem_value)]


def matches(identifier: Dataset, record: Dataset) -> bool:
    """True if every non-empty key of ``identifier`` matches ``record`` (keys it lacks match)."""
    for elem in identifier:
        if elem.keyword in _CONTROL_KEYWORDS or elem.VR == "SQ":
            continue
        # pydicom splits backslash lists (UID lists) into a MultiValue; join them back.
        query = "\\".join(v for v in _values(elem.value) if v)
        if not query or query == "*":
            continue  # universal matching
        if elem.keyword not in record:
            continue  # unsupported key: lenient, like the archives we imitate
        if not any(value_matches(elem.VR, query, v) for v in _values(record[elem.tag].value)):
            return False
    return True


def response(identifier: Dataset, record: Dataset) -> Dataset:
    """The answer for one match: exactly the requested keys, filled from ``record``."""
    out = Dataset()
    for elem in identifier:
        if elem.keyword == "SpecificCharacterSet":
            continue
        if elem.keyword == "QueryRetrieveLevel":
            out.QueryRetrieveLevel = identifier.QueryRetrieveLevel
        elif elem.keyword in record:
            out.add(record[elem.tag])
        else:
            out.add_new(elem.tag, elem.VR, None)
    return out


def patient_records(patients: Iterable[SyntheticPatient]) -> Iterator[Dataset]:
    """PATIENT-level records."""
    for p in patients:
        ds = Dataset()
        ds.PatientName = p.patient_name
        ds.PatientID = p.patient_id
        ds.PatientBirthDate = p.birth_date
        ds.PatientSex = p.sex
        ds.NumberOfPatientRelatedStudies = len(p.studies)
        yield ds


def study_records(patients: Iterable[SyntheticPatient]) -> Iterator[Dataset]:
    """STUDY-level records (one series with one instance per study, as the lab loads them)."""
    for p in patients:
        for s in p.studies:
            ds = study_dataset(p, s)
            ds.NumberOfStudyRelatedSeries = 1
            ds.NumberOfStudyRelatedInstances = 1
            yield ds


def find(identifier: Dataset, patients: Iterable[SyntheticPatient]) -> Iterator[Dataset]:
    """All responses for a PATIENT or STUDY level identifier; raises ValueError for others."""
    level = str(identifier.get("QueryRetrieveLevel", ""))
    if level == "PATIENT":
        records = patient_records(patients)
    elif level == "STUDY":
        records = study_records(patients)
    else:
        raise ValueError(f"unsupported QueryRetrieveLevel {level!r}")
    for rec in records:
        if matches(identifier, rec):
            yield response(identifier, rec)
