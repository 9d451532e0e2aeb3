"""Intrusive checks, run only with ``dicomguard scan --intrusive``: C-STORE and C-MOVE.

Both change something on the server (a stored test object, a move job), which is why a default
scan never sends them (a lab test counts the C-STOREs and C-MOVEs the servers received).
Even so they are built to be harmless:

* C-STORE sends one tiny synthetic CT image of a ``DGFAKE`` patient whose StudyDescription and
  SeriesDescription say it is a dicomguard test object that may be deleted. Status 0 (or a
  warning) proves storage is open to strangers.
* C-MOVE asks to move a study that does not exist (a fresh random UID) to a destination AE title
  no installation knows. A server that checks destinations answers 0xA801 (move destination
  unknown) or another failure before any sub-operation (Orthanc 1.10: 0xC000); one that accepts
  arbitrary destinations answers success or pending, or fails its sub-operations while trying
  to connect to the destination (0xA702 / 0xB000 with failures). Because no study matches,
  nothing is ever sent anywhere.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydicom.dataset import Dataset

from ..dul.codes import (
    STATUS_COERCION_OF_DATA_ELEMENTS,
    STATUS_DATA_SET_MISMATCH,
    STATUS_ELEMENTS_DISCARDED,
    STATUS_MOVE_DESTINATION_UNKNOWN,
    STATUS_OUT_OF_RESOURCES_SUBOPERATIONS,
    STATUS_SUBOPERATIONS_COMPLETE_WITH_FAILURES,
    STATUS_SUCCESS,
    STATUS_WARNING,
    is_service_failure,
)
from ..dul.errors import DulError
from ..dul.scu import Association
from ..knowledge import sopclasses as sc
from ..knowledge.sopclasses import CT_IMAGE_STORAGE
from ..knowledge.synthetic import UID_PREFIX, instance_dataset, make_patients
from . import operations
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import EndpointResult, Finding, IntrusiveChecks, finding

TEST_DESCRIPTION = "dicomguard test object - synthetic, safe to delete"
#: statuses that mean the server went ahead with the sub-operations (and some failed)
SUBOPERATIONS_FAILED = (
    STATUS_OUT_OF_RESOURCES_SUBOPERATIONS, STATUS_SUBOPERATIONS_COMPLETE_WITH_FAILURES
)
#: C-STORE warnings (coercion, elements discarded, data set mismatch): stored anyway
STORE_WARNINGS = (
    STATUS_WARNING,
    STATUS_COERCION_OF_DATA_ELEMENTS,
    STATUS_ELEMENTS_DISCARDED,
    STATUS_DATA_SET_MISMATCH,
)


def make_test_instance() -> Dataset:
    """A fresh synthetic instance (new UIDs each call) labelled as a dicomguard test object."""
    # a seed under 10**5 keeps the synthetic accession number within its 16 characters (SH)
    patient = make_patients(secrets.randbelow(100_000), 1)[0]
    ds = instance_dataset(patient, patient.studies[0])
    # fresh UIDs (<= 64 characters with the ".1.1" suffix): scans never overwrite each other
    study = f"{UID_PREFIX}.9.{secrets.randbits(96)}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.1.1"
    ds.StudyDescription = TEST_DESCRIPTION
    ds.SeriesDescription = TEST_DESCRIPTION
    return ds


def random_destination() -> str:
    """A move destination AE title that no installation has configured."""
    return "DGMV" + secrets.token_hex(4).upper()


def _nonexistent_study_uid() -> str:
    return "2.25." + str(secrets.randbits(120))


async def check_store(assoc: Association) -> dict[str, Any] | None:
    """C-STORE the test instance if CT Image Storage was accepted; None if it was not."""
    if not assoc.accept.accepts(CT_IMAGE_STORAGE):
        return None
    ds = make_test_instance()
    status = await assoc.store(ds)
    return {
        "status": status,
        "accepted": status == STATUS_SUCCESS or status in STORE_WARNINGS,
        # so the administrator can find and delete the test object (synthetic UIDs, no PHI)
        "study_instance_uid": str(ds.StudyInstanceUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
    }


async def check_move(assoc: Association) -> dict[str, Any] | None:
    """C-MOVE a nonexistent study to a random destination AE; None if no MOVE context."""
    accept = assoc.accept
    if accept.accepts(sc.STUDY_ROOT_MOVE):
        sop_class = sc.STUDY_ROOT_MOVE
    elif accept.accepts(sc.PATIENT_ROOT_MOVE):
        sop_class = sc.PATIENT_ROOT_MOVE
    else:
        return None
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    if sop_class == sc.PATIENT_ROOT_MOVE:
        q.PatientID = "DGNOMATCH" + secrets.token_hex(4).upper()  # matches no patient
    q.StudyInstanceUID = _nonexistent_study_uid()
    destination = random_destination()
    status = await assoc.move(sop_class, q, destination)
    info = dict(getattr(assoc, "last_move", {}) or {})
    if status == STATUS_MOVE_DESTINATION_UNKNOWN:
        accepted: bool | None = False
        confidence = "confirmed"
    elif info.get("pending") or (status in SUBOPERATIONS_FAILED and info.get("failed")):
        accepted, confidence = True, "confirmed"  # it started sending (or trying to)
    elif status == STATUS_SUCCESS:
        # success with nothing to move: the destination was not refused, but a server that
        # matches before it resolves the destination would answer the same
        accepted, confidence = True, "inferred"
    elif is_service_failure(status) and not any(info.get(k) for k in ("failed", "completed")):
        # a failure before any sub-operation (Orthanc 1.10 answers 0xC000 for an unknown
        # modality): refused, though perhaps for another reason than the destination
        accepted, confidence = False, "inferred"
    else:
        accepted, confidence = None, "unknown"
    return {
        "destination": destination,
        "status": status,
        "accepted": accepted,
        "confidence": confidence,
        **{k: info[k] for k in ("pending", "completed", "failed", "warning") if k in info},
    }


async def run_check(assoc: Association, name: str) -> dict[str, Any] | None:
    """One intrusive check (``"store"`` or ``"move"``) on an accepted association.

    A peer that refuses it by A-ABORT or by dropping the connection (Orthanc 1.10 with
    ``DicomAlwaysAllowStore`` false aborts a stranger's C-STORE: measured with DCMTK storescu,
    "Peer aborted Association") gives ``{"error", "accepted": None}``, and the association is
    closed on our side too, so the caller opens a new one for the next check instead of
    writing into a dead connection.
    """
    check = check_store if name == "store" else check_move
    try:
        return await check(assoc)
    except DulError as exc:
        await assoc.abort()
        return {"error": f"{type(exc).__name__}: {exc}", "accepted": None}


def intrusive_findings(intrusive: IntrusiveChecks | dict[str, Any] | None) -> list[Finding]:
    if not intrusive:
        return []
    out: list[Finding] = []
    store = intrusive.get("store") or {}
    if store.get("accepted"):
        out.append(
            finding(
                "DG-040",
                detail=f"status 0x{store['status']:04X}; test study {store['study_instance_uid']}",
            )
        )
    move = intrusive.get("move") or {}
    if move.get("accepted"):
        out.append(
            finding(
                "DG-041",
                confidence=move.get("confidence", "confirmed"),
                detail=f"destination {move['destination']}: status 0x{move['status']:04X}",
            )
        )
    return out


class IntrusiveProbe:
    """The --intrusive checks as a probe (scan.probe) on the assessment association: C-STORE
    of the test object, C-MOVE of nothing to a random AE, then C-GET of nothing
    (operations.probe_get), each on a live association (a refused C-STORE, often an A-ABORT,
    must not leave the C-MOVE writing into a dead connection). Results go to the record's
    ``intrusive`` and become the ``storage``, ``move`` and ``get`` operations."""

    name = "intrusive"
    stage = Stage.ASSOCIATION
    needs = frozenset({Need.ASSOCIATION})
    #: filled in place as the checks go (what ran before a failure stays in the record)
    field = None
    result_type = IntrusiveChecks

    def applies(self, session: Session) -> bool:
        return bool(session.opts.intrusive) and not session.opts.discovery

    async def run(self, target: Target, session: Session) -> ProbeResult[IntrusiveChecks]:
        r = session.record
        ops = session.operations
        r.intrusive = checks = IntrusiveChecks(store=None, move=None)
        for check, service, judge in (
            ("store", "storage", operations.from_intrusive_store),
            ("move", "move", operations.from_intrusive_move),
        ):
            current = await session.live_association()
            if current is None:
                break
            result = await run_check(current, check)
            setattr(checks, check, result)
            op = judge(result)
            if op is not None:
                ops[service] = op
                await session.drop_if_broken(op)
        if r.services_negotiated["get"]:
            current = await session.live_association()
            if current is not None:
                got = await operations.probe_get(current)
                if got is not None:
                    ops["get"] = got
                    await session.drop_if_broken(got)
        return ProbeResult.ok(checks)

    def findings(self, record: EndpointResult) -> list[Finding]:
        return intrusive_findings(record.intrusive)


PROBE = IntrusiveProbe()
