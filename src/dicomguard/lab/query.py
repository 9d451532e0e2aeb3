"""C-FIND for the lab's simulated archives: records per query level and PS3.4 C.2.2.2 matching.

pynetdicom leaves matching to the application and pydicom has no query engine, so the lab carries
this small one. It implements what a scanner measuring exposure relies on: universal matching,
single value and wildcard matching, UID lists, date/time ranges, and sequence matching for the
worklist, returning only the keys that were asked for, as a conformant SCP does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from ..dul.codes import STATUS_IDENTIFIER_MISMATCH
from ..dul.dimse import encode_dataset
from ..knowledge import sopclasses as sc
from ..knowledge.sopclasses import CT_IMAGE_STORAGE
from ..knowledge.synthetic import SyntheticPatient, SyntheticStudy

PATIENT_ROOT_FIND = sc.PATIENT_ROOT_FIND
STUDY_ROOT_FIND = sc.STUDY_ROOT_FIND
WORKLIST_FIND = sc.MODALITY_WORKLIST_FIND

#: query levels each information model allows (PS3.4 C.6)
LEVELS = {
    PATIENT_ROOT_FIND: ("PATIENT", "STUDY", "SERIES", "IMAGE"),
    STUDY_ROOT_FIND: ("STUDY", "SERIES", "IMAGE"),
}


# Not matching keys: they steer the query rather than filter it.
_CONTROL_KEYWORDS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
_RANGE_VRS = {"DA", "TM", "DT"}


class QueryError(Exception):
    """The identifier cannot be answered; ``status`` is the C-FIND failure status to send."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


#: one record: attribute keyword → value (str, int, or a list of records for a sequence)
Record = dict[str, Any]


def _patient_record(p: SyntheticPatient) -> Record:
    return {
        "PatientName": p.patient_name,
        "PatientID": p.patient_id,
        "PatientBirthDate": p.birth_date,
        "PatientSex": p.sex,
    }


def _study_record(p: SyntheticPatient, s: SyntheticStudy) -> Record:
    # The keys of synthetic.study_dataset, kept as a plain dict: building pydicom Datasets for
    # every record of a 200-patient archive costs half a second of event-loop time.
    return {
        **_patient_record(p),
        "StudyInstanceUID": s.study_instance_uid,
        "StudyDate": s.study_date,
        "StudyTime": "120000",
        "AccessionNumber": s.accession_number,
        "StudyDescription": s.description,
        "ModalitiesInStudy": s.modality,
        "StudyID": "1",
        "ReferringPhysicianName": "DGFAKE^REFERRER",
        "NumberOfStudyRelatedSeries": 1,
        "NumberOfStudyRelatedInstances": 1,
    }


@dataclass(frozen=True)
class Archive:
    """Records of one simulated archive, one tuple per query level."""

    patients: tuple[Record, ...]
    studies: tuple[Record, ...]
    series: tuple[Record, ...]
    images: tuple[Record, ...]
    worklist: tuple[Record, ...]
    _encoded: dict[tuple[Any, ...], bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_patients(cls, patients: Iterable[SyntheticPatient]) -> Archive:
        pats, studies, series, images, worklist = [], [], [], [], []
        for p in patients:
            n = len(p.studies)
            pats.append(
                {
                    **_patient_record(p),
                    "NumberOfPatientRelatedStudies": n,
                    "NumberOfPatientRelatedSeries": n,
                    "NumberOfPatientRelatedInstances": n,
                }
            )
            for s in p.studies:
                st = _study_record(p, s)
                studies.append(st)
                se = {k: v for k, v in st.items() if k != "ModalitiesInStudy"}
                se.update(
                    Modality=s.modality,
                    SeriesInstanceUID=f"{s.study_instance_uid}.1",
                    SeriesNumber=1,
                    NumberOfSeriesRelatedInstances=1,
                )
                series.append(se)
                images.append(
                    {
                        **se,
                        "SOPClassUID": CT_IMAGE_STORAGE,
                        "SOPInstanceUID": f"{s.study_instance_uid}.1.1",
                        "InstanceNumber": 1,
                    }
                )
                worklist.append(_worklist_item(p, s))
        return cls(tuple(pats), tuple(studies), tuple(series), tuple(images), tuple(worklist))

    def records(self, sop_class: str, identifier: Dataset) -> tuple[Record, ...]:
        """The records a query of ``sop_class`` at the identifier's level runs over."""
        if sop_class == WORKLIST_FIND:
            return self.worklist
        allowed = LEVELS.get(sop_class)
        if allowed is None:
            raise QueryError(STATUS_IDENTIFIER_MISMATCH, f"no query model for {sop_class}")
        level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
        if level not in allowed:
            raise QueryError(
                STATUS_IDENTIFIER_MISMATCH, f"level {level!r} not valid for {sop_class}"
            )
        return {
            "PATIENT": self.patients,
            "STUDY": self.studies,
            "SERIES": self.series,
            "IMAGE": self.images,
        }[level]

    def find_encoded(
        self, sop_class: str, identifier: Dataset, transfer_syntax: str
    ) -> Iterator[bytes | Dataset]:
        """Like :meth:`find`, with each answer encoded once per (record, requested keys).

        A scan asks every archive the same few identifiers; encoding each answer with pydicom
        (~0.3 ms) made the lab, not the scanner under test, the bottleneck of benchmarks.
        Identifiers with sequences are answered uncached.
        """
        records = self.records(sop_class, identifier)
        test = compile_matcher(identifier)
        elements = list(identifier)
        if any(e.VR == "SQ" for e in elements):
            return (answer(identifier, r) for r in records if test(r))
        shape = (
            transfer_syntax,
            tuple(e.tag for e in elements),
            str(identifier.get("QueryRetrieveLevel", "")),
            bool(identifier.get("SpecificCharacterSet")),
        )
        cache = self._encoded

        def encoded(record: Record) -> bytes:
            key = (id(record), shape)
            data = cache.get(key)
            if data is None:
                if len(cache) > 100_000:
                    cache.clear()
                data = cache[key] = encode_dataset(answer(identifier, record), transfer_syntax)
            return data

        return (encoded(r) for r in records if test(r))

    def find(self, sop_class: str, identifier: Dataset) -> Iterator[Dataset]:
        """Every response identifier for a C-FIND, in archive order, computed lazily.

        Raises :class:`QueryError` at once (not on first iteration) for a bad identifier.
        """
        records = self.records(sop_class, identifier)
        test = compile_matcher(identifier)
        return (answer(identifier, r) for r in records if test(r))


def _worklist_item(patient: SyntheticPatient, study: SyntheticStudy) -> Record:
    """A scheduled procedure step per study: the lab's worklist mirrors its archive."""
    return {
        **_patient_record(patient),
        "AccessionNumber": study.accession_number,
        "StudyInstanceUID": study.study_instance_uid,
        "RequestedProcedureID": "DGRP1",
        "RequestedProcedureDescription": study.description,
        "ScheduledProcedureStepSequence": [
            {
                "Modality": study.modality,
                "ScheduledStationAETitle": "DGLAB",
                "ScheduledProcedureStepStartDate": study.study_date,
                "ScheduledProcedureStepStartTime": "120000",
                "ScheduledProcedureStepID": "DGSPS1",
                "ScheduledProcedureStepDescription": study.description,
            }
        ],
    }


# -- matching ----------------------------------------------------------------------------------


def matches(identifier: Dataset, record: Record) -> bool:
    """True if ``record`` satisfies every matching key of ``identifier``.

    A key the record does not hold matches universally: PS3.4 C.2.2.1.1 lets an SCP treat keys
    it does not support that way, and real archives do.
    """
    for elem in identifier:
        keyword = elem.keyword
        if not keyword or keyword in _CONTROL_KEYWORDS or keyword not in record:
            continue
        if not _element_matches(elem, record[keyword]):
            return False
    return True


def compile_matcher(identifier: Dataset) -> Callable[[Record], bool]:
    """:func:`matches` with the identifier read once, for scanning a whole archive.

    Iterating a pydicom Dataset builds its elements anew each time; doing that once per record
    made every lab query cost tens of milliseconds on a few hundred studies.
    """
    sequences: list[tuple[str, DataElement]] = []
    plain: list[tuple[str, str, list[str]]] = []
    for elem in identifier:
        keyword = elem.keyword
        if not keyword or keyword in _CONTROL_KEYWORDS:
            continue
        if elem.VR == "SQ":
            sequences.append((keyword, elem))
        elif wanted := _values(elem.value):  # empty = universal matching: skip
            plain.append((keyword, elem.VR, wanted))

    def test(record: Record) -> bool:
        for keyword, vr, wanted in plain:
            if keyword in record and not _values_match(wanted, vr, record[keyword]):
                return False
        for keyword, elem in sequences:
            if keyword in record and not _element_matches(elem, record[keyword]):
                return False
        return True

    return test


def _element_matches(query: DataElement, value: Any) -> bool:
    if query.VR == "SQ":
        items = list(query.value or [])
        if not items or len(items[0]) == 0:
            return True  # universal sequence matching
        return any(matches(items[0], rec_item) for rec_item in value or [])
    wanted = _values(query.value)
    if not wanted:
        return True  # universal matching
    return _values_match(wanted, query.VR, value)


def _values_match(wanted: list[str], vr: str, value: Any) -> bool:
    have = _values(value)
    if not have:
        return False
    if vr == "UI":
        return any(h in wanted for h in have)  # list of UID matching
    return any(_single_matches(w, h, vr) for w in wanted for h in have)


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def _single_matches(wanted: str, have: str, vr: str) -> bool:
    if vr in _RANGE_VRS and "-" in wanted:
        low, _, high = wanted.partition("-")
        key = have[: max(len(low), len(high))] if vr != "DT" else have
        return (not low or key >= low) and (not high or key <= high)
    if "*" in wanted or "?" in wanted:
        # fnmatch also treats [ as a set; escape it so only * and ? are wildcards (PS3.4).
        pattern = wanted.replace("[", "[[]")
        if vr == "PN":
            return fnmatch.fnmatchcase(have.upper(), pattern.upper())
        return fnmatch.fnmatchcase(have, pattern)
    if vr == "PN":
        return wanted.upper() == have.upper()
    return wanted == have


def answer(identifier: Dataset, record: Record) -> Dataset:
    """The response identifier: each requested key with the record's value (or empty)."""
    out = Dataset()
    for elem in identifier:
        keyword = elem.keyword
        if not keyword:
            continue  # private or unknown tags are not answered
        if keyword == "QueryRetrieveLevel":
            out.QueryRetrieveLevel = elem.value
            continue
        if keyword == "SpecificCharacterSet":
            out.SpecificCharacterSet = "ISO_IR 100" if elem.value else ""
            continue
        vr = dictionary_VR(elem.tag)
        value = record.get(keyword)
        if value is None:
            out.add(DataElement(elem.tag, vr, None))
        elif vr == "SQ":
            items = list(elem.value or [])
            sub = items[0] if items else Dataset()
            out.add(DataElement(elem.tag, "SQ", Sequence([_item(sub, it) for it in value])))
        else:
            out.add(DataElement(elem.tag, vr, value))
    return out


def _item(sub: Dataset, record: Record) -> Dataset:
    """A sequence item: the keys asked for, or every key when the query item was empty."""
    if len(sub):
        return answer(sub, record)
    ds = Dataset()
    for keyword, value in record.items():
        setattr(ds, keyword, value)
    return ds
