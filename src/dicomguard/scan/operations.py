"""Is a negotiated service really open to a stranger? One harmless operation per service.

An accepted presentation context only says the server *knows* a SOP class. Several servers
accept every Q/R context and then judge each operation: Orthanc 1.10 at its defaults
(``DicomAlwaysAllowFind``/``Move``/``Get``/``FindWorklist`` false, no ``DicomModalities``) aborts
a stranger's C-FIND, C-MOVE and C-GET with an A-ABORT and logs "DICOM authorization rejected";
other servers answer ``0x0124`` (Refused: Not authorized, PS3.7 C.4 / PS3.4 C.4.1.1.4) or
``0x0122`` (Refused: SOP Class not supported). So a service counts as open to a stranger only
when one of its operations was *answered*:

==============  =================================================================  ===========
service         operation sent (matches nothing, reveals nothing)                  answered if
==============  =================================================================  ===========
verification    C-ECHO                                                             Success
find_*          C-FIND, level STUDY/PATIENT, key = a fresh random UID / ID         Success,
worklist        C-FIND of the worklist, AccessionNumber = a fresh random value     Pending or
                                                                                   Warning
==============  =================================================================  ===========

A probe that failed (below) does not stop the exposure count; when the count's own C-FINDs
bring records back, the service is answered after all (the dicom-rs#434 peer of
test_find_quirks_from_bug_reports.py never sends its final response: the probe, matching
nothing, gets silence, while the count's universal query gets matches before the silence).

Any other final status (``0xA900``, ``0xCxxx``...) is ``failed``: the server processed the
request but did not answer it, so it is neither proof of access nor of a refusal; so is
silence (no response within the DIMSE timeout), and so is an answer we cannot read (a malformed
PDU, a data set above our size bound). An A-ABORT, a closed connection, ``0x0124`` or
``0x0122`` is ``refused``. C-MOVE, C-GET and C-STORE are
retrieve/write operations, sent only with ``--intrusive`` (scan.intrusive): in a default scan
their state is ``untested`` and whether they are open is inferred from the services that were
tested (a server seen refusing a stranger's C-FIND enforces access per operation).

States: ``answered`` | ``refused`` | ``failed`` | ``untested``. Each record is
``{"state", "status": int or None, "detail": str}``.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from pydicom.dataset import Dataset

from ..dul.codes import (
    STATUS_CANCEL,
    STATUS_NOT_AUTHORIZED,
    STATUS_SOP_CLASS_NOT_SUPPORTED,
    STATUS_SUCCESS,
    is_c_warning,
    is_pending,
)
from ..dul.errors import DulError, MalformedPdu, PeerAborted, PeerTimeout, ProtocolViolation
from ..dul.scu import Association, ReleasedBeforeAnswer
from ..knowledge import sopclasses as sc
from .result import Operation

#: the services a default scan asks one operation of besides Verification (C-FIND queries)
QUERY_SERVICES = ("find_study_root", "find_patient_root", "worklist")

ANSWERED = "answered"
REFUSED = "refused"
FAILED = "failed"
UNTESTED = "untested"

#: PS3.7 C.4 general statuses a server uses to refuse an operation it will not perform.
REFUSAL_STATUSES = frozenset({STATUS_NOT_AUTHORIZED, STATUS_SOP_CLASS_NOT_SUPPORTED})

#: services whose operation the default scan sends (read-only)
PROBED = ("verification", "find_study_root", "find_patient_root", "worklist")
#: services whose operation only --intrusive sends (move: scan.intrusive, get: probe_get;
#: storage: scan.intrusive) or never (mpps, storage commitment)
NOT_PROBED = ("move", "get", "storage", "mpps", "storage_commitment")


def record(state: str, status: int | None = None, detail: str = "") -> Operation:
    """The outcome of a probe operation (one entry of the record's ``operations``)."""
    return Operation(state, status, detail)


def classify_find(status: int | None) -> str:
    """State of a C-FIND (or C-ECHO) from its final status (PS3.4 C.4.1.1.4 categories)."""
    if status is None:
        return FAILED
    if status in (STATUS_SUCCESS, STATUS_CANCEL) or is_pending(status):
        return ANSWERED
    if is_c_warning(status):
        # Warning category: processed and answered (dcm4che ends C-FINDs with 0xB100,
        # dcm4che/dcm4che#586)
        return ANSWERED
    if status in REFUSAL_STATUSES:
        return REFUSED
    return FAILED


def _random_uid() -> str:
    return "2.25." + str(secrets.randbits(120))


def probe_identifier(service: str, level: str | None = None) -> tuple[str, Dataset]:
    """(SOP class, identifier) of the probe C-FIND of ``service``: it matches nothing.

    The matching key is a fresh random value, so an answer carries no record and the query
    costs the server one index lookup.
    """
    q = Dataset()
    if service == "worklist":
        q.AccessionNumber = "DG" + secrets.token_hex(7).upper()  # SH, 16 characters
        return sc.MODALITY_WORKLIST_FIND, q
    if service == "find_patient_root":
        q.QueryRetrieveLevel = level or "PATIENT"
        q.PatientID = "DGNOMATCH" + secrets.token_hex(6).upper()
        if q.QueryRetrieveLevel == "STUDY":  # hierarchical: the patient's key, then the study's
            q.StudyInstanceUID = _random_uid()
        return sc.PATIENT_ROOT_FIND, q
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = _random_uid()
    return sc.STUDY_ROOT_FIND, q


def _on_error(exc: DulError, what: str) -> Operation:
    """An operation that ended without a DIMSE answer: an abort or a dropped connection is a
    refusal; silence is not (a server that never answers its C-FIND, fo-dicom-samples#100:
    SANTESOFT/2.0.00 holds the C-FIND forever) and stays ``failed``. Neither is an answer we
    could not read (a malformed PDU, a data set above our size bound, a protocol violation):
    the server went ahead and answered, so it is ``failed`` too, never a refusal that would
    report a server answering with data as one enforcing access (DG-015)."""
    if isinstance(exc, PeerTimeout):
        return record(FAILED, None, f"{what}: no answer ({exc})")
    if isinstance(exc, (MalformedPdu, ProtocolViolation)):
        return record(FAILED, None, f"{what}: unreadable answer ({_describe(exc)})")
    return record(REFUSED, None, _describe(exc))


def _describe(exc: DulError) -> str:
    if isinstance(exc, PeerAborted):
        return f"A-ABORT (source {exc.source}, reason {exc.reason})"
    return f"{type(exc).__name__}: {exc}"


async def probe_echo(assoc: Association, *, release: bool = False) -> Operation:
    """C-ECHO; raises nothing: an abort or a dropped connection is ``refused``.

    ``release``: the C-ECHO is the last request; the A-RELEASE-RQ goes with it
    (:meth:`Association.echo`); a peer that answers the release first raises
    :class:`ReleasedBeforeAnswer` (the C-ECHO is then unanswered, not refused)."""
    try:
        status = await assoc.echo(release=release)
    except ReleasedBeforeAnswer:
        raise
    except DulError as exc:
        return _on_error(exc, "C-ECHO")
    state = ANSWERED if status == STATUS_SUCCESS else classify_find(status)
    return record(state, status, f"C-ECHO status 0x{status & 0xFFFF:04X}")


async def probe_find(assoc: Association, service: str) -> Operation:
    """The probe C-FIND of ``service`` (see :func:`probe_identifier`); never raises.

    The Patient Root model is tried at PATIENT level, and when that level fails with a status
    (some servers serve only STUDY level and below: 0xC000 for PATIENT, issue 10 item 3), once
    more at STUDY level within the model.
    """
    out = await _probe_find_once(assoc, service, None)
    if service == "find_patient_root" and out.state == FAILED and out.status is not None:
        study = await _probe_find_once(assoc, service, "STUDY")
        study.detail = f"PATIENT level: {out.detail}; STUDY level: {study.detail}"
        return study
    return out


async def _probe_find_once(
    assoc: Association, service: str, level: str | None
) -> Operation:
    sop_class, identifier = probe_identifier(service, level)
    matches = 0
    try:
        async for _ in assoc.find_raw(sop_class, identifier, max_results=10):
            matches += 1
    except DulError as exc:
        if not matches:
            return _on_error(exc, "C-FIND")
        # answers came, then the query broke (a peer that answers Pending for ever and ignores
        # C-CANCEL, issue 12): the operation was performed, and the answers are nonsense
        out = record(ANSWERED, None, f"C-FIND: {matches} answers, then {_describe(exc)}")
        out.nonsense_matches = matches
        return out
    status = assoc.last_status
    state = classify_find(status)
    text = "none" if status is None else f"0x{status:04X}"
    detail = f"C-FIND status {text}"
    out = record(state, status, detail)
    if matches:
        # a unique key no record holds was matched anyway: a stub or a decoy that answers
        # any query (issue 10, items 9 and 10), kept for whoever judges the answers
        out.detail += f", {matches} answers to a key that matches nothing"
        out.nonsense_matches = matches
    return out


def credit_exposure(
    ops: dict[str, Operation], exposure: dict[str, Any] | None, accept: Any
) -> None:
    """A failed probe whose service then brought records back in the exposure count is
    answered after all (records are the strongest proof of access)."""
    if not exposure:
        return
    study_service = (
        "find_study_root" if accept.accepts(sc.STUDY_ROOT_FIND)
        else "find_patient_root" if accept.accepts(sc.PATIENT_ROOT_FIND) else None
    )
    found = {study_service: bool(exposure.get("studies"))}
    worklist = exposure.get("worklist")
    items = worklist.get("items") if isinstance(worklist, dict) else exposure.get(
        "worklist_items"
    )
    found["worklist"] = bool(items)
    for name, got in found.items():
        op = ops.get(name or "")
        if name and got and op is not None and op.state == FAILED:
            op.update(state=ANSWERED, detail=op.detail + "; records came back to the count")


def alive(assoc: Association | None) -> bool:
    """Still usable: not closed by us, and the peer has not closed its side."""
    if assoc is None or getattr(assoc, "_closed", False):
        return False
    return not (assoc.writer.is_closing() or assoc.reader.at_eof())


def enforced_per_operation(ops: dict[str, Operation]) -> bool:
    """True when a negotiated service was refused per operation (see the module docstring)."""
    return any(o.state == REFUSED for o in ops.values())


def open_services(
    negotiated: dict[str, bool], ops: dict[str, Operation]
) -> tuple[dict[str, bool], dict[str, str]]:
    """Service booleans of the output contract ("open to a stranger") and their confidence.

    A probed service is open when its operation was answered (observed). A service not probed
    is open when negotiated, unless the server was seen enforcing access per operation: then
    retrieve services (move, get) are taken as closed too (inferred: a server that refuses a
    stranger's C-FIND does not let that stranger retrieve), unless a Q/R C-FIND was answered
    (then only another service, e.g. the worklist, was refused). Storage keeps its negotiated value
    (Orthanc's defaults refuse FIND but allow C-STORE and C-ECHO). A query service a default
    scan probes (C-FIND, worklist) that was not asked because the peer had stopped answering
    (:func:`silent`: an AC, then silence) is not open either (inferred): nothing answered it,
    and "patient data can be queried" was reported, confirmed, for a peer that answered nothing.
    """
    # retrieve follows the Q/R C-FIND: a refused worklist query says nothing about C-MOVE /
    # C-GET (Orthanc with DicomAlwaysAllowFindWorklist false but Find/Move/Get allowed: findscu
    # -W aborted, getscu answered)
    qr_answered = any(
        ops[n].state == ANSWERED for n in ("find_study_root", "find_patient_root") if n in ops
    )
    enforced = enforced_per_operation(ops) and not qr_answered
    went_silent = bool(silent(ops))
    out: dict[str, bool] = {}
    conf: dict[str, str] = {}
    for name, offered in negotiated.items():
        op = ops.get(name)
        if not offered:
            out[name] = False
            conf[name] = "observed"
        elif op is not None and op.state != UNTESTED:
            out[name] = op.state == ANSWERED
            conf[name] = "observed" if op.state in (ANSWERED, REFUSED) else "inferred"
        elif name in ("move", "get") and enforced:
            out[name] = False
            conf[name] = "inferred"
        elif name in QUERY_SERVICES and went_silent:
            out[name] = False  # skipped: the peer no longer answered (see the docstring)
            conf[name] = "inferred"
        else:
            out[name] = True
            conf[name] = "inferred"
    return out, conf


async def probe_get(assoc: Association, *, max_responses: int = 100) -> Operation | None:
    """C-GET of a study that does not exist (a fresh random UID); None without a GET context.

    Only with ``--intrusive`` (a retrieve request, even of nothing). Nothing can come back: no
    study matches, and the scan negotiates no SCP role for storage, so a server could not send
    a C-STORE on this association anyway. Any C-GET response is ``answered`` (the request
    passed the access check: Orthanc 1.10 with ``DicomAlwaysAllowGet`` answers 0xC000 "unable
    to process" for no match, measured with getscu), except 0x0124/0x0122; an A-ABORT (Orthanc
    at its defaults) or a dropped connection is ``refused``.
    """
    from ..dul import dimse

    accept = assoc.accept
    sop_class = next((u for u in (sc.STUDY_ROOT_GET, sc.PATIENT_ROOT_GET) if accept.accepts(u)),
                     None)
    if sop_class is None:
        return None
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    if sop_class == sc.PATIENT_ROOT_GET:
        q.PatientID = "DGNOMATCH" + secrets.token_hex(6).upper()
    q.StudyInstanceUID = _random_uid()
    try:
        await assoc.send_request("C_GET_RQ", sop_class, q)
        for _ in range(max_responses):
            reply = await assoc._receive(dimse.MessageAssembler(1 << 20))
            if reply.command_field == dimse.C_STORE_RQ:
                # it tried to send us something: processed, and we end it at once
                await assoc.abort()
                return record(ANSWERED, None, "C-GET: the server started a C-STORE")
            if reply.command_field != dimse.C_GET_RSP:
                return record(FAILED, None, f"C-GET: got command 0x{reply.command_field:04x}")
            if is_pending(reply.status):
                continue
            status = reply.status
            if status in REFUSAL_STATUSES:
                return record(REFUSED, status, f"C-GET status 0x{status:04X}")
            text = "none" if status is None else f"0x{status:04X}"
            return record(ANSWERED, status, f"C-GET of nothing: status {text}")
    except DulError as exc:
        return _on_error(exc, "C-GET")
    return record(FAILED, None, f"C-GET: more than {max_responses} responses")


def from_intrusive_store(store: dict[str, Any] | None) -> Operation | None:
    """The ``storage`` operation record from the --intrusive C-STORE check, when it ran.

    Success or a warning status is answered (the object was stored); an A-ABORT, a dropped
    connection or 0x0124/0x0122 is a refusal (Orthanc 1.10 with ``DicomAlwaysAllowStore``
    false aborts); any other status (0xA7xx out of resources, 0xA9xx, 0xCxxx) is ``failed``:
    the server judged the request but did not store, which proves neither access nor refusal.
    """
    if not store:
        return None
    if "error" in store:
        return record(REFUSED, None, f"C-STORE: {store['error']}")
    status = store.get("status")
    if status in REFUSAL_STATUSES:
        return record(REFUSED, status, f"C-STORE status 0x{status:04X}")
    if store.get("accepted"):
        return record(ANSWERED, status, f"C-STORE of a test object: status 0x{status:04X}")
    return record(FAILED, status, f"C-STORE status 0x{status:04X}")


def from_intrusive_move(move: dict[str, Any] | None) -> Operation | None:
    """The ``move`` operation record from the --intrusive C-MOVE check, when it ran.

    Any DIMSE answer means the server processed the request (it passed the access check): a
    C-MOVE of a study that does not exist to an unknown destination answered 0xA801 (move
    destination unknown) or 0xC000 (Orthanc 1.10 with ``DicomAlwaysAllowMove``: no match) was
    judged, not refused. An abort or 0x0124/0x0122 is a refusal.
    """
    if not move:
        return None
    if "error" in move:
        return record(REFUSED, None, f"C-MOVE: {move['error']}")
    status = move.get("status")
    if status in REFUSAL_STATUSES:
        return record(REFUSED, status, f"C-MOVE status 0x{status:04X}")
    return record(ANSWERED, status, f"C-MOVE of nothing to an unknown AE: status 0x{status:04X}")


def worth_counting(ops: dict[str, Operation]) -> bool:
    """Count the exposure? Where a query was answered, or failed without being refused (a
    failure status or silence says nothing about access; the count's own queries will), and
    unless the C-ECHO went unanswered (an AC, then silence: issue 12)."""
    return "verification" not in silent(ops) and any(
        ops[n].state in (ANSWERED, FAILED)
        for n in ("find_study_root", "find_patient_root", "worklist")
        if n in ops
    )


def silent(ops: dict[str, Operation]) -> dict[str, str]:
    """Operations the peer never answered (state failed, no status): name -> detail.

    After one, no further service is probed: each probe of a peer that stopped answering costs
    a new association and a full timeout, and the per-endpoint budget would end the endpoint
    instead. The exposure count still runs unless the C-ECHO itself went unanswered (an AC,
    then silence: issue 12's accept-then-silence), since a server may answer a real query with
    records and stall only on the probe's (dicom-rs #434)."""
    return {
        name: str(op.detail)
        for name, op in ops.items()
        if op.state == FAILED and op.status is None
    }


def hide_refused_contexts(assoc: Association, ops: dict[str, Operation]) -> None:
    """Counting must not send the queries a stranger was refused (an Orthanc worklist with
    DicomAlwaysAllowFindWorklist false would abort the association half-way through the Q/R
    counts): their contexts are marked refused in this association's view of its AC. Failed
    ones (a failure status, silence) are still counted: the count records how they fail."""
    refused = {
        uid
        for name, op in ops.items()
        if op.state == REFUSED and name in ("find_study_root", "find_patient_root", "worklist")
        for uid in sc.SERVICES[name]
    }
    if refused:
        results = {u: (3 if u in refused else code) for u, code in assoc.accept.results.items()}
        assoc.accept = replace(assoc.accept, results=results)
