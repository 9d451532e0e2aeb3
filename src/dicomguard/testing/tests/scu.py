"""A reference SCU (pynetdicom) that measures what a test server really does.

The launchers' ``expected`` dicts are checked against these measurements, so the scanner's tests
can trust them. pynetdicom is independent of our own DUL code, which is the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

#: Service name → SOP classes whose presentation contexts stand for it.
SERVICE_SOP_CLASSES = {
    "verification": [Verification],
    "find_patient_root": [PatientRootQueryRetrieveInformationModelFind],
    "find_study_root": [StudyRootQueryRetrieveInformationModelFind],
    "move": [
        PatientRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelMove,
    ],
    "get": [PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet],
    "worklist": [ModalityWorklistInformationFind],
    "storage": [CTImageStorage],
}


@dataclass
class Outcome:
    """How an association attempt ended and which services were accepted."""

    established: bool
    rejected: bool = False
    aborted: bool = False
    reject_result: int | None = None
    reject_source: int | None = None
    reject_reason: int | None = None
    services: dict[str, bool] = field(default_factory=dict)
    echo_status: int | None = None


def _ae(calling: str, *, timeout: float = 10.0) -> AE:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    return ae


def associate(
    host: str,
    port: int,
    called: str,
    calling: str,
    *,
    echo: bool = True,
    retries_on_abort: int = 0,
) -> Outcome:
    """Propose every service context, report acceptance per service, and C-ECHO if accepted.

    A refused association now and then ends in a dropped connection instead of an
    A-ASSOCIATE-RJ (a known dcmqrscp 3.6.7 failure, seen rarely with Orthanc under load too);
    ``retries_on_abort`` repeats the attempt to read the reason code the server means to send.
    """
    out = _associate_once(host, port, called, calling, echo=echo)
    for _ in range(retries_on_abort):
        if out.established or out.rejected:
            break
        out = _associate_once(host, port, called, calling, echo=echo)
    return out


def _associate_once(host: str, port: int, called: str, calling: str, *, echo: bool) -> Outcome:
    ae = _ae(calling)
    for uids in SERVICE_SOP_CLASSES.values():
        for uid in uids:
            ae.add_requested_context(uid)
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        out = Outcome(established=False, rejected=assoc.is_rejected, aborted=assoc.is_aborted)
        rsp = assoc.acceptor.primitive
        if assoc.is_rejected and rsp is not None:
            out.reject_result = rsp.result
            out.reject_source = rsp.result_source
            out.reject_reason = rsp.diagnostic
        return out
    accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
    out = Outcome(established=True)
    out.services = {
        name: any(uid in accepted for uid in uids) for name, uids in SERVICE_SOP_CLASSES.items()
    }
    if echo and out.services["verification"]:
        status = assoc.send_c_echo()
        out.echo_status = int(status.Status) if status else None
    assoc.release()
    return out


def find(
    host: str,
    port: int,
    called: str,
    calling: str,
    identifier: Dataset,
    *,
    model: str = "study",
) -> tuple[list[Dataset], int | None]:
    """Run one C-FIND; return the pending identifiers and the final status (None = no answer)."""
    uid = (
        StudyRootQueryRetrieveInformationModelFind
        if model == "study"
        else PatientRootQueryRetrieveInformationModelFind
    )
    ae = _ae(calling)
    ae.add_requested_context(uid)
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        raise ConnectionError(f"association to {called}@{host}:{port} as {calling} failed")
    matches: list[Dataset] = []
    final: int | None = None
    try:
        for status, ds in assoc.send_c_find(identifier, uid):
            if not status:
                break
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                matches.append(ds)
            else:
                final = code
    finally:
        assoc.release()
    return matches, final


def study_query(**keys: str) -> Dataset:
    """A STUDY-level identifier returning the usual keys, with ``keys`` as matching values."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for kw in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "ModalitiesInStudy",
               "AccessionNumber"):
        setattr(ds, kw, keys.pop(kw, ""))
    for kw, value in keys.items():
        setattr(ds, kw, value)
    return ds


def patient_query(**keys: str) -> Dataset:
    """A PATIENT-level identifier (Patient Root)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = keys.pop("PatientID", "")
    ds.PatientName = keys.pop("PatientName", "")
    for kw, value in keys.items():
        setattr(ds, kw, value)
    return ds
