"""The SOP classes a scan proposes, grouped by the service names of the output contract."""

from __future__ import annotations

from pynetdicom import sop_class as _sop

from ..dul.acse import IMPLEMENTATION_CLASS_UID
from ..dul.codes import CONTEXT_ACCEPTANCE

# UIDs as pynetdicom names them (PS3.4 Annex B, C, F, J, K): plain ``str`` copies, so records,
# pickles for the forked workers and JSON hold ordinary strings.
VERIFICATION = str(_sop.Verification)
PATIENT_ROOT_FIND = str(_sop.PatientRootQueryRetrieveInformationModelFind)
PATIENT_ROOT_MOVE = str(_sop.PatientRootQueryRetrieveInformationModelMove)
PATIENT_ROOT_GET = str(_sop.PatientRootQueryRetrieveInformationModelGet)
STUDY_ROOT_FIND = str(_sop.StudyRootQueryRetrieveInformationModelFind)
STUDY_ROOT_MOVE = str(_sop.StudyRootQueryRetrieveInformationModelMove)
STUDY_ROOT_GET = str(_sop.StudyRootQueryRetrieveInformationModelGet)
MODALITY_WORKLIST_FIND = str(_sop.ModalityWorklistInformationFind)
MPPS = str(_sop.ModalityPerformedProcedureStep)
STORAGE_COMMITMENT = str(_sop.StorageCommitmentPushModel)
CT_IMAGE_STORAGE = str(_sop.CTImageStorage)

#: the storage SOP classes a scan proposes (UID -> name): the common modalities' images and a
#: text report, enough to learn whether a server stores anything at all
STORAGE: dict[str, str] = {
    str(uid): str(uid.name)
    for uid in (
        _sop.CTImageStorage,
        _sop.MRImageStorage,
        _sop.ComputedRadiographyImageStorage,
        _sop.DigitalXRayImageStorageForPresentation,
        _sop.UltrasoundImageStorage,
        _sop.SecondaryCaptureImageStorage,
        _sop.BasicTextSRStorage,
    )
}

#: service name in the output contract -> the abstract syntaxes that prove it
SERVICES: dict[str, tuple[str, ...]] = {
    "verification": (VERIFICATION,),
    "find_patient_root": (PATIENT_ROOT_FIND,),
    "find_study_root": (STUDY_ROOT_FIND,),
    "move": (PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE),
    "get": (PATIENT_ROOT_GET, STUDY_ROOT_GET),
    "worklist": (MODALITY_WORKLIST_FIND,),
    "mpps": (MPPS,),
    "storage_commitment": (STORAGE_COMMITMENT,),
    "storage": tuple(STORAGE),
}

#: A SOP class that does not exist: a UID under dicomguard's own 2.25 root (the root of
#: dul.acse.IMPLEMENTATION_CLASS_UID), never registered anywhere. A real server answers
#: its presentation context with result 3 (abstract syntax not supported); honeypots built to
#: accept everything (dicompot, any go-netdicom SCP) accept it. Not a service: kept out of
#: SERVICES, so it never shows up as one.
CANARY = f"{IMPLEMENTATION_CLASS_UID}.9.1"

#: Everything proposed in the one assessment association (well under the 128-context limit):
#: every service's SOP classes, then the canary.
ALL_PROPOSED: tuple[str, ...] = (
    *dict.fromkeys(u for us in SERVICES.values() for u in us),
    CANARY,
)


def services_from_results(results: dict[str, int]) -> dict[str, bool]:
    """Map presentation-context results (abstract syntax -> code) to service booleans."""
    return {name: any(results.get(uid) == CONTEXT_ACCEPTANCE for uid in uids)
            for name, uids in SERVICES.items()}
