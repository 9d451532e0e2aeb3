"""The SOP classes a scan proposes, grouped by the service names of the output contract."""

from __future__ import annotations

from ..dul.negotiation import IMPLEMENTATION_CLASS_UID

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"

STORAGE = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
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
#: dul.negotiation.IMPLEMENTATION_CLASS_UID), never registered anywhere. A real server answers
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
    return {name: any(results.get(uid) == 0 for uid in uids) for name, uids in SERVICES.items()}
