"""Blocking pynetdicom clients for the gateway tests (a modality's or a viewer's view)."""

from __future__ import annotations

import ssl
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomguard.knowledge.synthetic import instance_dataset, make_patients
from dicomguard.testing.reference import identifier

CONTEXTS = (Verification, CTImageStorage, PatientRootQueryRetrieveInformationModelFind,
            PatientRootQueryRetrieveInformationModelMove,
            PatientRootQueryRetrieveInformationModelGet)


def associate(
    address: tuple[str, int],
    *,
    called: str = "PACS",
    calling: str = "CT01",
    bind: str | None = None,
    tls: ssl.SSLContext | None = None,
    username: str | None = None,
    passcode: str | None = None,
    jwt_token: str | None = None,
    max_pdu: int = 16384,
) -> Association:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.maximum_pdu_size = max_pdu
    for uid in CONTEXTS:
        ae.add_requested_context(uid)
    kwargs: dict[str, Any] = {"ae_title": called}
    if bind:
        kwargs["bind_address"] = (bind, 0)
    if tls is not None:
        kwargs["tls_args"] = (tls, None)
    ext = []
    if username is not None or jwt_token is not None:
        from pynetdicom.pdu_primitives import UserIdentityNegotiation

        ui = UserIdentityNegotiation()
        if jwt_token is not None:
            ui.user_identity_type = 5
            ui.primary_field = jwt_token.encode()
        elif passcode is not None:
            ui.user_identity_type = 2
            ui.primary_field = (username or "").encode()
            ui.secondary_field = passcode.encode()
        else:
            ui.user_identity_type = 1
            ui.primary_field = (username or "").encode()
        ui.positive_response_requested = True
        ext.append(ui)
    if ext:
        kwargs["ext_neg"] = ext
    for _attempt in range(3):
        assoc = ae.associate(address[0], address[1], **kwargs)
        # pynetdicom 3.0.4 sometimes loses an A-ASSOCIATE-RJ that arrives just before the peer
        # closes (its DUL thread ends before the ACSE reads the queue) and reports an abort
        # instead; the RJ was on the wire, so ask again rather than misread the gateway.
        if assoc.is_established or assoc.is_rejected:
            break
    if assoc.is_established:
        _keep_responses(assoc)
    return assoc


def _keep_responses(assoc: Association) -> None:
    """Close pynetdicom's race between its reactor thread and a ``send_c_*`` call.

    ``send_c_find`` (and the others) pause the association's reactor by clearing an event and
    waiting for an ``_is_paused`` flag, which is still True for a moment after the reactor has
    passed the event: under load the reactor can then take the *response* off the DIMSE queue,
    log "Received unexpected C-FIND service message", drop it, and the caller times out
    (pynetdicom issue #875). The gateway answers a refused request within microseconds, which
    makes the race show. A response the reactor takes is put back at the head of the queue,
    where the waiting ``send_c_*`` gets it, in order.
    """
    serve = assoc._serve_request
    queue = assoc.dimse.msg_queue

    def serve_requests_only(msg: Any, context_id: int) -> None:
        if msg.is_valid_request:
            serve(msg, context_id)
            return
        with queue.mutex:
            queue.queue.appendleft((context_id, msg))
            queue.unfinished_tasks += 1
            queue.not_empty.notify()

    assoc._serve_request = serve_requests_only  # type: ignore[method-assign]


def reject_reason(assoc: Association) -> tuple[int, int, int] | None:
    """(result, source, reason) of the A-ASSOCIATE-RJ the association got, if any."""
    if not assoc.is_rejected:
        return None
    rj = assoc.acceptor.primitive
    return int(rj.result), int(rj.result_source), int(rj.diagnostic)


def ct_instance(index: int = 0, rows: int = 16, columns: int = 16) -> Dataset:
    patient = make_patients(7, 1)[0]
    ds = instance_dataset(patient, patient.studies[0], rows=rows, columns=columns)
    ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{index}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def patient_query() -> Dataset:
    return identifier("PATIENT", PatientID="*", PatientName="")


def find_all(assoc: Association) -> tuple[list[Dataset], int]:
    """All pending identifiers of a C-FIND and its final status."""
    found = []
    final = -1
    for status, ident in assoc.send_c_find(patient_query(),
                                           PatientRootQueryRetrieveInformationModelFind):
        if not status:
            raise AssertionError("C-FIND got no response")
        if status.Status in (0xFF00, 0xFF01):
            found.append(ident)
        else:
            final = int(status.Status)
    return found, final


def move(assoc: Association, destination: str) -> int:
    final = -1
    for status, _ident in assoc.send_c_move(patient_query(), destination,
                                            PatientRootQueryRetrieveInformationModelMove):
        if status and status.Status not in (0xFF00,):
            final = int(status.Status)
    return final


def get(assoc: Association) -> int:
    final = -1
    for status, _ident in assoc.send_c_get(patient_query(),
                                           PatientRootQueryRetrieveInformationModelGet):
        if status and status.Status not in (0xFF00,):
            final = int(status.Status)
    return final
