"""Synthetic, clearly fake patients and studies for the lab, the tests and the benchmarks.

Every name starts with ``DGFAKE`` and every patient ID with ``DGSYN`` so that a test can grep any
output file for them and prove the scanner never stored an identifier it saw. Generation is
deterministic for a seed, so the lab's ground truth can be recomputed instead of shipped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .sopclasses import CT_IMAGE_STORAGE

#: UID root for everything the lab makes (2.25 = UUID-derived root, PS3.5 B.2).
UID_PREFIX = "2.25.4242"

NAME_PREFIX = "DGFAKE"
ID_PREFIX = "DGSYN"

_GIVEN = [
    "ALPHA",
    "BRAVO",
    "CHARLIE",
    "DELTA",
    "ECHO",
    "FOXTROT",
    "GOLF",
    "HOTEL",
    "INDIA",
    "JULIET",
    "KILO",
    "LIMA",
    "MIKE",
    "NOVEMBER",
    "OSCAR",
    "PAPA",
    "QUEBEC",
    "ROMEO",
]
_FAMILY_INITIALS = "ABCDEFGHIJKLMNOPRSTW"
_MODALITIES = ["CT", "MR", "CR", "US", "DX", "MG", "NM", "PT"]



@dataclass(frozen=True)
class SyntheticStudy:
    """One study: the attributes a C-FIND at STUDY level can return."""

    study_instance_uid: str
    study_date: str  # YYYYMMDD
    modality: str
    accession_number: str
    description: str


@dataclass(frozen=True)
class SyntheticPatient:
    """One fake patient with its studies."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    studies: tuple[SyntheticStudy, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class GroundTruth:
    """What a stranger could count on a server holding these patients."""

    patients: int
    studies: int
    earliest_study_date: str | None
    latest_study_date: str | None
    modalities: tuple[str, ...]


def make_patients(
    seed: int,
    n_patients: int,
    *,
    studies_per_patient: tuple[int, int] = (1, 3),
    years: tuple[int, int] = (1996, 2025),
) -> list[SyntheticPatient]:
    """Return ``n_patients`` deterministic fake patients, each with 1..N studies."""
    rng = random.Random(seed)
    patients: list[SyntheticPatient] = []
    for i in range(n_patients):
        family = f"{NAME_PREFIX}{rng.choice(_FAMILY_INITIALS)}{i:05d}"
        name = f"{family}^{rng.choice(_GIVEN)}"
        pid = f"{ID_PREFIX}{seed:04d}{i:06d}"
        birth = f"{rng.randint(1930, 2020):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        studies = []
        for j in range(rng.randint(*studies_per_patient)):
            date = f"{rng.randint(*years):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            studies.append(
                SyntheticStudy(
                    study_instance_uid=f"{UID_PREFIX}.{seed}.{i}.{j}",
                    study_date=date,
                    modality=rng.choice(_MODALITIES),
                    accession_number=f"DGACC{seed:03d}{i:05d}{j}",
                    description="SYNTHETIC TEST STUDY",
                )
            )
        patients.append(SyntheticPatient(pid, name, birth, rng.choice("MFO"), tuple(studies)))
    return patients


def ground_truth(patients: list[SyntheticPatient]) -> GroundTruth:
    """Counts and date span a complete, honest query would reveal."""
    dates = [s.study_date for p in patients for s in p.studies]
    mods = sorted({s.modality for p in patients for s in p.studies})
    return GroundTruth(
        patients=len(patients),
        studies=len(dates),
        earliest_study_date=min(dates) if dates else None,
        latest_study_date=max(dates) if dates else None,
        modalities=tuple(mods),
    )


def study_dataset(patient: SyntheticPatient, study: SyntheticStudy) -> Dataset:
    """The STUDY-level attributes of a study, as a Q/R SCP would match and return them."""
    ds = Dataset()
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = "120000"
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.description
    ds.ModalitiesInStudy = study.modality
    ds.StudyID = "1"
    ds.ReferringPhysicianName = "DGFAKE^REFERRER"
    return ds


def instance_dataset(
    patient: SyntheticPatient, study: SyntheticStudy, *, rows: int = 8, columns: int = 8
) -> Dataset:
    """A small, valid CT image instance for loading real servers (Orthanc, dcmqrscp).

    The pixel data is a constant gradient: big enough to be a real image, small enough that a
    test loads hundreds of them in a second.
    """
    ds = study_dataset(patient, study)
    del ds.ModalitiesInStudy
    ds.Modality = study.modality
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = f"{study.study_instance_uid}.1.1"
    ds.SeriesInstanceUID = f"{study.study_instance_uid}.1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((x * 7) % 256 for x in range(rows * columns * 2))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = f"{UID_PREFIX}.1"
    ds.file_meta = meta
    return ds


def all_instances(patients: list[SyntheticPatient]) -> Iterator[Dataset]:
    """One instance per study, for loading a real archive."""
    for p in patients:
        for s in p.studies:
            yield instance_dataset(p, s)


def new_uid() -> str:
    """A fresh UID under the lab's root."""
    return generate_uid(prefix=UID_PREFIX + ".")
