"""The operation judge: what the gateway does with each DIMSE command set of an association.

:class:`OperationJudge` holds an association's request state (the client's requests outstanding
at the backend by MessageID, capped C-FINDs, the backend's requests outstanding at the client)
and is asked once per command set, in each direction: ``request(context_id, command)`` for the
client's, ``response(context_id, command)`` for the backend's. It answers with a
:class:`Decision`: whether the message passes, the PDUs of the gateway's own to send (the
failure response to a refused request, the C-CANCEL and final response of a capped C-FIND)
and what to count and audit. It writes nothing and reads no socket, so it is
tested with command sets in and decisions out (``gateway/tests/test_operation_judge.py``); the
relay (:mod:`.relay`) sends the PDUs and records the outcomes.

A command set that could be read two ways, or that does not belong to its presentation context
or to the request state, raises :class:`~dicomguard.dul.command.CommandRefused`: the relay then
aborts the association (issue 11).

The standard's rules applied here: a command arrives on an accepted presentation context whose
abstract syntax is the SOP class it names (PS3.7 9.1.1, 10.1.1; PS3.8 7.1.1.13); a MessageID
is unique among a requestor's outstanding requests (PS3.7 9.1.1.1), and a response is matched to
its request by MessageIDBeingRespondedTo, never by order; a C-CANCEL for nothing outstanding is
ignored (PS3.7 9.3.2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as dm

from ..dul import dimse
from ..dul.codes import (
    N_ACTION_RQ,
    N_CREATE_RQ,
    N_DELETE_RQ,
    N_EVENT_REPORT_RQ,
    N_GET_RQ,
    N_SET_RQ,
    PENDING_STATUSES,
    RESPONSE_BIT,
    STATUS_OUT_OF_RESOURCES,
    is_success_or_warning,
)
from ..dul.command import CommandRefused, CommandSet
from .pipe import RelayAbort
from .policy import (
    REQUEST_OPERATIONS,
    IdentityPolicy,
    RateLimits,
    decide_operation,
)

if TYPE_CHECKING:
    from .audit import PhiCapture

_RESPONSE_CLASSES: dict[int, type[dm.DIMSEMessage]] = {
    dimse.C_STORE_RQ: dm.C_STORE_RSP,
    dimse.C_GET_RQ: dm.C_GET_RSP,
    dimse.C_FIND_RQ: dm.C_FIND_RSP,
    dimse.C_MOVE_RQ: dm.C_MOVE_RSP,
    dimse.C_ECHO_RQ: dm.C_ECHO_RSP,
    N_EVENT_REPORT_RQ: dm.N_EVENT_REPORT_RSP,
    N_GET_RQ: dm.N_GET_RSP,
    N_SET_RQ: dm.N_SET_RSP,
    N_ACTION_RQ: dm.N_ACTION_RSP,
    N_CREATE_RQ: dm.N_CREATE_RSP,
    N_DELETE_RQ: dm.N_DELETE_RSP,
}

#: PDUs of the gateway's own carry the whole message in one PDU each (no maximum announced)
_UNBOUNDED = 0


def is_final_status(status: int | None) -> bool:
    return status not in PENDING_STATUSES


def is_success_status(status: int | None) -> bool:
    """Success or warning (PS3.7 C: 0x0001, 0x0107, 0x0116, 0xB000-0xBFFF) is not a failure."""
    return is_success_or_warning(status)


def failure_response(request: Dataset, status: int, comment: str = "") -> dm.DIMSEMessage | None:
    """The DIMSE response a refused request gets, or None when there is no response type."""
    kind = _RESPONSE_CLASSES.get(int(request.get("CommandField", -1)))
    if kind is None:
        return None
    msg = dimse.response(kind, request, status)
    cs = msg.command_set
    if comment and "ErrorComment" in cs:
        cs.ErrorComment = comment[:64]
    # pynetdicom's templates list every possible element with an empty value; a response built
    # by hand must drop the unused ones and carry a correct group length, as
    # pynetdicom's own primitive_to_message does.
    for elem in list(cs):
        if elem.tag != 0x00000000 and (elem.value is None or elem.value == ""):
            del cs[elem.tag]
    msg._set_command_group_length()
    return msg


@dataclass(slots=True)
class Operation:
    """A request the backend is working on (for the audit record of its outcome)."""

    operation: str
    sop_class: str
    sop_instance: str
    destination: str | None
    #: the request's command field (a response must answer this command)
    field: int = 0
    find_cap: int = 0
    results: int = 0
    capped: bool = False
    #: what the audit may record of the data set (only with audit.include_phi)
    phi: PhiCapture | None = None


class Decision(NamedTuple):
    """The judge's answer for one command set (one flat tuple: one allocation on the path of
    every final response).

    ``result`` says what to count and audit, with ``op``, ``status`` and ``why``: "ok" /
    "failed" (a final status: success or warning / anything else), "refused" (the policy or the
    request state said no, ``why``), "capped" (a C-FIND past its result cap), "dropped" (a
    response that answers no outstanding request: ``op.operation`` is "response 0x...."), or
    None: nothing to record.
    """

    #: the message (command set and data set) goes on to the other side
    passes: bool
    result: str | None = None
    op: Operation | None = None
    status: int | None = None
    why: str | None = None
    #: PDUs of the gateway's own for the client, and for the backend (whole P-DATA-TFs)
    to_client: tuple[bytes, ...] = ()
    to_backend: tuple[bytes, ...] = ()
    #: with ``include_phi``: the request whose data set the audit may keep (its start)
    capture: Operation | None = None


#: the answer to most command sets: pass, nothing to send or record
PASS = Decision(True)
#: a message swallowed without a trace (late responses to a capped C-FIND)
DROP = Decision(False)


class OperationJudge:
    """One association's request state and the identity's operation policy.

    ``accepted``: presentation context ID -> abstract syntax of the contexts the backend
    accepted; ``policy``: the admitted identity's; ``limits``: the gateway's rate buckets
    (shared by its associations); ``include_phi``: ask for data-set captures (audit).
    """

    def __init__(self, accepted: dict[int, str], policy: IdentityPolicy, limits: RateLimits,
                 *, include_phi: bool = False) -> None:
        self.accepted = accepted
        self.policy = policy
        self.limits = limits
        self.include_phi = include_phi
        #: the client's requests outstanding at the backend, by MessageID
        self.ops: dict[int, Operation] = {}
        #: C-FINDs past their cap: the client has its final status (and may use the ID again),
        #: the backend's late responses to them are swallowed until its own final one
        self.capped: dict[int, Operation] = {}
        #: the backend's requests outstanding at the client (C-GET's C-STORE sub-operations)
        self.backend_requests: dict[int, int] = {}

    # -- both directions ------------------------------------------------------------------------
    def _check_context(self, cid: int, values: dict[str, int | str]) -> int:
        """The command field of a command on an accepted presentation context whose abstract
        syntax is the SOP class it names (responses name none that matters); else
        :class:`CommandRefused`: the backend, not the gateway, would decide which service it
        is."""
        syntax = self.accepted.get(cid)
        if syntax is None:
            raise CommandRefused(f"command on presentation context {cid}, which was not accepted")
        field_ = int(values["CommandField"])
        if field_ & RESPONSE_BIT:
            return field_
        sop_class = values.get("AffectedSOPClassUID") or values.get("RequestedSOPClassUID")
        if sop_class is not None and sop_class != syntax:
            raise CommandRefused(f"SOP class {sop_class} on presentation context {cid} "
                                 f"({syntax})")
        return field_

    @staticmethod
    def _dropped(command: CommandSet, why: str) -> Decision:
        """A response that answers no outstanding request: dropped, counted and audited."""
        field_ = command.command_field
        op = Operation(f"response 0x{field_:04x}", str(command.get("AffectedSOPClassUID", "")),
                       "", None)
        raw_status = command.get("Status")
        status = int(raw_status) if raw_status is not None else None
        return Decision(False, "dropped", op, status, why)

    @staticmethod
    def _refusal(cid: int, request: Dataset, op: Operation, status: int, why: str,
                 result: str = "refused", to_backend: tuple[bytes, ...] = ()) -> Decision:
        """A request the gateway answers itself: dropped, with its failure response."""
        msg = failure_response(request, status, f"dicomguard: {why}")
        if msg is None:
            raise RelayAbort(f"no response type for command {request.get('CommandField')}")
        return Decision(False, result, op, status, why,
                        tuple(dimse.encode_message(msg, cid, _UNBOUNDED)), to_backend)

    # -- client -> backend ----------------------------------------------------------------------
    def request(self, cid: int, command: CommandSet) -> Decision:
        """A command set from the client: a request judged by the identity's policy and the
        request state, or a response to one of the backend's requests.

        The strict reader guarantees the elements each command's table requires (PS3.7 9.3,
        10.3), so they are read from ``command.values`` directly.
        """
        values = command.values
        field_ = self._check_context(cid, values)
        if field_ & RESPONSE_BIT:
            # a response, e.g. a C-STORE-RSP to a C-GET sub-operation: it must answer one
            answered = int(values["MessageIDBeingRespondedTo"])
            if self.backend_requests.get(answered) != field_ & ~RESPONSE_BIT:
                return self._dropped(
                    command, f"answers message ID {answered}, which the backend has not sent")
            del self.backend_requests[answered]
            return PASS
        if field_ == dimse.C_CANCEL_RQ:
            # a cancel for nothing outstanding is a normal race (PS3.7 9.3.2.3: ignored); a
            # capped C-FIND was cancelled by the gateway already
            return PASS if values["MessageIDBeingRespondedTo"] in self.ops else DROP
        msg_id = int(values["MessageID"])
        if msg_id in self.ops:
            # its responses could not be told apart from the outstanding request's
            raise CommandRefused(f"MessageID {msg_id} is already outstanding")
        operation = REQUEST_OPERATIONS.get(field_)
        destination = (str(values.get("MoveDestination", "")) if field_ == dimse.C_MOVE_RQ
                       else None)
        verdict = decide_operation(self.policy, operation, field_, destination, self.limits)
        op = Operation(
            operation or f"0x{field_:04x}",
            str(values.get("AffectedSOPClassUID", "")),
            str(values.get("AffectedSOPInstanceUID", "")),
            destination,
            field_,
        )
        if not verdict.allowed:
            return self._refusal(cid, command.dataset(), op, verdict.status, verdict.why)
        old = self.capped.get(msg_id)
        if old is not None and old.field == field_:
            # the backend still answers the capped C-FIND with this ID: the answers to a
            # second one could not be told apart from those
            return self._refusal(cid, command.dataset(), op, STATUS_OUT_OF_RESOURCES,
                                 "message ID still in use")
        if operation == "FIND":
            op.find_cap = self.policy.find_max_results
        self.ops[msg_id] = op
        if self.include_phi and command.has_dataset and operation in (
                "FIND", "MOVE", "GET", "STORE"):
            return Decision(True, capture=op)
        return PASS

    # -- backend -> client ----------------------------------------------------------------------
    def response(self, cid: int, command: CommandSet) -> Decision:
        """A command set from the backend: a response matched to the client's request it
        answers (C-FIND matches counted against the cap, final statuses recorded), or a
        request of the backend's (C-GET's C-STORE sub-operations)."""
        values = command.values
        field_ = self._check_context(cid, values)
        if not field_ & RESPONSE_BIT:
            msg_id = values.get("MessageID")
            if msg_id is None:  # a C-CANCEL-RQ: the backend has no request of the client's
                raise CommandRefused("C-CANCEL-RQ from the backend")
            self.backend_requests[int(msg_id)] = field_
            return PASS
        # a response's table requires both (parse_command_strict)
        key = int(values["MessageIDBeingRespondedTo"])
        status = int(values["Status"])
        request_field = field_ & ~RESPONSE_BIT
        op = self.ops.get(key)
        if op is None or op.field != request_field:
            capped = self.capped.get(key)
            if capped is not None and capped.field == request_field:
                if status not in PENDING_STATUSES:
                    del self.capped[key]  # the client already has its final status
                return DROP
            return self._dropped(command, f"answers message ID {key}, which is not outstanding")
        if status in PENDING_STATUSES:
            if field_ == dimse.C_FIND_RSP and op.find_cap:
                op.results += 1
                if op.results > op.find_cap:
                    return self._cap_find(cid, command, op)
            return PASS
        del self.ops[key]
        return Decision(True, "ok" if is_success_status(status) else "failed", op, status)

    def _cap_find(self, cid: int, response: CommandSet, op: Operation) -> Decision:
        """More matches than the identity may see: cancel at the backend, close at the client."""
        op.capped = True
        msg_id = int(response.values["MessageIDBeingRespondedTo"])
        self.capped[msg_id] = self.ops.pop(msg_id)
        request = Dataset()
        request.CommandField = dimse.C_FIND_RQ
        request.MessageID = msg_id
        request.AffectedSOPClassUID = response.get("AffectedSOPClassUID") or op.sop_class
        return self._refusal(cid, request, op, STATUS_OUT_OF_RESOURCES,
                             f"result cap of {op.find_cap} reached", "capped",
                             tuple(dimse.cancel_pdus(msg_id, cid, _UNBOUNDED)))
